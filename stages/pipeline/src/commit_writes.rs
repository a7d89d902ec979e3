//! Applying an execution record to the store: `st:latest:*` gets the post-values, `st:{n}:*`
//! history gets what block n left behind (with TTL), new code goes under `st:code:*`, receipts
//! under `blk:rcpt:{n}`. Every write is a SET or DEL of a value fixed by the record, so applying
//! a record twice leaves the same bytes as applying it once (the crash rule).

use alloy_primitives::{map::HashMap, Address, Bytes, B256, U256};
use primitives::block::encode_receipts;
use primitives::contract::{encode_json, encode_word, AccountJson, ExecProgress};
use primitives::keys::Keys;
use primitives::record::ExecutionRecord;
use primitives::store::WriteBatch;
use std::collections::BTreeMap;
use std::time::Duration;

/// The history value of a destroyed account.
const DESTROYED_ACCOUNT: &[u8] = b"null";

/// The state writes of consecutive blocks, merged: each `st:latest:*` key and each code is
/// written once, with its value after the last block; every block keeps its own history keys.
/// Keys are spelled only when queued, once per distinct key.
#[derive(Debug, Default)]
pub struct StateWrites {
    /// Latest account values (JSON): `Some` to set, `None` to delete.
    accounts: HashMap<Address, Option<Vec<u8>>>,
    /// Latest slot values; zero deletes the key.
    slots: HashMap<(Address, B256), U256>,
    /// History entries (each key names its block).
    history: Vec<(String, Vec<u8>)>,
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
            let json = change.post.as_ref().map(|account| {
                AccountJson {
                    balance: account.balance,
                    nonce: account.nonce,
                    code_hash: account.code_hash,
                    storage_root: B256::ZERO,
                }
                .encode()
            });
            let history_value = json.clone().unwrap_or_else(|| DESTROYED_ACCOUNT.to_vec());
            self.history.push((history, history_value));
            self.accounts.insert(change.address, json);
        }
        for change in &record.storage {
            let slot = B256::from(change.slot);
            self.history.push((
                keys.history_storage(number, &change.address, &slot),
                encode_word(&change.post),
            ));
            self.slots.insert((change.address, slot), change.post);
        }
    }

    /// Queue everything into `batch`, history with `history_ttl`; each group in key order, which
    /// the embedded store inserts with fewer page visits.
    pub fn queue(self, keys: &Keys, history_ttl: Duration, batch: &mut WriteBatch) {
        for (hash, code) in self.codes {
            batch.set(keys.code(&hash), code.to_vec());
        }
        let accounts = self
            .accounts
            .into_iter()
            .map(|(address, json)| (keys.latest_account(&address), json));
        let slots = self.slots.into_iter().map(|((address, slot), value)| {
            let word = (!value.is_zero()).then(|| encode_word(&value));
            (keys.latest_storage(&address, &slot), word)
        });
        let mut latest: Vec<(String, Option<Vec<u8>>)> = accounts.chain(slots).collect();
        // Each latest key occurs once: no order among equals to keep.
        latest.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (key, value) in latest {
            match value {
                Some(value) => batch.set(key, value),
                None => batch.delete(key),
            };
        }
        let mut history = self.history;
        // Stable: were a key listed twice, its last value would still be written last.
        history.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, value) in history {
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
