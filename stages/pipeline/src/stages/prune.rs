//! Prune stage: once a block is more than `window_size` blocks below both the commit and the
//! receipts checkpoints, deletes its history keys (`st:{n}:*`, listed in its record) and its
//! execution record, in bounded batches, then moves the prune checkpoint.

use crate::{PipelineContext, StageError};
use alloy_primitives::B256;
use crossbeam_channel::Receiver;
use primitives::record::RecordSummary;
use primitives::stage_id::StageId;
use primitives::store::WriteBatch;

const STAGE: StageId = StageId::Prune;
/// Blocks pruned per store batch: bounds one batch to a few thousand deletes.
const BLOCKS_PER_BATCH: u64 = 32;

/// Prune once at start, again whenever the commit or receipts stage reports blocks on
/// `applied` (all reports already queued count as one), and a last time when both have
/// finished (so the head is pruned too). `pruned` is the prune checkpoint.
pub fn run(
    ctx: &PipelineContext,
    mut pruned: u64,
    applied: Receiver<u64>,
) -> Result<(), StageError> {
    let meter = ctx.meters.stage(STAGE);
    pruned = prune_to_window(ctx, pruned)?;
    while !meter.recv_batch(STAGE, &applied, usize::MAX).is_empty() {
        pruned = prune_to_window(ctx, pruned)?;
    }
    prune_to_window(ctx, pruned)?;
    Ok(())
}

/// Delete every block more than the window below both the commit and receipts checkpoints;
/// returns the new prune checkpoint.
fn prune_to_window(ctx: &PipelineContext, mut pruned: u64) -> Result<u64, StageError> {
    let applied = ctx
        .checkpoint(StageId::Commit)?
        .zip(ctx.checkpoint(StageId::Receipts)?)
        .map_or(0, |(c, r)| c.block.min(r.block));
    let target = applied.saturating_sub(ctx.window_size);
    // A shutdown still prunes (the batches are bounded); only a failing stage stops it.
    while pruned < target && !ctx.abort.load(std::sync::atomic::Ordering::Relaxed) {
        let started = std::time::Instant::now();
        let last = target.min(pruned + BLOCKS_PER_BATCH);
        let mut batch = WriteBatch::new();
        let totals = queue_block_deletes(ctx, pruned + 1..=last, &mut batch)?;
        ctx.queue_checkpoint(&mut batch, STAGE, last, B256::ZERO);
        ctx.write(STAGE, batch)?;
        crate::metrics::metrics()
            .pruned_blocks_total
            .inc_by(last - pruned);
        for (number, block_totals) in totals {
            ctx.record_stage_progress(STAGE, number, block_totals, started);
        }
        pruned = last;
    }
    Ok(pruned)
}

/// A pruned block: its number with its transaction count and gas.
type PrunedBlock = (u64, (u64, u64));

/// Queue the deletes of the history and records of `blocks` (read in one round trip;
/// nothing for a block already gone); returns each deleted block with its transaction count
/// and gas.
fn queue_block_deletes(
    ctx: &PipelineContext,
    blocks: std::ops::RangeInclusive<u64>,
    batch: &mut WriteBatch,
) -> Result<Vec<PrunedBlock>, StageError> {
    let mut deleted = Vec::new();
    let keys: Vec<String> = blocks.clone().map(|n| ctx.keys.record(n)).collect();
    let values = ctx
        .store
        .multi_get(&keys)
        .map_err(|error| StageError::Store {
            stage: STAGE,
            error,
        })?;
    for ((number, key), bytes) in blocks.zip(keys).zip(values) {
        let Some(bytes) = bytes else {
            continue;
        };
        let record = RecordSummary::decode(&bytes)
            .map_err(|e| StageError::Inconsistent(format!("{key}: {e}")))?;
        for address in &record.accounts {
            batch.delete(ctx.keys.history_account(number, address));
        }
        for (address, slot) in &record.storage {
            batch.delete(
                ctx.keys
                    .history_storage(number, address, &B256::from(*slot)),
            );
        }
        batch.delete(key);
        deleted.push((number, (record.tx_count as u64, record.gas_used)));
    }
    Ok(deleted)
}
