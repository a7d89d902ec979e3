//! Commit stage: applies each execution record to `st:latest:*`, history `st:{n}:*` (with
//! TTL) and `st:code:*`, then `idx:exec:progress` and the commit checkpoint, in one ordered
//! batch; then the block leaves the state overlay. Re-applying a record is harmless.

use super::{PipelineContext, StageError};
use crate::commit::{exec_progress, queue_state_writes};
use crate::metrics::metrics;
use crate::record::ExecutionRecord;
use crate::stage_id::StageId;
use crate::store::WriteBatch;
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

const STAGE: StageId = StageId::Commit;

/// Apply `pending` (records executed before a restart), then every record from `input`;
/// `total_txs` is the running transaction count; committed block numbers go to `committed`
/// (the prune stage).
pub fn run(
    ctx: &PipelineContext,
    mut total_txs: u64,
    pending: Vec<Arc<ExecutionRecord>>,
    input: Receiver<Arc<ExecutionRecord>>,
    committed: Sender<u64>,
) -> Result<(), StageError> {
    for record in pending.into_iter().chain(input) {
        let started = Instant::now();
        let mut batch = WriteBatch::new();
        queue_state_writes(&ctx.keys, &record, ctx.history_ttl, &mut batch);
        batch.set(
            ctx.keys.exec_progress(),
            exec_progress(&record, total_txs, super::unix_now()),
        );
        ctx.queue_checkpoint(&mut batch, STAGE, record.number, record.hash);
        ctx.write(STAGE, &batch)?;
        ctx.layers.release(record.number);
        total_txs += record.tx_count() as u64;
        let m = metrics();
        m.state_commit_latency_seconds
            .observe(started.elapsed().as_secs_f64());
        m.execution_height.set(record.number as i64);
        m.execution_lag
            .set((m.sync_height.get() - record.number as i64).max(0));
        m.txs_executed_total.inc_by(record.tx_count() as u64);
        m.gas_used_total.inc_by(record.gas_used);
        ctx.record_stage_progress(STAGE, record.number, started);
        // The prune stage may have stopped; committing goes on regardless.
        let _ = committed.send(record.number);
    }
    Ok(())
}
