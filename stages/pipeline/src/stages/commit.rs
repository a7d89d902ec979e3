//! Commit stage: applies execution records to `st:latest:*`, history `st:{n}:*` (with TTL) and
//! `st:code:*`, then `idx:exec:progress` and the commit checkpoint, in one ordered batch; then
//! the blocks leave the state overlay. Every write is a SET or DEL of a value fixed by the
//! record, so applying a record twice leaves the same bytes as applying it once (the crash
//! rule). Its unwind restores the records' pre-values and deletes their history.
//!
//! The records already waiting, up to `batch_size`, are applied in one batch (one round trip,
//! one durable commit); progress and checkpoint name the last of them. While the pipeline is
//! behind the syncer the stage waits up to [`crate::stage::CATCH_UP_LINGER`] for a fuller
//! batch, which writes each `st:latest:*` key once for all its blocks instead of once per block.

use super::merkle::VerifiedBatch;
use crate::metrics::metrics;
use crate::stage::{Shared, Stage, StageError, UnwindBatch};
use alloy_primitives::{map::HashMap, Address, Bytes, B256, U256};
use primitives::clock::unix_now;
use primitives::contract::{AccountJson, ExecProgress};
use primitives::keys::{Key, Keys};
use primitives::record::{AccountState, ExecutionRecord};
use primitives::stage_id::StageId;
use primitives::store::WriteBatch;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const STAGE: StageId = StageId::Commit;

/// The commit stage's settings.
#[derive(Debug, Clone)]
pub struct CommitSettings {
    /// Time to live of the history keys `st:{n}:*`.
    pub history_ttl: Duration,
}

/// The commit stage: its checkpoint and the running transaction count `idx:exec:progress`
/// reports.
#[derive(Debug)]
pub struct CommitStage {
    settings: CommitSettings,
    committed: u64,
    total_txs: u64,
}

impl CommitStage {
    /// Commit after block `committed`, on a store whose `idx:exec:progress` counts `total_txs`
    /// transactions.
    pub fn new(settings: CommitSettings, committed: u64, total_txs: u64) -> Self {
        Self {
            settings,
            committed,
            total_txs,
        }
    }
}

impl Stage for CommitStage {
    /// Blocks the merkle stage verified (each batch whole: its storage roots are those after
    /// its last block).
    type Input = Arc<VerifiedBatch>;
    /// The last block committed (for the prune stage).
    type Output = u64;
    const ID: StageId = STAGE;

    /// Apply `input` (consecutive blocks; those at or below the checkpoint, which a restart
    /// may hand over again, are skipped) in one batch.
    fn execute(
        &mut self,
        shared: &Shared,
        input: Vec<Arc<VerifiedBatch>>,
    ) -> Result<Vec<u64>, StageError> {
        let mut writes = StateWrites::default();
        let mut records = Vec::new();
        for verified in &input {
            let fresh: Vec<_> = verified
                .records
                .iter()
                .filter(|r| r.number > self.committed)
                .collect();
            writes.add_batch(&fresh, verified.storage_roots.as_deref());
            records.extend(fresh);
        }
        let Some(last) = records.last().copied() else {
            return Ok(Vec::new());
        };
        let started = Instant::now();
        let keys = shared.store.keys();
        let txs: u64 = records.iter().map(|r| r.tx_count() as u64).sum();
        let mut batch = WriteBatch::new();
        writes.queue(keys, self.settings.history_ttl, &mut batch);
        // Progress and checkpoint vouch for the state: they land after it, in that order.
        batch.fence().put(
            keys.exec_progress(),
            &exec_progress_at(last.number, self.total_txs + txs),
        );
        batch.fence();
        shared
            .store
            .queue_checkpoint(&mut batch, STAGE, last.number, last.hash);
        shared.store.write(STAGE, batch)?;
        let m = metrics();
        m.state_commit_latency_seconds
            .observe(started.elapsed().as_secs_f64());
        self.committed = last.number;
        shared.control.note_written(STAGE, last.number);
        for record in &records {
            shared.layers.release(record.number);
            self.total_txs += record.tx_count() as u64;
            m.execution_height.set(record.number as i64);
            m.execution_lag
                .set((m.sync_height.get() - record.number as i64).max(0));
            m.txs_executed_total.inc_by(record.tx_count() as u64);
            m.gas_used_total.inc_by(record.gas_used);
            let totals = (record.tx_count() as u64, record.gas_used);
            shared.record_progress(STAGE, record.number, totals, started);
        }
        Ok(vec![last.number])
    }

    /// Put back every pre-value of the block (accounts with the storage roots the merkle
    /// stage's unwind noted), delete its history keys, and move progress and checkpoint to its
    /// parent.
    fn unwind(
        &mut self,
        shared: &Shared,
        record: &ExecutionRecord,
        batch: &mut UnwindBatch,
    ) -> Result<(), StageError> {
        if record.number > self.committed {
            return Ok(());
        }
        let keys = shared.store.keys();
        let number = record.number;
        let storage_roots: HashMap<Address, B256> = record
            .accounts
            .iter()
            .filter_map(|c| Some((c.address, batch.storage_root(&c.address)?)))
            .collect();
        let undo = batch.undo();
        for change in &record.accounts {
            let latest = keys.latest_account(&change.address);
            match &change.pre {
                Some(pre) => {
                    let root = storage_roots.get(&change.address).copied();
                    undo.put(latest, &account_json(pre, root.unwrap_or(B256::ZERO)))
                }
                None => undo.remove(latest),
            };
            undo.remove(keys.history_account(number, &change.address));
        }
        for slot in &record.storage {
            let slot_key = B256::from(slot.slot);
            let latest = keys.latest_storage(&slot.address, &slot_key);
            if slot.pre.is_zero() {
                undo.remove(latest);
            } else {
                undo.put(latest, &slot.pre);
            }
            undo.remove(keys.history_storage(number, &slot.address, &slot_key));
        }
        self.total_txs = self.total_txs.saturating_sub(record.tx_count() as u64);
        undo.put(
            keys.exec_progress(),
            &exec_progress_at(number - 1, self.total_txs),
        );
        batch.checkpoint(shared, STAGE, number - 1, record.parent_hash);
        self.committed = number - 1;
        Ok(())
    }
}

/// `idx:exec:progress` with state complete up to `block` after `total_txs` transactions.
pub fn exec_progress_at(block: u64, total_txs: u64) -> ExecProgress {
    ExecProgress {
        latest_executed_block: block,
        last_execution_time: unix_now(),
        total_txs_executed: total_txs,
    }
}

/// The JSON the contract keeps for an account with its storage root (the zero hash where it
/// is not known: verification off, or a pre-value restored by an unwind).
fn account_json(account: &AccountState, storage_root: B256) -> AccountJson {
    AccountJson {
        balance: account.balance,
        nonce: account.nonce,
        code_hash: account.code_hash,
        storage_root,
    }
}

/// The state writes of consecutive blocks, merged: each `st:latest:*` key and each code is
/// written once, with its value after the last block; every block keeps its own history keys.
/// Keys are spelled only when queued, once per distinct key.
#[derive(Debug, Default)]
struct StateWrites {
    /// Latest account values: `Some` to set, `None` to delete.
    accounts: HashMap<Address, Option<AccountJson>>,
    /// Latest slot values; zero deletes the key.
    slots: HashMap<(Address, B256), U256>,
    /// History accounts (`None`: destroyed) by block.
    history_accounts: Vec<(u64, Address, Option<AccountJson>)>,
    /// History slots by block.
    history_slots: Vec<(u64, Address, B256, U256)>,
    /// New code by hash.
    codes: BTreeMap<B256, Bytes>,
}

/// A latest-state write, ready to queue.
enum LatestWrite {
    Account(Key<AccountJson>, Option<AccountJson>),
    Slot(Key<U256>, U256),
}

impl LatestWrite {
    fn key(&self) -> &str {
        match self {
            LatestWrite::Account(key, _) => key.as_str(),
            LatestWrite::Slot(key, _) => key.as_str(),
        }
    }
}

/// A history write, ready to queue.
enum HistoryWrite {
    Account(Key<Option<AccountJson>>, Option<AccountJson>),
    Slot(Key<U256>, U256),
}

impl HistoryWrite {
    fn key(&self) -> &str {
        match self {
            HistoryWrite::Account(key, _) => key.as_str(),
            HistoryWrite::Slot(key, _) => key.as_str(),
        }
    }
}

impl StateWrites {
    /// Add the changes of `records` (consecutive blocks of one verified batch, after those
    /// added so far) with the batch's `storage_roots` (after its last block), which the latest
    /// account values carry. History values carry the zero storage root, as the original
    /// service wrote them: a block inside a batch has no storage root of its own.
    fn add_batch(
        &mut self,
        records: &[&Arc<ExecutionRecord>],
        storage_roots: Option<&HashMap<Address, B256>>,
    ) {
        let root_of = |address: &Address| {
            storage_roots
                .and_then(|roots| roots.get(address).copied())
                .unwrap_or(B256::ZERO)
        };
        for record in records {
            let number = record.number;
            for (hash, code) in &record.codes {
                self.codes.insert(*hash, code.clone());
            }
            for change in &record.accounts {
                let history = change.post.as_ref().map(|a| account_json(a, B256::ZERO));
                self.history_accounts
                    .push((number, change.address, history));
                let latest = change
                    .post
                    .as_ref()
                    .map(|a| account_json(a, root_of(&change.address)));
                self.accounts.insert(change.address, latest);
            }
            for change in &record.storage {
                let slot = B256::from(change.slot);
                self.history_slots
                    .push((number, change.address, slot, change.post));
                self.slots.insert((change.address, slot), change.post);
            }
        }
    }

    /// Queue everything into `batch`, history with `history_ttl`; each group in key order, which
    /// the embedded store inserts with fewer page visits.
    fn queue(self, keys: &Keys, history_ttl: Duration, batch: &mut WriteBatch) {
        for (hash, code) in &self.codes {
            batch.put(keys.code(hash), code);
        }
        let accounts = self
            .accounts
            .into_iter()
            .map(|(address, json)| LatestWrite::Account(keys.latest_account(&address), json));
        let slots = self.slots.into_iter().map(|((address, slot), value)| {
            LatestWrite::Slot(keys.latest_storage(&address, &slot), value)
        });
        let mut latest: Vec<LatestWrite> = accounts.chain(slots).collect();
        // Each latest key occurs once: no order among equals to keep.
        latest.sort_unstable_by(|a, b| a.key().cmp(b.key()));
        for write in latest {
            match write {
                LatestWrite::Account(key, Some(json)) => batch.put(key, &json),
                LatestWrite::Account(key, None) => batch.remove(key),
                LatestWrite::Slot(key, value) if value.is_zero() => batch.remove(key),
                LatestWrite::Slot(key, value) => batch.put(key, &value),
            };
        }
        let accounts = self
            .history_accounts
            .into_iter()
            .map(|(number, address, json)| {
                HistoryWrite::Account(keys.history_account(number, &address), json)
            });
        let slots = self
            .history_slots
            .into_iter()
            .map(|(number, address, slot, value)| {
                HistoryWrite::Slot(keys.history_storage(number, &address, &slot), value)
            });
        let mut history: Vec<HistoryWrite> = accounts.chain(slots).collect();
        // Stable: were a key listed twice, its last value would still be written last.
        history.sort_by(|a, b| a.key().cmp(b.key()));
        for write in history {
            match write {
                HistoryWrite::Account(key, json) => batch.put_with_ttl(key, &json, history_ttl),
                HistoryWrite::Slot(key, value) => batch.put_with_ttl(key, &value, history_ttl),
            };
        }
    }
}
