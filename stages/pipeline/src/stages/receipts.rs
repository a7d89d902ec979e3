//! Receipts stage: writes `blk:rcpt:{n}` from each execution record, then its checkpoint. The
//! records already waiting, up to `batch_size`, go in one batch; while the pipeline is behind
//! the syncer the stage waits up to [`CATCH_UP_LINGER`] for a fuller one.

use crate::commit_writes::queue_receipts;
use crate::{PipelineContext, StageError, CATCH_UP_LINGER};
use crossbeam_channel::{Receiver, Sender};
use primitives::record::ExecutionRecord;
use primitives::stage_id::StageId;
use primitives::store::WriteBatch;
use std::sync::Arc;
use std::time::Instant;

const STAGE: StageId = StageId::Receipts;

/// Write the receipts of `pending` (records executed before a restart), then of every record
/// from `input`; written block numbers go to `written` (the prune stage).
pub fn run(
    ctx: &PipelineContext,
    pending: Vec<Arc<ExecutionRecord>>,
    input: Receiver<Arc<ExecutionRecord>>,
    written: Sender<u64>,
) -> Result<(), StageError> {
    let max = ctx.batch_size.max(1) as usize;
    let meter = ctx.meters.stage(STAGE);
    for records in pending.chunks(max) {
        write_receipts(ctx, records, &written)?;
    }
    loop {
        let records = meter.recv_batch_lingering(STAGE, &input, max, CATCH_UP_LINGER, |r| {
            ctx.behind_head(r.number)
        });
        if records.is_empty() {
            return Ok(());
        }
        write_receipts(ctx, &records, &written)?;
    }
}

/// Write the receipts of `records` (consecutive blocks) and the checkpoint of the last.
fn write_receipts(
    ctx: &PipelineContext,
    records: &[Arc<ExecutionRecord>],
    written: &Sender<u64>,
) -> Result<(), StageError> {
    let Some(last) = records.last() else {
        return Ok(());
    };
    let started = Instant::now();
    let mut batch = WriteBatch::new();
    for record in records {
        queue_receipts(&ctx.keys, record, &mut batch);
    }
    ctx.queue_checkpoint(&mut batch, STAGE, last.number, last.hash);
    ctx.write(STAGE, batch)?;
    for record in records {
        let totals = (record.tx_count() as u64, record.gas_used);
        ctx.record_stage_progress(STAGE, record.number, totals, started);
    }
    // The prune stage may have stopped; receipts go on regardless.
    let _ = written.send(last.number);
    Ok(())
}
