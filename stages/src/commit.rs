//! Applying an execution record to the store: `st:latest:*` gets the post-values, `st:{n}:*`
//! history gets what block n left behind (with TTL), new code goes under `st:code:*`, receipts
//! under `blk:rcpt:{n}`. Every write is a SET or DEL of a value fixed by the record, so applying
//! a record twice leaves the same bytes as applying it once (the crash rule).

use crate::block::encode_receipts;
use crate::contract::{encode_json, encode_word, AccountJson, ExecProgress};
use crate::keys::Keys;
use crate::record::ExecutionRecord;
use crate::store::WriteBatch;
use alloy_primitives::B256;
use std::time::Duration;

/// The history value of a destroyed account.
const DESTROYED_ACCOUNT: &[u8] = b"null";

/// Queue the state writes of `record` into `batch`: latest state, history with `history_ttl`,
/// and new code.
pub fn queue_state_writes(
    keys: &Keys,
    record: &ExecutionRecord,
    history_ttl: Duration,
    batch: &mut WriteBatch,
) {
    let number = record.number;
    for (hash, code) in &record.codes {
        batch.set(keys.code(hash), code.to_vec());
    }
    for change in &record.accounts {
        let latest = keys.latest_account(&change.address);
        let history = keys.history_account(number, &change.address);
        match &change.post {
            Some(account) => {
                let json = AccountJson {
                    balance: account.balance,
                    nonce: account.nonce,
                    code_hash: account.code_hash,
                    storage_root: B256::ZERO,
                }
                .encode();
                batch.set(latest, json.clone());
                batch.set_with_ttl(history, json, history_ttl);
            }
            None => {
                batch.delete(latest);
                batch.set_with_ttl(history, DESTROYED_ACCOUNT, history_ttl);
            }
        }
    }
    for change in &record.storage {
        let slot = B256::from(change.slot);
        let latest = keys.latest_storage(&change.address, &slot);
        let word = encode_word(&change.post);
        if change.post.is_zero() {
            batch.delete(latest);
        } else {
            batch.set(latest, word.clone());
        }
        batch.set_with_ttl(
            keys.history_storage(number, &change.address, &slot),
            word,
            history_ttl,
        );
    }
}

/// Queue `blk:rcpt:{n}` for `record`.
pub fn queue_receipts(keys: &Keys, record: &ExecutionRecord, batch: &mut WriteBatch) {
    batch.set(
        keys.receipts(record.number),
        encode_receipts(&record.receipts),
    );
}

/// `idx:exec:progress` after `record` is completely in `st:latest`.
pub fn exec_progress(record: &ExecutionRecord, previous_total_txs: u64, now: u64) -> Vec<u8> {
    exec_progress_at(
        record.number,
        previous_total_txs + record.tx_count() as u64,
        now,
    )
}

/// `idx:exec:progress` with state complete up to `block` after `total_txs` transactions.
pub fn exec_progress_at(block: u64, total_txs: u64, now: u64) -> Vec<u8> {
    encode_json(&ExecProgress {
        latest_executed_block: block,
        last_execution_time: now,
        total_txs_executed: total_txs,
    })
}
