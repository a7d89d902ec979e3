//! Commit stage: applies execution records to `st:latest:*`, history `st:{n}:*` (with TTL)
//! and `st:code:*`, then `idx:exec:progress` and the commit checkpoint, in one ordered batch;
//! then the blocks leave the state overlay. Re-applying a record is harmless.
//!
//! The records already waiting, up to `batch_size`, are applied in one batch (one round trip,
//! one durable commit); progress and checkpoint name the last of them. While the pipeline is
//! behind the syncer the stage waits up to [`CATCH_UP_LINGER`] for a fuller batch, which writes
//! each `st:latest:*` key once for all its blocks instead of once per block.

use crate::commit_writes::{exec_progress_at, StateWrites};
use crate::metrics::metrics;
use crate::{PipelineContext, StageError, CATCH_UP_LINGER};
use crossbeam_channel::{Receiver, Sender};
use primitives::record::ExecutionRecord;
use primitives::stage_id::StageId;
use primitives::store::WriteBatch;
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
    let max = ctx.batch_size.max(1) as usize;
    let meter = ctx.meters.stage(STAGE);
    for records in pending.chunks(max) {
        total_txs = commit(ctx, total_txs, records, &committed)?;
    }
    loop {
        let records = meter.recv_batch_lingering(STAGE, &input, max, CATCH_UP_LINGER, |r| {
            ctx.behind_head(r.number)
        });
        if records.is_empty() {
            return Ok(());
        }
        total_txs = commit(ctx, total_txs, &records, &committed)?;
    }
}

/// Apply `records` (consecutive blocks) in one batch; returns the new transaction count.
fn commit(
    ctx: &PipelineContext,
    mut total_txs: u64,
    records: &[Arc<ExecutionRecord>],
    committed: &Sender<u64>,
) -> Result<u64, StageError> {
    let Some(last) = records.last() else {
        return Ok(total_txs);
    };
    let started = Instant::now();
    let txs: u64 = records.iter().map(|r| r.tx_count() as u64).sum();
    let mut writes = StateWrites::default();
    for record in records {
        writes.add(&ctx.keys, record);
    }
    let mut batch = WriteBatch::new();
    writes.queue(&ctx.keys, ctx.history_ttl, &mut batch);
    batch.set(
        ctx.keys.exec_progress(),
        exec_progress_at(last.number, total_txs + txs, crate::unix_now()),
    );
    ctx.queue_checkpoint(&mut batch, STAGE, last.number, last.hash);
    ctx.write(STAGE, batch)?;
    let m = metrics();
    m.state_commit_latency_seconds
        .observe(started.elapsed().as_secs_f64());
    for record in records {
        ctx.layers.release(record.number);
        total_txs += record.tx_count() as u64;
        m.execution_height.set(record.number as i64);
        m.execution_lag
            .set((m.sync_height.get() - record.number as i64).max(0));
        m.txs_executed_total.inc_by(record.tx_count() as u64);
        m.gas_used_total.inc_by(record.gas_used);
        let totals = (record.tx_count() as u64, record.gas_used);
        ctx.record_stage_progress(STAGE, record.number, totals, started);
    }
    // The prune stage may have stopped; committing goes on regardless.
    let _ = committed.send(last.number);
    Ok(total_txs)
}
