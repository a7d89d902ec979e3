//! Applying an execution record to the store: `st:latest:*` gets the post-values, `st:{n}:*`
//! history gets what block n left behind (with TTL), new code goes under `st:code:*`, receipts
//! under `blk:rcpt:{n}`. Every write is a SET or DEL of a value fixed by the record, so applying
//! a record twice leaves the same bytes as applying it once (the crash rule).

use crate::block::encode_receipts;
use crate::contract::{encode_json, encode_word, AccountJson, ExecProgress};
use crate::keys::Keys;
use crate::record::ExecutionRecord;
use crate::store::WriteBatch;
use alloy_primitives::{Bytes, B256};
use std::collections::BTreeMap;
use std::time::Duration;

/// The history value of a destroyed account.
const DESTROYED_ACCOUNT: &[u8] = b"null";

/// The state writes of consecutive blocks, merged: each `st:latest:*` key and each code is
/// written once, with its value after the last block; every block keeps its own history keys.
#[derive(Debug, Default)]
pub struct StateWrites {
    /// Latest values: `Some` to set, `None` to delete.
    latest: BTreeMap<String, Option<Vec<u8>>>,
    /// History entries (each key names its block), sorted: the embedded store inserts
    /// sorted keys with fewer page visits.
    history: BTreeMap<String, Vec<u8>>,
    /// New code by hash.
    codes: BTreeMap<B256, Bytes>,
}

impl StateWrites {
    /// Add the changes of `record`, the block after those added so far.
    pub fn add(&mut self, keys: &Keys, record: &ExecutionRecord) {
        let number = record.number;
        for (hash, code) in &record.codes {
            self.codes.insert(*hash, code.clone());
        }
        for change in &record.accounts {
            let history = keys.history_account(number, &change.address);
            let latest = keys.latest_account(&change.address);
            match &change.post {
                Some(account) => {
                    let json = AccountJson {
                        balance: account.balance,
                        nonce: account.nonce,
                        code_hash: account.code_hash,
                        storage_root: B256::ZERO,
                    }
                    .encode();
                    self.history.insert(history, json.clone());
                    self.latest.insert(latest, Some(json));
                }
                None => {
                    self.history.insert(history, DESTROYED_ACCOUNT.to_vec());
                    self.latest.insert(latest, None);
                }
            }
        }
        for change in &record.storage {
            let slot = B256::from(change.slot);
            let word = encode_word(&change.post);
            let latest = (!change.post.is_zero()).then(|| word.clone());
            self.latest
                .insert(keys.latest_storage(&change.address, &slot), latest);
            self.history
                .insert(keys.history_storage(number, &change.address, &slot), word);
        }
    }

    /// Queue everything into `batch`, history with `history_ttl`.
    pub fn queue(self, keys: &Keys, history_ttl: Duration, batch: &mut WriteBatch) {
        for (hash, code) in self.codes {
            batch.set(keys.code(&hash), code.to_vec());
        }
        for (key, value) in self.latest {
            match value {
                Some(value) => batch.set(key, value),
                None => batch.delete(key),
            };
        }
        for (key, value) in self.history {
            batch.set_with_ttl(key, value, history_ttl);
        }
    }
}

/// Queue the state writes of `record` into `batch`: latest state, history with `history_ttl`,
/// and new code.
pub fn queue_state_writes(
    keys: &Keys,
    record: &ExecutionRecord,
    history_ttl: Duration,
    batch: &mut WriteBatch,
) {
    let mut writes = StateWrites::default();
    writes.add(keys, record);
    writes.queue(keys, history_ttl, batch);
}

/// Queue `blk:rcpt:{n}` for `record`.
pub fn queue_receipts(keys: &Keys, record: &ExecutionRecord, batch: &mut WriteBatch) {
    batch.set(
        keys.receipts(record.number),
        encode_receipts(&record.receipts),
    );
}

/// `idx:exec:progress` with state complete up to `block` after `total_txs` transactions.
pub fn exec_progress_at(block: u64, total_txs: u64, now: u64) -> Vec<u8> {
    encode_json(&ExecProgress {
        latest_executed_block: block,
        last_execution_time: now,
        total_txs_executed: total_txs,
    })
}
