//! Prune stage: once a block is more than `window_size` blocks below both the commit and the
//! receipts checkpoints, deletes its history keys (`st:{n}:*`, listed in its record) and its
//! execution record, in bounded batches, then moves the prune checkpoint.

use super::{PipelineContext, StageError};
use crate::stage_id::StageId;
use crate::store::WriteBatch;
use alloy_primitives::B256;
use crossbeam_channel::Receiver;

const STAGE: StageId = StageId::Prune;
/// Blocks pruned per store batch: bounds one batch to a few thousand deletes.
const BLOCKS_PER_BATCH: u64 = 32;

/// Prune once at start, again whenever the commit or receipts stage reports a block on
/// `applied`, and a last time when both have finished (so the head is pruned too).
/// `pruned` is the prune checkpoint.
pub fn run(
    ctx: &PipelineContext,
    mut pruned: u64,
    applied: Receiver<u64>,
) -> Result<(), StageError> {
    pruned = prune_to_window(ctx, pruned)?;
    for _ in applied {
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
        let last = target.min(pruned + BLOCKS_PER_BATCH);
        let mut batch = WriteBatch::new();
        for number in pruned + 1..=last {
            queue_block_deletes(ctx, number, &mut batch)?;
        }
        ctx.queue_checkpoint(&mut batch, STAGE, last, B256::ZERO);
        ctx.write(STAGE, &batch)?;
        let m = crate::metrics::metrics();
        m.pruned_blocks_total.inc_by(last - pruned);
        m.stage_checkpoint
            .with_label_values(&[STAGE.as_str()])
            .set(last as i64);
        pruned = last;
    }
    Ok(pruned)
}

/// Queue the deletes of block `number`'s history and record (nothing when already gone).
pub fn queue_block_deletes(
    ctx: &PipelineContext,
    number: u64,
    batch: &mut WriteBatch,
) -> Result<(), StageError> {
    let key = ctx.keys.record(number);
    let Some(bytes) = ctx.store.get(&key).map_err(|error| StageError::Store {
        stage: STAGE,
        error,
    })?
    else {
        return Ok(());
    };
    let record = crate::record::ExecutionRecord::decode(&bytes)
        .map_err(|e| StageError::Inconsistent(format!("{key}: {e}")))?;
    for account in &record.accounts {
        batch.delete(ctx.keys.history_account(number, &account.address));
    }
    for slot in &record.storage {
        batch.delete(
            ctx.keys
                .history_storage(number, &slot.address, &B256::from(slot.slot)),
        );
    }
    batch.delete(key);
    Ok(())
}
