//! Unwinding a reorganised chain (DESIGN §2, reorgs): find the fork point by comparing the
//! syncer's headers with the executed records, then undo blocks newest first with the
//! pre-values in their records, removing their receipts, history and records. Each block is
//! undone in one ordered batch ending with the checkpoints, so an unwind cut short by a crash
//! is simply redone (restoring pre-values twice gives the same bytes).

use super::{PipelineContext, StageError};
use crate::commit_writes::exec_progress_at;
use alloy_primitives::B256;
use primitives::block::decode_header;
use primitives::contract::{encode_word, AccountJson};
use primitives::stage_id::StageId;
use primitives::store::WriteBatch;

const STAGE: StageId = StageId::Execution;

/// The highest block at or below `executed` whose executed record matches the syncer's
/// header; an error when the fork is at or below `pruned` (outside the window).
pub fn fork_point(ctx: &PipelineContext, executed: u64, pruned: u64) -> Result<u64, StageError> {
    let mut number = executed;
    while number > pruned {
        let record = ctx.load_record(STAGE, number)?;
        let key = ctx.keys.header(number);
        let stored = ctx.store.get(&key).map_err(|error| StageError::Store {
            stage: STAGE,
            error,
        })?;
        let stored_hash = stored
            .map(|bytes| decode_header(&key, &bytes).map(|(_, hash)| hash))
            .transpose()
            .map_err(|e| StageError::Block {
                stage: STAGE,
                message: e.to_string(),
            })?;
        if stored_hash == Some(record.hash) {
            return Ok(number);
        }
        number -= 1;
    }
    if number == 0 {
        return Ok(0);
    }
    Err(StageError::Inconsistent(format!(
        "reorg deeper than the window: no executed block above {pruned} matches the syncer's chain; \
         re-initialise the store or raise state.window_size"
    )))
}

/// Undo blocks `executed` down to `fork + 1`; `total_txs` is the transaction count at
/// `executed`. Returns the count at `fork`.
pub fn unwind_to(
    ctx: &PipelineContext,
    fork: u64,
    executed: u64,
    mut total_txs: u64,
) -> Result<u64, StageError> {
    for number in (fork + 1..=executed).rev() {
        let record = ctx.load_record(STAGE, number)?;
        let mut batch = WriteBatch::new();
        for change in &record.accounts {
            let latest = ctx.keys.latest_account(&change.address);
            match &change.pre {
                Some(pre) => {
                    let json = AccountJson {
                        balance: pre.balance,
                        nonce: pre.nonce,
                        code_hash: pre.code_hash,
                        storage_root: B256::ZERO,
                    };
                    batch.set(latest, json.encode());
                }
                None => {
                    batch.delete(latest);
                }
            }
            batch.delete(ctx.keys.history_account(number, &change.address));
        }
        for slot in &record.storage {
            let key = ctx
                .keys
                .latest_storage(&slot.address, &B256::from(slot.slot));
            if slot.pre.is_zero() {
                batch.delete(key);
            } else {
                batch.set(key, encode_word(&slot.pre));
            }
            batch.delete(
                ctx.keys
                    .history_storage(number, &slot.address, &B256::from(slot.slot)),
            );
        }
        batch.delete(ctx.keys.receipts(number));
        total_txs = total_txs.saturating_sub(record.tx_count() as u64);
        batch.set(
            ctx.keys.exec_progress(),
            exec_progress_at(number - 1, total_txs, super::unix_now()),
        );
        for stage in [StageId::Execution, StageId::Commit, StageId::Receipts] {
            ctx.queue_checkpoint(&mut batch, stage, number - 1, record.parent_hash);
        }
        batch.delete(ctx.keys.record(number));
        ctx.write(STAGE, batch)?;
        tracing::info!(block = number, "unwound");
    }
    Ok(total_txs)
}
