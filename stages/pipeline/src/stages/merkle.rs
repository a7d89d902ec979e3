//! Merkle stage: keeps the account trie and every storage trie in the store (`trie:acc:*`,
//! `trie:stor:*`, see the `state-trie` crate for the layout), updates them from the execution
//! records, and checks the state root against each batch's last header before anything of the
//! batch reaches the state keys (it runs between execution and commit: commit writes the real
//! storage roots it computes, and a block that fails verification never reaches `st:latest`).
//!
//! Crash rule: a batch's node changes are written first as ONE value with their pre-values
//! (`trie:pending`, [`TrieRecord`]), then applied, then the checkpoint moves, then the record
//! goes, in one ordered write; a restart that finds the record applies it again
//! ([`finish_pending`]). On a store whose writes land whole (the embedded store: one
//! transaction each) the record is left out: nodes and checkpoint land together or not at all.
//! The unwind of a block is the trie update back to its pre-values (from its execution record),
//! written the same way.
//!
//! In `run` the writes go out on a thread of their own (`trie writer`), so the next batch is
//! computed while the last is written: its node reads see the nodes still being written
//! ([`Unwritten`]), and a batch is passed on to commit only once its write has returned, so the
//! merkle checkpoint is never behind commit's. One write is in progress at a time: the next
//! is handed over when it returns.
//!
//! With `verify_root = "batch"` the blocks waiting (up to `batch_size`) are verified together
//! against the last one's header (while catching up; at the head each block comes alone); on a
//! mismatch the first bad block is found by bisection over the batch's prefixes, the blocks
//! before it are written and passed on, and the stage stops with both roots. `"every"`
//! verifies block by block; `"off"` passes the records on untouched (no tries kept).

use crate::stage::{forward, BlockFailure, Shared, Stage, StageError, StageIo, UnwindBatch};
use crate::tries::node_id;
use alloy_primitives::{map::HashMap, Address, Bytes, B256};
use crossbeam_channel::{bounded, Receiver, Sender};
use primitives::record::ExecutionRecord;
use primitives::stage_id::StageId;
use primitives::store::{StoreError, WriteBatch};
use primitives::trie_record::{TrieNodeChange, TrieRecord};
use primitives::value::ContractRead;
use state_trie::{
    AccountFields, NodeChange, NodeKey, NodeSource, StateChanges, StateTrie, TrieError, UpdateError,
};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

const STAGE: StageId = StageId::Merkle;

pub use state_trie::DEFAULT_CACHED_LEVELS;

/// When the stage checks the state root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyRoot {
    /// Every block on its own.
    Every,
    /// Once per batch of the blocks waiting (each block alone at the head).
    Batch,
    /// Never: no tries are kept and the state is not verified.
    Off,
}

/// The merkle stage's settings.
#[derive(Debug, Clone)]
pub struct MerkleSettings {
    /// When the state root is checked.
    pub verify: VerifyRoot,
    /// Top levels of the account trie kept in memory.
    pub cached_levels: usize,
}

/// Blocks whose state the merkle stage verified (or passed on unverified with `"off"`), as one
/// unit for commit: the storage roots are those after the last block.
#[derive(Debug, Clone)]
pub struct VerifiedBatch {
    /// The blocks' execution records, oldest first.
    pub records: Vec<Arc<ExecutionRecord>>,
    /// The storage root after the last block of every account the blocks touched; `None` when
    /// the state was not verified (no tries kept).
    pub storage_roots: Option<Arc<HashMap<Address, B256>>>,
}

impl VerifiedBatch {
    /// The last block.
    pub fn last(&self) -> Option<&Arc<ExecutionRecord>> {
        self.records.last()
    }

    /// Blocks with the storage roots after the last of them (`None`: unverified).
    pub fn new(
        records: Vec<Arc<ExecutionRecord>>,
        storage_roots: Option<HashMap<Address, B256>>,
    ) -> Self {
        Self {
            records,
            storage_roots: storage_roots.map(Arc::new),
        }
    }
}

/// Why a block failed the merkle stage.
#[derive(Debug, thiserror::Error)]
pub enum MerkleError {
    /// The state after the block does not have the header's state root.
    #[error(
        "block {block}: stateRoot mismatch: header says {expected:#x}, the state gives {got:#x}"
    )]
    StateRoot {
        /// The block.
        block: u64,
        /// The header's state root.
        expected: B256,
        /// The root of the state after executing it.
        got: B256,
    },
    /// The stored tries do not fit the state changes (damaged, or out of step).
    #[error("block {block}: the stored state tries are inconsistent: {error}")]
    Trie {
        /// The first block of the batch being applied.
        block: u64,
        /// What the trie found.
        error: TrieError,
    },
    /// The stored tries do not hold the state after a block they should.
    #[error("block {block}: the stored state tries do not hold the state after it")]
    TriesBehind {
        /// The block.
        block: u64,
    },
    /// The header whose state root is needed is missing.
    #[error("block {block}: {key} is missing (its stateRoot is needed)")]
    MissingHeader {
        /// The block.
        block: u64,
        /// The header's key.
        key: String,
    },
}

impl MerkleError {
    /// The block it names.
    pub fn block(&self) -> u64 {
        match self {
            MerkleError::StateRoot { block, .. }
            | MerkleError::Trie { block, .. }
            | MerkleError::TriesBehind { block }
            | MerkleError::MissingHeader { block, .. } => *block,
        }
    }
}

/// The merkle stage: the trie updater (with its cache of top nodes) and the checkpoint.
pub struct MerkleStage {
    settings: MerkleSettings,
    trie: StateTrie,
    /// The last block whose state the tries hold.
    checkpoint: u64,
}

impl MerkleStage {
    /// The stage with tries at `checkpoint`.
    pub fn new(settings: MerkleSettings, checkpoint: u64) -> Self {
        let trie = StateTrie::new(settings.cached_levels);
        Self {
            settings,
            trie,
            checkpoint,
        }
    }

    /// Verify the records from `io.input` (first `pending`, blocks executed before a restart)
    /// in batches of up to `max`. A block that fails verification ends the stage without
    /// stopping the others: the headers stage loads no more, the blocks before it are passed
    /// on and written by commit and receipts, then the error is reported.
    pub fn run(
        &mut self,
        shared: &Shared,
        pending: Vec<Arc<ExecutionRecord>>,
        io: StageIo<Arc<ExecutionRecord>, Arc<VerifiedBatch>>,
        max: usize,
    ) -> Result<(), StageError> {
        let unwritten = Unwritten::default();
        // Rendezvous: a batch is handed over once the write before it has returned.
        let (to_writer, writes) = bounded::<TrieWrite>(0);
        let result = std::thread::scope(|scope| {
            let writer = std::thread::Builder::new()
                .name("trie writer".into())
                .spawn_scoped(scope, || write_all(shared, &unwritten, writes, &io.outputs))
                .map_err(|e| StageError::Thread {
                    stage: STAGE,
                    reason: format!("cannot start the trie writer: {e}"),
                })?;
            let computed = self.compute_all(shared, pending, &io, max, &unwritten, to_writer);
            let written = writer.join().unwrap_or_else(|_| {
                Err(StageError::Thread {
                    stage: STAGE,
                    reason: "the trie writer panicked".into(),
                })
            });
            // A write failure comes first: it is why computing stopped.
            written.and(computed)
        });
        if result.is_err() {
            // The cache took the changes as written; they may not be.
            self.trie.clear_cache();
        }
        result
    }

    /// Verify batches of up to `max` records and hand each verified batch's write to the
    /// writer, until the input ends, a block fails or the writer is gone.
    fn compute_all(
        &mut self,
        shared: &Shared,
        pending: Vec<Arc<ExecutionRecord>>,
        io: &StageIo<Arc<ExecutionRecord>, Arc<VerifiedBatch>>,
        max: usize,
        unwritten: &Unwritten,
        to_writer: Sender<TrieWrite>,
    ) -> Result<(), StageError> {
        let meter = shared.meter(STAGE);
        let max = match self.settings.verify {
            VerifyRoot::Every => 1,
            VerifyRoot::Batch | VerifyRoot::Off => max.max(1),
        };
        let mut pending = pending.into_iter().peekable();
        while !shared.control.aborted() {
            let input: Vec<_> = if pending.peek().is_some() {
                pending.by_ref().take(max).collect()
            } else {
                meter.recv_batch_lingering(
                    STAGE,
                    &io.input,
                    max,
                    crate::stage::CATCH_UP_LINGER,
                    |record| shared.control.behind_head(record.number),
                )
            };
            if input.is_empty() {
                break;
            }
            // A store failure (or a lost lease) stops every stage; a block that fails
            // verification stops only the loading, below.
            let (writes, failure) = self
                .verify(shared, input, unwritten)
                .inspect_err(|error| shared.control.stop_after(error))?;
            for write in writes {
                unwritten.push(&write);
                if !meter.send(STAGE, &to_writer, write) {
                    // The writer failed; its error is the stage's.
                    return Ok(());
                }
            }
            if let Some(failure) = failure {
                // The writer passes on what it holds before the error is reported.
                drop(to_writer);
                shared.control.stop_loading();
                return Err(StageError::block(STAGE, failure));
            }
        }
        Ok(())
    }

    /// Verify `records` (consecutive blocks): the verified part written and returned, with the
    /// failure that ended it, if any.
    fn verify(
        &mut self,
        shared: &Shared,
        records: Vec<Arc<ExecutionRecord>>,
        unwritten: &Unwritten,
    ) -> Result<(Vec<TrieWrite>, Option<MerkleError>), StageError> {
        let records: Vec<_> = records
            .into_iter()
            .filter(|r| r.number > self.checkpoint || self.settings.verify == VerifyRoot::Off)
            .collect();
        let Some(last) = records.last() else {
            return Ok((Vec::new(), None));
        };
        if self.settings.verify == VerifyRoot::Off {
            let verified = Arc::new(VerifiedBatch::new(records, None));
            return Ok((vec![TrieWrite::pass_on(verified)], None));
        }
        let started = Instant::now();
        let source = StoreNodes { shared, unwritten };
        let (first, last) = (records[0].number, last.number);
        let expected = expected_root(shared, last)?;
        let update = match outcome(first, self.trie.update(&source, &changes_of(&records)))? {
            Ok(update) => update,
            Err(failure) => return Ok((Vec::new(), Some(failure))),
        };
        if update.state_root == expected {
            return Ok((vec![self.prepare(shared, &records, update, started)], None));
        }
        self.trie.revert_cache(&update.node_changes);
        let whole = MerkleError::StateRoot {
            block: last,
            expected,
            got: update.state_root,
        };
        let bad = self.first_bad_block(&source, shared, &records, whole)?;
        let good: Vec<_> = records
            .iter()
            .take_while(|r| r.number < bad.block())
            .cloned()
            .collect();
        if good.is_empty() {
            return Ok((Vec::new(), Some(bad)));
        }
        match outcome(first, self.trie.update(&source, &changes_of(&good)))? {
            Ok(update) => Ok((
                vec![self.prepare(shared, &good, update, started)],
                Some(bad),
            )),
            Err(failure) => Ok((Vec::new(), Some(failure))),
        }
    }

    /// The first block of `records` whose state root is wrong, by bisection over the batch's
    /// prefixes (each a dry computation); `whole` is the whole batch's failure.
    fn first_bad_block(
        &mut self,
        source: &StoreNodes,
        shared: &Shared,
        records: &[Arc<ExecutionRecord>],
        whole: MerkleError,
    ) -> Result<MerkleError, StageError> {
        let first = records[0].number;
        // Prefixes shorter than `lo` verify; the prefix of length `hi` fails with `failure`.
        let (mut lo, mut hi, mut failure) = (1, records.len(), whole);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let block = records[mid - 1].number;
            let expected = expected_root(shared, block)?;
            let got = match outcome(
                first,
                self.trie.root_after(source, &changes_of(&records[..mid])),
            )? {
                Ok(root) => root,
                Err(failure) => return Ok(failure),
            };
            if got == expected {
                lo = mid + 1;
            } else {
                failure = MerkleError::StateRoot {
                    block,
                    expected,
                    got,
                };
                hi = mid;
            }
        }
        Ok(failure)
    }

    /// The batch's trie change (record, nodes, checkpoint) as one ordered write, with the
    /// verified batch it lets through; the tries are at the batch's last block from here on.
    fn prepare(
        &mut self,
        shared: &Shared,
        records: &[Arc<ExecutionRecord>],
        update: state_trie::TrieUpdate,
        started: Instant,
    ) -> TrieWrite {
        let last = &records[records.len() - 1];
        let nodes = update
            .node_changes
            .iter()
            .map(|change| (change.key, change.post.clone()))
            .collect();
        let record = TrieRecord {
            from: self.checkpoint,
            to: last.number,
            state_root: update.state_root,
            nodes: update.node_changes.iter().map(node_change).collect(),
        };
        let mut batch = WriteBatch::new();
        queue_change(shared, &record, last.hash, &mut batch);
        self.checkpoint = last.number;
        TrieWrite {
            batch,
            nodes: Arc::new(nodes),
            verified: Arc::new(VerifiedBatch {
                records: records.to_vec(),
                storage_roots: Some(Arc::new(update.storage_roots.into_iter().collect())),
            }),
            started,
        }
    }
}

/// Trie nodes' new values (`None`: removed).
type NodeValues = HashMap<NodeKey, Option<Bytes>>;

/// One verified batch's write, and what goes on once it is written.
struct TrieWrite {
    /// The trie change (record, nodes, checkpoint); empty with `"off"`.
    batch: WriteBatch,
    /// The nodes' new values, for reads while the write is on its way.
    nodes: Arc<NodeValues>,
    /// The batch for commit and receipts.
    verified: Arc<VerifiedBatch>,
    /// When the batch's computation started (for the progress figures).
    started: Instant,
}

impl TrieWrite {
    /// A batch passed on with nothing to write (`"off"`).
    fn pass_on(verified: Arc<VerifiedBatch>) -> Self {
        Self {
            batch: WriteBatch::new(),
            nodes: Arc::default(),
            verified,
            started: Instant::now(),
        }
    }

    /// Write the change, then count the blocks as verified (nothing with `"off"`); the batch
    /// to pass on.
    fn write(self, shared: &Shared) -> Result<Arc<VerifiedBatch>, StageError> {
        if self.batch.is_empty() {
            return Ok(self.verified);
        }
        shared.store.write(STAGE, self.batch)?;
        for record in &self.verified.records {
            shared.record_record_progress(STAGE, record, self.started);
        }
        Ok(self.verified)
    }
}

/// The node values of the writes handed to the writer and not yet returned, oldest first: the
/// next batch's reads look here before the store.
#[derive(Default)]
struct Unwritten(Mutex<VecDeque<Arc<NodeValues>>>);

impl Unwritten {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<NodeValues>>> {
        // The queue holds plain data: a panic elsewhere leaves it consistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A write handed over.
    fn push(&self, write: &TrieWrite) {
        self.queue().push_back(Arc::clone(&write.nodes));
    }

    /// The oldest write returned.
    fn pop(&self) {
        self.queue().pop_front();
    }

    /// The newest unwritten value of each of `keys` (one lock for all): `Some(None)` for a
    /// node being removed, `None` for one to read from the store.
    fn get(&self, keys: &[NodeKey]) -> Vec<Option<Option<Bytes>>> {
        let queue = self.queue();
        keys.iter()
            .map(|key| queue.iter().rev().find_map(|nodes| nodes.get(key).cloned()))
            .collect()
    }
}

/// The writer: each write in turn, then its batch passed on; ends when the input does or a
/// write fails.
fn write_all(
    shared: &Shared,
    unwritten: &Unwritten,
    writes: Receiver<TrieWrite>,
    outputs: &[Sender<Arc<VerifiedBatch>>],
) -> Result<(), StageError> {
    for write in writes {
        // A store failure (or a lost lease) stops every stage.
        let verified = write
            .write(shared)
            .inspect_err(|error| shared.control.stop_after(error))?;
        unwritten.pop();
        forward(outputs, verified);
    }
    Ok(())
}

impl Stage for MerkleStage {
    type Input = Arc<ExecutionRecord>;
    type Output = Arc<VerifiedBatch>;
    const ID: StageId = STAGE;

    /// Verify `input` as one batch (block by block with `"every"`); a failure is an error
    /// after the good blocks before it are written.
    fn execute(
        &mut self,
        shared: &Shared,
        input: Vec<Arc<ExecutionRecord>>,
    ) -> Result<Vec<Arc<VerifiedBatch>>, StageError> {
        let chunk = match self.settings.verify {
            VerifyRoot::Every => 1,
            VerifyRoot::Batch | VerifyRoot::Off => input.len().max(1),
        };
        let mut verified = Vec::new();
        for part in input.chunks(chunk) {
            // Each write returns before the next part is computed: nothing is on its way.
            let (writes, failure) = self.verify(shared, part.to_vec(), &SETTLED)?;
            for write in writes {
                verified.push(
                    write
                        .write(shared)
                        .inspect_err(|_| self.trie.clear_cache())?,
                );
            }
            if let Some(failure) = failure {
                return Err(StageError::block(STAGE, failure));
            }
        }
        Ok(verified)
    }

    /// When the block is at the checkpoint: the trie update back to the block's pre-values
    /// (from its execution record), written as a trie record first; the storage roots of the
    /// accounts it touched go into `batch` for the commit stage's unwind. When the tries are
    /// already back before the block (an unwind cut short after their change, which startup
    /// finished), only those storage roots, read from the tries.
    fn unwind(
        &mut self,
        shared: &Shared,
        record: &ExecutionRecord,
        batch: &mut UnwindBatch,
    ) -> Result<(), StageError> {
        if self.settings.verify == VerifyRoot::Off || record.number > self.checkpoint + 1 {
            return Ok(());
        }
        if record.number == self.checkpoint + 1 {
            let (number, changes) = (record.number, pre_changes(record));
            let roots = roots_in_tries(shared, &changes, number, number - 1)?;
            batch.note_storage_roots(roots);
            return Ok(());
        }
        let keys = shared.store.keys();
        // The state before the block is checked against its parent's header where the syncer
        // still holds the parent this branch executed (always at the fork point); above the
        // fork it has replaced (or removed) it with the other branch's.
        let expected = shared
            .store
            .read(STAGE, &keys.header(record.number - 1))?
            .filter(|parent| parent.hash() == record.parent_hash)
            .map(|parent| parent.state_root);
        let source = StoreNodes::settled(shared);
        let update = match outcome(
            record.number,
            self.trie.update(&source, &pre_changes(record)),
        )? {
            Ok(update) => match expected {
                Some(expected) if update.state_root != expected => {
                    self.trie.revert_cache(&update.node_changes);
                    return Err(StageError::block(
                        STAGE,
                        MerkleError::StateRoot {
                            block: record.number - 1,
                            expected,
                            got: update.state_root,
                        },
                    ));
                }
                _ => update,
            },
            Err(failure) => return Err(StageError::block(STAGE, failure)),
        };
        let change = TrieRecord {
            from: record.number,
            to: record.number - 1,
            state_root: update.state_root,
            nodes: update.node_changes.iter().map(node_change).collect(),
        };
        let pending = keys.trie_pending();
        batch.undo().put(pending.clone(), &change).fence();
        queue_nodes(shared, &change.nodes, |c| c.post.as_ref(), batch.undo());
        batch.checkpoint(shared, STAGE, record.number - 1, record.parent_hash);
        batch.after_checkpoints().remove(pending);
        batch.note_storage_roots(update.storage_roots);
        // The cache took the changes as written; the batch may not be.
        self.trie.clear_cache();
        self.checkpoint = record.number - 1;
        Ok(())
    }
}

/// Queue `change` as one write: its record first, then its nodes, the checkpoint at
/// `change.to` (block `hash`), and the record's removal last. A store whose writes land whole
/// gets the nodes and the checkpoint alone: no cut can fall between them.
fn queue_change(shared: &Shared, change: &TrieRecord, hash: B256, batch: &mut WriteBatch) {
    if shared.store.store().writes_atomically() {
        queue_nodes(shared, &change.nodes, |c| c.post.as_ref(), batch);
        shared.store.queue_checkpoint(batch, STAGE, change.to, hash);
        return;
    }
    let pending = shared.store.keys().trie_pending();
    // First: a cut anywhere after it leaves what a restart needs to finish the change.
    batch.put(pending.clone(), change).fence();
    queue_nodes(shared, &change.nodes, |c| c.post.as_ref(), batch);
    batch.fence();
    shared.store.queue_checkpoint(batch, STAGE, change.to, hash);
    batch.fence().remove(pending);
}

/// Queue the value `pick` chooses (post to apply, pre to undo) of every node change.
fn queue_nodes(
    shared: &Shared,
    nodes: &[TrieNodeChange],
    pick: impl Fn(&TrieNodeChange) -> Option<&Bytes>,
    batch: &mut WriteBatch,
) {
    let keys = shared.store.keys();
    for change in nodes {
        let key = keys.trie_node(&change.node);
        match pick(change) {
            Some(value) => batch.put(key, value),
            None => batch.remove(key),
        };
    }
}

/// Finish a trie change a crash cut short: a `trie:pending` record is applied again (its
/// post-values, the checkpoint it moves to) and removed. Returns the merkle checkpoint.
pub fn finish_pending(shared: &Shared, checkpoint: u64) -> Result<u64, StageError> {
    let Some(change) = shared
        .store
        .read(STAGE, &shared.store.keys().trie_pending())?
    else {
        return Ok(checkpoint);
    };
    let header_key = shared.store.keys().header(change.to);
    let hash = shared
        .store
        .read(STAGE, &header_key)?
        .ok_or_else(|| crate::stage::Inconsistency::MissingHeader {
            key: header_key.into_string(),
        })?
        .hash();
    tracing::warn!(
        from = change.from,
        to = change.to,
        "a change of the state tries was cut short; applying it again"
    );
    let mut batch = WriteBatch::new();
    queue_change(shared, &change, hash, &mut batch);
    shared.store.write(STAGE, batch)?;
    Ok(change.to)
}

/// The storage roots, in the stored tries, of every account `records` touched: the tries
/// already hold their state (a restart hands commit blocks the merkle stage verified before).
pub fn stored_storage_roots(
    shared: &Shared,
    records: &[Arc<ExecutionRecord>],
) -> Result<HashMap<Address, B256>, StageError> {
    let first = records.first().map_or(0, |r| r.number);
    let last = records.last().map_or(first, |r| r.number);
    roots_in_tries(shared, &changes_of(records), first, last)
}

/// The storage roots, in the stored tries, of the accounts `changes` (of blocks from `first`)
/// names: the tries must already hold them, as the state after block `held`.
fn roots_in_tries(
    shared: &Shared,
    changes: &StateChanges,
    first: u64,
    held: u64,
) -> Result<HashMap<Address, B256>, StageError> {
    let mut trie = StateTrie::new(0);
    match outcome(first, trie.update(&StoreNodes::settled(shared), changes))? {
        Ok(update) if update.node_changes.is_empty() => {
            Ok(update.storage_roots.into_iter().collect())
        }
        Ok(_) => Err(StageError::block(
            STAGE,
            MerkleError::TriesBehind { block: held },
        )),
        Err(failure) => Err(StageError::block(STAGE, failure)),
    }
}

/// The state changes that take the state after `record`'s block back to before it: every
/// account and slot it changed, at its pre-value.
fn pre_changes(record: &ExecutionRecord) -> StateChanges {
    let mut changes = StateChanges::new();
    for account in &record.accounts {
        match &account.pre {
            Some(pre) => changes.set_account(
                account.address,
                AccountFields {
                    nonce: pre.nonce,
                    balance: pre.balance,
                    code_hash: pre.code_hash,
                },
            ),
            None => changes.delete_account(account.address),
        }
    }
    for slot in &record.storage {
        changes.set_slot(slot.address, B256::from(slot.slot), slot.pre);
    }
    changes
}

/// The state changes of `records` (consecutive blocks) merged: each account's and slot's value
/// after the last of them.
fn changes_of(records: &[Arc<ExecutionRecord>]) -> StateChanges {
    let mut changes = StateChanges::new();
    for record in records {
        for account in &record.accounts {
            match &account.post {
                Some(post) => changes.set_account(
                    account.address,
                    AccountFields {
                        nonce: post.nonce,
                        balance: post.balance,
                        code_hash: post.code_hash,
                    },
                ),
                None => changes.delete_account(account.address),
            }
        }
        for slot in &record.storage {
            changes.set_slot(slot.address, B256::from(slot.slot), slot.post);
        }
    }
    changes
}

/// The header state root of block `number`.
fn expected_root(shared: &Shared, number: u64) -> Result<B256, StageError> {
    let key = shared.store.keys().header(number);
    match shared.store.read(STAGE, &key)? {
        Some(header) => Ok(header.state_root),
        None => Err(StageError::block(
            STAGE,
            MerkleError::MissingHeader {
                block: number,
                key: key.into_string(),
            },
        )),
    }
}

/// A trie computation's outcome: its result, or the tries' failure (the batch's, starting at
/// block `first`); a store failure is the stage's error.
fn outcome<T>(
    first: u64,
    result: Result<T, UpdateError<primitives::store::StoreError>>,
) -> Result<Result<T, MerkleError>, StageError> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(UpdateError::Source(error)) => Err(StageError::store(STAGE, error)),
        Err(UpdateError::Trie(error)) => Ok(Err(MerkleError::Trie {
            block: first,
            error,
        })),
    }
}

/// A node change as the trie record keeps it.
fn node_change(change: &NodeChange) -> TrieNodeChange {
    TrieNodeChange {
        node: node_id(&change.key),
        pre: change.pre.clone(),
        post: change.post.clone(),
    }
}

/// The stored tries as the trie crate reads them, the writes on their way first: one MGET per
/// call for the rest.
struct StoreNodes<'a> {
    shared: &'a Shared,
    unwritten: &'a Unwritten,
}

impl NodeSource for StoreNodes<'_> {
    type Error = primitives::store::StoreError;

    fn nodes(&self, keys: &[NodeKey]) -> Result<Vec<Option<Bytes>>, Self::Error> {
        let mut found = self.unwritten.get(keys);
        let stored: Vec<_> = keys
            .iter()
            .zip(&found)
            .filter(|(_, found)| found.is_none())
            .map(|(key, _)| *key)
            .collect();
        let mut stored = self.stored(&stored)?.into_iter();
        Ok(found
            .iter_mut()
            .map(|found| found.take().unwrap_or_else(|| stored.next().flatten()))
            .collect())
    }
}

/// No writes on their way (outside `run`).
static SETTLED: Unwritten = Unwritten(Mutex::new(VecDeque::new()));

impl<'a> StoreNodes<'a> {
    /// The stored tries with no write on its way.
    fn settled(shared: &'a Shared) -> Self {
        Self {
            shared,
            unwritten: &SETTLED,
        }
    }

    /// The stored values of `keys`, in order.
    fn stored(&self, keys: &[NodeKey]) -> Result<Vec<Option<Bytes>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let store = &self.shared.store;
        let wanted: Vec<_> = keys
            .iter()
            .map(|key| store.keys().trie_node(&node_id(key)))
            .collect();
        store
            .store()
            .read_many(&wanted)
            .map_err(|error| match error {
                primitives::value::ReadError::Store(error) => error,
                // Raw bytes always decode.
                primitives::value::ReadError::Malformed(value) => {
                    primitives::store::StoreError::Backend {
                        backend: "trie",
                        message: value.to_string(),
                    }
                }
            })
    }
}

impl From<MerkleError> for BlockFailure {
    fn from(error: MerkleError) -> Self {
        BlockFailure::StateRoot(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::{ErrorAction, StageIo, UnwindBatch};
    use crate::startup::start_point;
    use crate::test_utils::{
        assert_same_snapshot, assert_same_store, geth_chain, other_branch, under, Snapshot,
        SyncedStore, CHAIN_LENGTH, KEY_PREFIX,
    };
    use crate::tries::build_tries;
    use alloy_primitives::keccak256;
    use alloy_trie::EMPTY_ROOT_HASH;
    use primitives::store::Store;
    use std::collections::BTreeSet;
    use std::sync::OnceLock;

    /// The records of the whole fixture chain, executed once for the tests here (the stage
    /// reads nothing else of the execution).
    fn chain_records() -> &'static [Arc<ExecutionRecord>] {
        static RECORDS: OnceLock<Vec<Arc<ExecutionRecord>>> = OnceLock::new();
        RECORDS
            .get_or_init(|| SyncedStore::without_tries(CHAIN_LENGTH).execute_batch(1, CHAIN_LENGTH))
    }

    /// The records of blocks `first..=last`.
    fn records(first: u64, last: u64) -> Vec<Arc<ExecutionRecord>> {
        chain_records()[first as usize - 1..last as usize].to_vec()
    }

    /// The blocks of a verified batch.
    fn numbers(batch: &VerifiedBatch) -> Vec<u64> {
        batch.records.iter().map(|r| r.number).collect()
    }

    /// The state root of the stored tries: keccak256 of the account trie's root node.
    fn stored_root(store: &SyncedStore) -> B256 {
        let key = format!("{KEY_PREFIX}trie:acc:");
        let root = store.memory.get(&key).expect("read");
        keccak256(root.unwrap_or_else(|| panic!("{key} missing")))
    }

    /// The merkle checkpoint as (block, hash).
    fn checkpoint(store: &SyncedStore) -> Option<(u64, B256)> {
        let checkpoint = store.shared.store.checkpoint(STAGE).expect("read");
        checkpoint.map(|c| (c.block, c.hash))
    }

    /// Every `trie:*` key of a store with its value.
    fn trie_keys(store: &SyncedStore) -> Snapshot {
        under(&store.snapshot(), "trie:")
    }

    /// A store with the genesis tries and blocks `1..=synced`, verified up to `last`.
    fn verified_to(synced: u64, last: u64) -> SyncedStore {
        let store = SyncedStore::new(synced);
        if last > 0 {
            store
                .merkle(VerifyRoot::Batch)
                .execute(&store.shared, records(1, last))
                .expect("verify");
        }
        store
    }

    /// Run `stage` over `records` as its thread does (handed over at a restart, verified as one
    /// batch, nothing more coming): the batches it passes on and its result.
    fn run_over(
        store: &SyncedStore,
        stage: &mut MerkleStage,
        records: Vec<Arc<ExecutionRecord>>,
    ) -> (Vec<Arc<VerifiedBatch>>, Result<(), StageError>) {
        let (_, input) = crossbeam_channel::unbounded();
        let (output, passed) = crossbeam_channel::unbounded();
        let max = records.len();
        let io = StageIo {
            input,
            outputs: vec![output],
        };
        let result = stage.run(&store.shared, records, io, max);
        (passed.try_iter().collect(), result)
    }

    /// `verify` over `records` with `unwritten` on its way: the single write it prepares.
    fn prepared(
        store: &SyncedStore,
        stage: &mut MerkleStage,
        records: Vec<Arc<ExecutionRecord>>,
        unwritten: &Unwritten,
    ) -> TrieWrite {
        let (mut writes, failure) = stage
            .verify(&store.shared, records, unwritten)
            .expect("store");
        assert!(failure.is_none(), "{failure:?}");
        assert_eq!(writes.len(), 1);
        writes.remove(0)
    }

    #[test]
    fn a_batch_computed_while_the_one_before_is_unwritten_reads_its_nodes() {
        let store = SyncedStore::new(CHAIN_LENGTH);
        let mut stage = store.merkle(VerifyRoot::Batch);
        let unwritten = Unwritten::default();
        let half = CHAIN_LENGTH / 2;
        let first = prepared(&store, &mut stage, records(1, half), &unwritten);
        unwritten.push(&first);
        let genesis = Some((0, geth_chain().hash(0)));
        assert_eq!(checkpoint(&store), genesis, "nothing written yet");
        // Verified against block CHAIN_LENGTH's header with the first half's nodes unwritten:
        // the stored nodes alone are the genesis tries'.
        let second = prepared(
            &store,
            &mut stage,
            records(half + 1, CHAIN_LENGTH),
            &unwritten,
        );
        unwritten.push(&second);
        for write in [first, second] {
            let verified = write.write(&store.shared).expect("write");
            unwritten.pop();
            assert!(verified.storage_roots.is_some());
        }
        assert!(unwritten.queue().is_empty());
        let chain = geth_chain();
        assert_eq!(
            checkpoint(&store),
            Some((CHAIN_LENGTH, chain.hash(CHAIN_LENGTH)))
        );
        assert_same_snapshot(
            &trie_keys(&store),
            &trie_keys(&verified_to(CHAIN_LENGTH, CHAIN_LENGTH)),
            "two batches written after both were computed",
        );
    }

    #[test]
    fn unwritten_nodes_are_read_newest_first_and_removed_ones_read_absent() {
        let key = |path: &[u8]| NodeKey::Account(alloy_trie::Nibbles::from_nibbles(path));
        let unwritten = Unwritten::default();
        let write = |nodes: Vec<(NodeKey, Option<Bytes>)>| {
            let mut write = TrieWrite::pass_on(Arc::new(VerifiedBatch::new(Vec::new(), None)));
            write.nodes = Arc::new(nodes.into_iter().collect());
            write
        };
        let (a, b, c) = (key(&[1]), key(&[2]), key(&[3]));
        unwritten.push(&write(vec![
            (a, Some(Bytes::from_static(b"a1"))),
            (b, Some(Bytes::from_static(b"b1"))),
        ]));
        unwritten.push(&write(vec![
            (a, Some(Bytes::from_static(b"a2"))),
            (b, None),
        ]));
        assert_eq!(
            unwritten.get(&[a])[0],
            Some(Some(Bytes::from_static(b"a2")))
        );
        assert_eq!(
            unwritten.get(&[b])[0],
            Some(None),
            "removed by the newer write"
        );
        assert_eq!(
            unwritten.get(&[c])[0],
            None,
            "not unwritten: read from the store"
        );
        unwritten.pop();
        assert_eq!(unwritten.get(&[b])[0], Some(None));
        unwritten.pop();
        assert_eq!(unwritten.get(&[a])[0], None);
    }

    #[test]
    fn every_blocks_state_root_is_its_headers_block_by_block_and_in_batches() {
        let chain = geth_chain();
        let every = SyncedStore::new(CHAIN_LENGTH);
        let mut stage = every.merkle(VerifyRoot::Every);
        for record in chain_records() {
            let n = record.number;
            let verified = stage
                .execute(&every.shared, vec![record.clone()])
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(verified.len(), 1, "block {n}");
            assert!(Arc::ptr_eq(&verified[0].records[0], record), "block {n}");
            let header = &chain.block(n).header;
            assert_eq!(stored_root(&every), header.state_root, "after block {n}");
            assert_eq!(checkpoint(&every), Some((n, chain.hash(n))));
        }
        let batched = SyncedStore::new(CHAIN_LENGTH);
        let mut stage = batched.merkle(VerifyRoot::Batch);
        let mut last_batch = None;
        for batch in chain_records().chunks(37) {
            let (first, last) = (batch[0].number, batch[batch.len() - 1].number);
            let verified = stage
                .execute(&batched.shared, batch.to_vec())
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(verified.len(), 1, "blocks {first}..={last} as one batch");
            assert_eq!(numbers(&verified[0]), (first..=last).collect::<Vec<_>>());
            let header = &chain.block(last).header;
            assert_eq!(
                stored_root(&batched),
                header.state_root,
                "after block {last}"
            );
            assert_eq!(checkpoint(&batched), Some((last, chain.hash(last))));
            last_batch = verified.into_iter().next();
        }
        // Both hold the tries of headstate.json built from scratch (the layout is canonical),
        // whose root is the dump's and the last header's.
        let head = build_tries(chain.head_state.iter().map(|(address, account)| {
            let fields = AccountFields {
                nonce: account.nonce,
                balance: account.balance,
                code_hash: account.code_hash,
            };
            (*address, fields, account.storage.clone())
        }))
        .expect("the head state's tries");
        assert_eq!(head.state_root, chain.head_root, "headstate.json's root");
        assert_eq!(head.state_root, chain.block(CHAIN_LENGTH).header.state_root);
        let keys = every.keys();
        let expected: Snapshot = head
            .nodes
            .iter()
            .map(|(node, value)| (keys.trie_node(node).into_string(), value.to_vec()))
            .collect();
        assert_same_snapshot(&trie_keys(&every), &expected, "block by block");
        assert_same_snapshot(&trie_keys(&batched), &expected, "in batches");
        // The last batch passes on the storage roots after its last block: the dump's.
        let roots = last_batch
            .and_then(|batch| batch.storage_roots.clone())
            .expect("verified with roots");
        assert!(!roots.is_empty());
        for (address, root) in roots.iter() {
            assert_eq!(*root, chain.head_state[address].storage_root, "{address}");
        }
    }

    #[test]
    fn a_wrong_state_root_is_refused_at_exactly_its_block() {
        let chain = geth_chain();
        // Verified to block 20, then blocks 21..=40 in one batch whose headers from block
        // `bad` on carry altered stateRoots (the state they describe is not the executed one;
        // only the batch's last root is compared until one differs).
        for bad in [21, 22, 30, 39, 40] {
            let store = verified_to(40, 20);
            let mut stage = store.merkle(VerifyRoot::Batch);
            let wrong = |n: u64| keccak256(chain.block(n).header.state_root);
            for n in bad..=40 {
                store.replace_header(n, |header| header.state_root = wrong(n));
            }
            let (passed, result) = run_over(&store, &mut stage, records(21, 40));
            let error = result.expect_err("refused");
            let StageError::Block {
                stage: StageId::Merkle,
                failure:
                    BlockFailure::StateRoot(MerkleError::StateRoot {
                        block,
                        expected,
                        got,
                    }),
            } = &error
            else {
                panic!("not a state root mismatch: {error:?}");
            };
            let right = chain.block(bad).header.state_root;
            assert_eq!((*block, *expected, *got), (bad, wrong(bad), right));
            let message = error.to_string();
            for named in [
                format!("block {bad}"),
                format!("{:#x}", wrong(bad)),
                format!("{right:#x}"),
            ] {
                assert!(message.contains(&named), "{message} names {named}");
            }
            assert_eq!(error.action(), ErrorAction::Stop);
            assert!(
                store.shared.control.loading_stopped(),
                "no more blocks loaded"
            );
            // The blocks before it are written and passed on, nothing from it on.
            let passed: Vec<u64> = passed.iter().flat_map(|b| numbers(b)).collect();
            assert_eq!(passed, (21..bad).collect::<Vec<_>>(), "bad block {bad}");
            let reference = verified_to(40, bad - 1);
            let what = format!("the tries of blocks up to {}", bad - 1);
            assert_same_snapshot(&trie_keys(&store), &trie_keys(&reference), &what);
            assert_eq!(checkpoint(&store), Some((bad - 1, chain.hash(bad - 1))));
            // Once the syncer repairs the headers, the same stage goes on from there.
            store.sync(bad..=40);
            let rest = records(bad, 40);
            stage.execute(&store.shared, rest).expect("verified");
            let reference = verified_to(40, 40);
            assert_same_snapshot(&trie_keys(&store), &trie_keys(&reference), "repaired");
        }
    }

    #[test]
    fn block_by_block_a_wrong_state_root_is_refused_after_the_blocks_before_it() {
        let chain = geth_chain();
        let store = verified_to(40, 20);
        let wrong = B256::repeat_byte(0x5a);
        store.replace_header(30, |header| header.state_root = wrong);
        let error = store
            .merkle(VerifyRoot::Every)
            .execute(&store.shared, records(21, 40))
            .expect_err("refused");
        let StageError::Block {
            failure:
                BlockFailure::StateRoot(MerkleError::StateRoot {
                    block, expected, ..
                }),
            ..
        } = error
        else {
            panic!("not a state root mismatch: {error:?}");
        };
        assert_eq!((block, expected), (30, wrong));
        let reference = verified_to(40, 29);
        assert_same_snapshot(&trie_keys(&store), &trie_keys(&reference), "blocks to 29");
        assert_eq!(checkpoint(&store), Some((29, chain.hash(29))));
    }

    #[test]
    fn unwinding_blocks_leaves_the_tries_of_a_store_that_stopped_at_the_fork() {
        const HEAD: u64 = 60;
        let chain = geth_chain();
        for fork in [HEAD - 1, HEAD - 7, 0] {
            let store = verified_to(HEAD, HEAD);
            // The syncer's other branch above the fork, as a reorg finds it.
            let mut parent = chain.hash(fork);
            for number in fork + 1..=HEAD {
                parent = store.replace_header(number, |header| {
                    other_branch(header);
                    header.parent_hash = parent;
                });
            }
            let mut stage = store.merkle(VerifyRoot::Batch);
            for record in records(fork + 1, HEAD).iter().rev() {
                let mut batch = UnwindBatch::default();
                stage
                    .unwind(&store.shared, record, &mut batch)
                    .unwrap_or_else(|e| panic!("unwind {}: {e}", record.number));
                store.write(batch.into_batch());
            }
            let what = format!("{} blocks unwound to {fork}", HEAD - fork);
            let reference = verified_to(HEAD, fork);
            assert_same_snapshot(&trie_keys(&store), &trie_keys(&reference), &what);
            assert_eq!(checkpoint(&store), Some((fork, chain.hash(fork))), "{what}");
            // Back on the first branch, the same stage verifies its blocks again.
            store.sync(fork + 1..=HEAD);
            stage
                .execute(&store.shared, records(fork + 1, HEAD))
                .unwrap_or_else(|e| panic!("{what}, then verified again: {e}"));
            let reference = verified_to(HEAD, HEAD);
            assert_same_snapshot(&trie_keys(&store), &trie_keys(&reference), &what);
        }
    }

    #[test]
    fn a_trie_write_cut_short_is_finished_at_startup_as_a_run_never_cut() {
        let chain = geth_chain();
        // A store through block 20 that executed 21..=40, its trie write for them cut after
        // `cut` commands (none: not cut).
        let cut_after = |cut: Option<usize>| {
            let store = SyncedStore::new(40);
            store.execute_to(20);
            let records = store.execute_batch(21, 40);
            if let Some(commands) = cut {
                store.memory.cut_next_write(commands);
            }
            let result = store
                .merkle(VerifyRoot::Batch)
                .execute(&store.shared, records);
            assert_eq!(result.is_err(), cut.is_some(), "{result:?}");
            store
        };
        let straight = cut_after(None);
        // The change is written first, as one value.
        let first = cut_after(Some(1));
        let change = first
            .memory
            .read(&first.keys().trie_pending())
            .expect("read")
            .expect("trie:pending written first");
        let header = &chain.block(40).header;
        assert_eq!(
            (change.from, change.to, change.state_root),
            (20, 40, header.state_root)
        );
        // The record, the nodes, the checkpoint and the record's removal.
        let commands = change.nodes.len() + 3;
        for cut in [0, 1, 2, commands / 2, commands - 2, commands - 1, commands] {
            let crashed = cut_after(Some(cut));
            let start = start_point(&crashed.shared).expect("start");
            let finished = if cut == 0 { 20 } else { 40 };
            assert_eq!(
                start.merkle,
                Some(finished),
                "cut after {cut} of {commands}"
            );
            if cut > 0 {
                let what = format!("cut after {cut} of {commands}, finished at startup");
                assert_same_store(&crashed, &straight, &what);
            }
            // The restart verifies what is left, ending as the run never cut.
            let pending = start
                .merkle_pending(&crashed.shared, true)
                .expect("records");
            crashed
                .merkle(VerifyRoot::Batch)
                .execute(&crashed.shared, pending)
                .expect("verify");
            let what = format!("cut after {cut} of {commands}, then restarted");
            assert_same_store(&crashed, &straight, &what);
        }
    }

    #[test]
    fn stored_storage_roots_are_the_head_states_after_the_last_block() {
        let chain = geth_chain();
        let store = verified_to(CHAIN_LENGTH, CHAIN_LENGTH);
        let roots = stored_storage_roots(&store.shared, chain_records()).expect("roots");
        let touched: BTreeSet<Address> = chain_records()
            .iter()
            .flat_map(|r| r.accounts.iter().map(|a| a.address))
            .collect();
        assert_eq!(roots.keys().copied().collect::<BTreeSet<_>>(), touched);
        for (address, root) in roots.iter() {
            let account = &chain.head_state[address];
            assert_eq!(*root, account.storage_root, "{address}");
        }
        let with_storage = roots.values().filter(|r| **r != EMPTY_ROOT_HASH).count();
        assert!(with_storage >= 10, "{with_storage} accounts with storage");
        // Tries that do not hold the last block are refused, naming it.
        let (before, last) = (chain.block(599), chain.block(600));
        assert_ne!(before.header.state_root, last.header.state_root);
        let behind = verified_to(CHAIN_LENGTH, CHAIN_LENGTH - 1);
        let error = stored_storage_roots(&behind.shared, chain_records()).expect_err("behind");
        assert!(
            matches!(
                error,
                StageError::Block {
                    failure: BlockFailure::StateRoot(MerkleError::TriesBehind { block: 600 }),
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn off_passes_the_records_on_untouched_and_writes_nothing() {
        for store in [SyncedStore::new(40), SyncedStore::without_tries(40)] {
            // Not even a wrong state root is looked at.
            store.replace_header(7, |header| header.state_root = B256::repeat_byte(7));
            let before = store.snapshot();
            let mut stage = store.merkle(VerifyRoot::Off);
            let input = records(1, 40);
            let verified = stage.execute(&store.shared, input.clone()).expect("passed");
            assert_eq!(verified.len(), 1, "one batch");
            assert!(verified[0].storage_roots.is_none(), "unverified");
            assert_eq!(verified[0].records.len(), input.len());
            for (passed, given) in verified[0].records.iter().zip(&input) {
                assert!(Arc::ptr_eq(passed, given), "block {}", given.number);
            }
            let (passed, result) = run_over(&store, &mut stage, input.clone());
            result.expect("passed");
            assert_eq!(passed.len(), 1, "one batch");
            assert_eq!(numbers(&passed[0]), (1..=40).collect::<Vec<_>>());
            // Nor does it unwind anything.
            let mut batch = UnwindBatch::default();
            stage
                .unwind(&store.shared, &input[39], &mut batch)
                .expect("unwind");
            let address = input[39].accounts[0].address;
            assert_eq!(batch.storage_root(&address), None, "no root noted");
            assert!(batch.into_batch().is_empty(), "no writes");
            assert_same_snapshot(&store.snapshot(), &before, "nothing written");
        }
    }
}
