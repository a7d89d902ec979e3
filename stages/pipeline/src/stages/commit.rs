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
            shared.record_record_progress(STAGE, record, started);
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

    /// Queue everything into `batch`, history with `history_ttl`; the latest values in key
    /// order, which the embedded store inserts with fewer page visits.
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
        // In block order, unsorted: the embedded store files them by block itself, and a
        // server takes them in any order.
        for (number, address, json) in self.history_accounts {
            batch.put_with_ttl(keys.history_account(number, &address), &json, history_ttl);
        }
        for (number, address, slot, value) in self.history_slots {
            let key = keys.history_storage(number, &address, &slot);
            batch.put_with_ttl(key, &value, history_ttl);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::merkle::VerifyRoot;
    use crate::stages::receipts::ReceiptsStage;
    use crate::startup::start_point;
    use crate::test_utils::{
        assert_same_snapshot, assert_same_store, geth_chain, history_keys, state_keys, under,
        with_prefix, without_run_times, Snapshot, SyncedStore, CHAIN_LENGTH, HISTORY_TTL,
        KEY_PREFIX,
    };
    use alloy_primitives::keccak256;
    use primitives::record::{AccountChange, StorageChange};
    use primitives::value::ContractRead;
    use std::collections::BTreeSet;

    fn settings() -> CommitSettings {
        CommitSettings {
            history_ttl: HISTORY_TTL,
        }
    }

    /// `idx:exec:progress` as (latestExecutedBlock, totalTxsExecuted).
    fn progress(store: &SyncedStore) -> (u64, u64) {
        let progress = store
            .memory
            .read(&store.keys().exec_progress())
            .expect("read")
            .expect("progress");
        (progress.latest_executed_block, progress.total_txs_executed)
    }

    #[test]
    fn the_whole_chain_leaves_the_head_state_of_the_fixture() {
        let chain = geth_chain();
        let store = SyncedStore::new(CHAIN_LENGTH);
        store.execute_to(CHAIN_LENGTH);
        let snapshot = store.snapshot();
        let keys = store.keys();
        if let Some(stray) = snapshot.keys().find(|key| !key.starts_with(KEY_PREFIX)) {
            panic!("{stray} is written outside the key prefix");
        }
        let expected_accounts: BTreeSet<String> = chain
            .head_state
            .keys()
            .map(|address| keys.latest_account(address).into_string())
            .collect();
        let accounts: BTreeSet<String> = under(&snapshot, "st:latest:acc:").into_keys().collect();
        assert_eq!(accounts, expected_accounts, "the accounts");
        let mut expected_slots = BTreeSet::new();
        for (address, expected) in &chain.head_state {
            let account = store
                .memory
                .read(&keys.latest_account(address))
                .expect("read")
                .expect("listed above");
            assert_eq!(
                (account.balance, account.nonce, account.code_hash),
                (expected.balance, expected.nonce, expected.code_hash),
                "{address}"
            );
            assert_eq!(
                account.storage_root, expected.storage_root,
                "the storage root of {address}"
            );
            if !expected.code.is_empty() {
                assert_eq!(
                    keccak256(&expected.code),
                    expected.code_hash,
                    "the dump of {address}"
                );
                let code = store
                    .memory
                    .read(&keys.code(&expected.code_hash))
                    .expect("read");
                assert_eq!(code.as_ref(), Some(&expected.code), "code of {address}");
            }
            for (slot, value) in &expected.storage {
                let key = keys.latest_storage(address, slot);
                let stored = store.memory.read(&key).expect("read");
                assert_eq!(stored, Some(*value), "{key}");
                expected_slots.insert(key.into_string());
            }
        }
        let slots: BTreeSet<String> = under(&snapshot, "st:latest:stor:").into_keys().collect();
        assert_eq!(slots, expected_slots, "the storage slots");
        assert!(
            expected_slots.len() > 2000,
            "the head state has {} slots",
            expected_slots.len()
        );
        assert_eq!(
            progress(&store),
            (CHAIN_LENGTH, 603),
            "fixtures/README.md: 603 transactions"
        );
        let checkpoint = store
            .shared
            .store
            .checkpoint(STAGE)
            .expect("read")
            .expect("checkpoint");
        assert_eq!(
            (checkpoint.block, checkpoint.hash),
            (CHAIN_LENGTH, chain.hash(CHAIN_LENGTH))
        );
        // What the last block left behind is the head state.
        let last = format!("{KEY_PREFIX}st:{CHAIN_LENGTH}:");
        let history: Vec<String> = history_keys(&snapshot)
            .into_iter()
            .filter(|(n, _)| *n == CHAIN_LENGTH)
            .map(|(_, key)| key)
            .collect();
        assert!(!history.is_empty(), "block {CHAIN_LENGTH} changed state");
        for key in history {
            let rest = &key[last.len()..];
            if let Some(address) = rest.strip_prefix("acc:") {
                let address: Address = address.parse().expect("an address");
                let left = store
                    .memory
                    .read(&keys.history_account(CHAIN_LENGTH, &address))
                    .expect("read")
                    .expect("listed");
                let expected = chain.head_state.get(&address);
                // History carries the zero storage root, as the original service wrote it.
                assert_eq!(
                    left.map(|a| (a.balance, a.nonce, a.code_hash, a.storage_root)),
                    expected.map(|a| (a.balance, a.nonce, a.code_hash, B256::ZERO)),
                    "{key}"
                );
            } else {
                let (address, slot) = rest
                    .strip_prefix("stor:")
                    .and_then(|s| s.split_once(':'))
                    .expect("a storage history key");
                let (address, slot): (Address, B256) = (
                    address.parse().expect("an address"),
                    slot.parse().expect("a slot"),
                );
                let left = store
                    .memory
                    .read(&keys.history_storage(CHAIN_LENGTH, &address, &slot))
                    .expect("read")
                    .expect("listed");
                let expected = chain
                    .head_state
                    .get(&address)
                    .and_then(|a| a.storage.get(&slot))
                    .copied()
                    .unwrap_or_default();
                assert_eq!(left, expected, "{key}");
            }
        }
    }

    #[test]
    fn applying_blocks_again_leaves_the_same_bytes() {
        let chain = geth_chain();
        let store = SyncedStore::new(60);
        store.execute_to(40);
        // Blocks 41..=60 as the merkle stage passes them on, block by block.
        let records = store.execute_batch(41, 60);
        let verified = store
            .merkle(VerifyRoot::Every)
            .execute(&store.shared, records)
            .expect("verify");
        assert_eq!(verified.len(), 20, "one batch per block");
        CommitStage::new(settings(), 40, chain.txs_up_to(40))
            .execute(&store.shared, verified.clone())
            .expect("commit");
        ReceiptsStage::new(40)
            .execute(&store.shared, verified.clone())
            .expect("receipts");
        let applied = store.timeless_snapshot();
        assert!(
            chain.txs_up_to(60) > chain.txs_up_to(40),
            "blocks 41..=60 have transactions"
        );
        // As after a crash between the state writes and the checkpoint: all at once ...
        let mut again = CommitStage::new(settings(), 40, chain.txs_up_to(40));
        again
            .execute(&store.shared, verified.clone())
            .expect("commit");
        assert_same_snapshot(
            &store.timeless_snapshot(),
            &applied,
            "applied twice at once",
        );
        // ... and block by block.
        let mut again = CommitStage::new(settings(), 40, chain.txs_up_to(40));
        for batch in &verified {
            again
                .execute(&store.shared, vec![batch.clone()])
                .expect("commit");
        }
        assert_same_snapshot(
            &store.timeless_snapshot(),
            &applied,
            "applied twice one by one",
        );
        assert_eq!(progress(&store), (60, chain.txs_up_to(60)));
        // A stage past them (a restart hands them over again) skips them: nothing written.
        let before = store.snapshot();
        let written = CommitStage::new(settings(), 60, chain.txs_up_to(60))
            .execute(&store.shared, verified)
            .expect("commit");
        assert!(written.is_empty(), "{written:?}");
        assert_same_snapshot(&store.snapshot(), &before, "nothing written");
    }

    #[test]
    fn one_batch_of_many_blocks_writes_what_one_block_at_a_time_writes() {
        const LAST: u64 = 150;
        let one_by_one = SyncedStore::new(LAST);
        one_by_one.execute_to(LAST);
        let batched = SyncedStore::new(LAST);
        start_point(&batched.shared).expect("take over");
        let records = batched.execute_batch(1, LAST);
        let verified = batched
            .merkle(VerifyRoot::Batch)
            .execute(&batched.shared, records)
            .expect("verify");
        assert_eq!(verified.len(), 1, "one verified batch");
        CommitStage::new(settings(), 0, 0)
            .execute(&batched.shared, verified.clone())
            .expect("commit");
        ReceiptsStage::new(0)
            .execute(&batched.shared, verified)
            .expect("receipts");
        assert_same_store(&batched, &one_by_one, "batched and one by one");
    }

    /// What the commit stage keeps: the world state, the progress and its checkpoint.
    fn commit_view(store: &SyncedStore, snapshot: &Snapshot) -> Snapshot {
        let keys = store.keys();
        let timeless = without_run_times(keys, snapshot);
        let mut view = state_keys(&timeless);
        for key in [
            keys.exec_progress().into_string(),
            keys.stage_checkpoint(STAGE).into_string(),
        ] {
            let value = timeless
                .get(&key)
                .unwrap_or_else(|| panic!("{key} missing"));
            view.insert(key, value.clone());
        }
        view
    }

    #[test]
    fn unwind_restores_the_state_before_each_block() {
        const LAST: u64 = 40;
        let store = SyncedStore::new(LAST);
        let mut pipeline = store.serial();
        let mut before = vec![commit_view(&store, &store.snapshot())];
        while pipeline.head().0 < LAST {
            pipeline.run_next(&store.shared).expect("run");
            before.push(commit_view(&store, &store.snapshot()));
        }
        let start = start_point(&store.shared).expect("start");
        let mut commit = CommitStage::new(settings(), start.committed, start.total_txs);
        // The merkle stage's unwind notes the storage roots the accounts get back.
        let mut merkle = store.merkle(VerifyRoot::Every);
        for record in store.records(1, LAST).iter().rev() {
            let mut unwind = UnwindBatch::default();
            merkle
                .unwind(&store.shared, record, &mut unwind)
                .expect("unwind the tries");
            commit
                .unwind(&store.shared, record, &mut unwind)
                .expect("unwind");
            store.write(unwind.into_batch());
            let restored = commit_view(&store, &store.snapshot());
            assert_same_snapshot(
                &restored,
                &before[record.number as usize - 1],
                &format!("the state before block {} restored", record.number),
            );
        }
        // Down to the genesis state as `init` wrote it.
        assert!(history_keys(&store.snapshot()).is_empty());
    }

    #[test]
    fn history_keys_carry_the_ttl_and_nothing_else_expires() {
        let store = SyncedStore::new(30);
        store.execute_to(30);
        let snapshot = store.snapshot();
        let history: BTreeSet<String> = history_keys(&snapshot)
            .into_iter()
            .map(|(_, key)| key)
            .collect();
        let blocks: BTreeSet<u64> = history_keys(&snapshot)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(blocks.len() >= 25, "history of {} blocks", blocks.len());
        for key in snapshot.keys() {
            let ttl = store.memory.ttl(key);
            if history.contains(key) {
                let ttl = ttl.unwrap_or_else(|| panic!("{key} has no TTL"));
                assert!(
                    ttl <= HISTORY_TTL && ttl > HISTORY_TTL - Duration::from_secs(60),
                    "{key}: {ttl:?}"
                );
            } else {
                assert_eq!(ttl, None, "{key}");
            }
        }
    }

    #[test]
    fn a_destroyed_account_and_a_cleared_slot_are_deleted_and_restored_by_unwind() {
        // The fixture chain destroys nothing and clears no slot: a record that does both, on
        // top of its state after block 10, stands in for a self-destruct.
        let chain = geth_chain();
        let store = SyncedStore::new(11);
        store.execute_to(10);
        let keys = store.keys().clone();
        let before = store.snapshot();
        let slots_of = |address: &Address| -> Vec<(B256, U256)> {
            let prefix = keys.latest_storage_prefix(address);
            with_prefix(&before, &prefix)
                .into_iter()
                .map(|(key, value)| {
                    let slot: B256 = key[prefix.len()..].parse().expect("a slot");
                    let value = U256::from_str_radix(
                        std::str::from_utf8(&value)
                            .expect("text")
                            .trim_start_matches("0x"),
                        16,
                    )
                    .expect("a word");
                    (slot, value)
                })
                .collect()
        };
        // Two accounts with storage: one is destroyed, the other loses one slot.
        let with_storage: Vec<Address> = chain
            .head_state
            .keys()
            .filter(|address| slots_of(address).len() >= 2)
            .take(2)
            .copied()
            .collect();
        let [destroyed, trimmed] = with_storage[..] else {
            panic!("two accounts with storage after block 10");
        };
        let destroyed_json = store
            .memory
            .read(&keys.latest_account(&destroyed))
            .expect("read")
            .expect("exists");
        assert_ne!(
            destroyed_json.storage_root,
            B256::ZERO,
            "written with tries"
        );
        let mut storage: Vec<StorageChange> = slots_of(&destroyed)
            .into_iter()
            .map(|(slot, pre)| StorageChange {
                address: destroyed,
                slot: slot.into(),
                pre,
                post: U256::ZERO,
            })
            .collect();
        let (cleared, cleared_pre) = slots_of(&trimmed)[0];
        storage.push(StorageChange {
            address: trimmed,
            slot: cleared.into(),
            pre: cleared_pre,
            post: U256::ZERO,
        });
        let record = ExecutionRecord {
            number: 11,
            hash: chain.hash(11),
            parent_hash: chain.hash(10),
            gas_used: 0,
            receipts: Vec::new(),
            accounts: vec![AccountChange {
                address: destroyed,
                pre: Some(AccountState {
                    balance: destroyed_json.balance,
                    nonce: destroyed_json.nonce,
                    code_hash: destroyed_json.code_hash,
                }),
                post: None,
                storage_wiped: true,
            }],
            storage,
            codes: Vec::new(),
        };
        let mut commit = CommitStage::new(settings(), 10, chain.txs_up_to(10));
        // No header has its state root: passed on unverified.
        let unverified = VerifiedBatch::new(vec![Arc::new(record.clone())], None);
        commit
            .execute(&store.shared, vec![Arc::new(unverified)])
            .expect("commit");
        let after = store.snapshot();
        let latest = |key: String| after.get(&key).cloned();
        assert_eq!(latest(keys.latest_account(&destroyed).into_string()), None);
        assert!(with_prefix(&after, &keys.latest_storage_prefix(&destroyed)).is_empty());
        assert_eq!(
            latest(keys.latest_storage(&trimmed, &cleared).into_string()),
            None
        );
        assert_eq!(
            with_prefix(&after, &keys.latest_storage_prefix(&trimmed)).len(),
            slots_of(&trimmed).len() - 1
        );
        // History: a destroyed account is `null`, a cleared slot the zero word.
        assert_eq!(
            latest(keys.history_account(11, &destroyed).into_string()).as_deref(),
            Some(&b"null"[..])
        );
        let zero_word = format!("0x{}", "0".repeat(64)).into_bytes();
        assert_eq!(
            latest(keys.history_storage(11, &trimmed, &cleared).into_string()),
            Some(zero_word)
        );
        let mut unwind = UnwindBatch::default();
        // The storage root the merkle stage's unwind would note: the one before the block.
        unwind.note_storage_roots([(destroyed, destroyed_json.storage_root)]);
        commit
            .unwind(&store.shared, &record, &mut unwind)
            .expect("unwind");
        store.write(unwind.into_batch());
        assert_same_snapshot(
            &commit_view(&store, &store.snapshot()),
            &commit_view(&store, &before),
            "the account and its storage are back",
        );
    }
}
