//! Receipts stage: writes `blk:rcpt:{n}` from each execution record, then its checkpoint.

use super::{PipelineContext, StageError};
use crate::commit::queue_receipts;
use crate::record::ExecutionRecord;
use crate::stage_id::StageId;
use crate::store::WriteBatch;
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;

const STAGE: StageId = StageId::Receipts;

/// Write the receipts of `pending` (records executed before a restart), then of every record
/// from `input`; written block numbers go to `written` (the prune stage).
pub fn run(
    ctx: &PipelineContext,
    pending: Vec<Arc<ExecutionRecord>>,
    input: Receiver<Arc<ExecutionRecord>>,
    written: Sender<u64>,
) -> Result<(), StageError> {
    for record in pending.into_iter().chain(input) {
        let started = std::time::Instant::now();
        let mut batch = WriteBatch::new();
        queue_receipts(&ctx.keys, &record, &mut batch);
        ctx.queue_checkpoint(&mut batch, STAGE, record.number, record.hash);
        ctx.write(STAGE, &batch)?;
        ctx.record_stage_progress(STAGE, record.number, started);
        // The prune stage may have stopped; receipts go on regardless.
        let _ = written.send(record.number);
    }
    Ok(())
}
