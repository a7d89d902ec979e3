//! Merkle stage: keeps the account trie and every storage trie in the store (`trie:acc:*`,
//! `trie:stor:*`, see the `state-trie` crate for the layout), updates them from the execution
//! records, and checks the state root against each batch's last header before anything of the
//! batch reaches the state keys (it runs between execution and commit: commit writes the real
//! storage roots it computes, and a block that fails verification never reaches `st:latest`).
//!
//! Crash rule: a batch's node changes are written first as ONE value with their pre-values
//! (`trie:pending`, [`TrieRecord`]), then applied, then the checkpoint moves, then the record
//! goes, in one ordered write; a restart that finds the record applies it again
//! ([`finish_pending`]). The unwind of a block is the trie update back to its pre-values (from
//! its execution record), written the same way.
//!
//! With `verify_root = "batch"` the blocks waiting (up to `batch_size`) are verified together
//! against the last one's header (while catching up; at the head each block comes alone); on a
//! mismatch the first bad block is found by bisection over the batch's prefixes, the blocks
//! before it are written and passed on, and the stage stops with both roots. `"every"`
//! verifies block by block; `"off"` passes the records on untouched (no tries kept).

use crate::stage::{send_all, BlockFailure, Shared, Stage, StageError, StageIo, UnwindBatch};
use crate::tries::node_id;
use alloy_primitives::{map::HashMap, Address, Bytes, B256};
use primitives::record::ExecutionRecord;
use primitives::stage_id::StageId;
use primitives::store::WriteBatch;
use primitives::trie_record::{TrieNodeChange, TrieRecord};
use primitives::value::ContractRead;
use state_trie::{
    AccountFields, NodeChange, NodeKey, NodeSource, StateChanges, StateTrie, TrieError, UpdateError,
};
use std::sync::Arc;
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
            let (verified, failure) = self.verify(shared, input)?;
            send_all(shared, STAGE, &io.outputs, verified);
            if let Some(failure) = failure {
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
    ) -> Result<(Vec<Arc<VerifiedBatch>>, Option<MerkleError>), StageError> {
        let records: Vec<_> = records
            .into_iter()
            .filter(|r| r.number > self.checkpoint || self.settings.verify == VerifyRoot::Off)
            .collect();
        let Some(last) = records.last() else {
            return Ok((Vec::new(), None));
        };
        if self.settings.verify == VerifyRoot::Off {
            return Ok((vec![Arc::new(VerifiedBatch::new(records, None))], None));
        }
        let started = Instant::now();
        let source = StoreNodes(shared);
        let (first, last) = (records[0].number, last.number);
        let expected = expected_root(shared, last)?;
        let update = match outcome(first, self.trie.update(&source, &changes_of(&records)))? {
            Ok(update) => update,
            Err(failure) => return Ok((Vec::new(), Some(failure))),
        };
        if update.state_root == expected {
            let batch = self.write(shared, &records, update, started)?;
            return Ok((vec![batch], None));
        }
        self.trie.revert_cache(&update.node_changes);
        let whole = MerkleError::StateRoot {
            block: last,
            expected,
            got: update.state_root,
        };
        let bad = self.first_bad_block(shared, &records, whole)?;
        let good: Vec<_> = records
            .iter()
            .take_while(|r| r.number < bad.block())
            .cloned()
            .collect();
        if good.is_empty() {
            return Ok((Vec::new(), Some(bad)));
        }
        match outcome(first, self.trie.update(&source, &changes_of(&good)))? {
            Ok(update) => Ok((vec![self.write(shared, &good, update, started)?], Some(bad))),
            Err(failure) => Ok((Vec::new(), Some(failure))),
        }
    }

    /// The first block of `records` whose state root is wrong, by bisection over the batch's
    /// prefixes (each a dry computation); `whole` is the whole batch's failure.
    fn first_bad_block(
        &mut self,
        shared: &Shared,
        records: &[Arc<ExecutionRecord>],
        whole: MerkleError,
    ) -> Result<MerkleError, StageError> {
        let source = StoreNodes(shared);
        let first = records[0].number;
        // Prefixes shorter than `lo` verify; the prefix of length `hi` fails with `failure`.
        let (mut lo, mut hi, mut failure) = (1, records.len(), whole);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let block = records[mid - 1].number;
            let expected = expected_root(shared, block)?;
            let got = match outcome(
                first,
                self.trie.root_after(&source, &changes_of(&records[..mid])),
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

    /// Write the batch's trie change (record, nodes, checkpoint) in one ordered write.
    fn write(
        &mut self,
        shared: &Shared,
        records: &[Arc<ExecutionRecord>],
        update: state_trie::TrieUpdate,
        started: Instant,
    ) -> Result<Arc<VerifiedBatch>, StageError> {
        let last = &records[records.len() - 1];
        let record = TrieRecord {
            from: self.checkpoint,
            to: last.number,
            state_root: update.state_root,
            nodes: update.node_changes.iter().map(node_change).collect(),
        };
        let mut batch = WriteBatch::new();
        queue_change(shared, &record, last.hash, &mut batch);
        if let Err(error) = shared.store.write(STAGE, batch) {
            // The cache took the changes as written; they may not be.
            self.trie.clear_cache();
            return Err(error);
        }
        self.checkpoint = last.number;
        for record in records {
            let totals = (record.tx_count() as u64, record.gas_used);
            shared.record_progress(STAGE, record.number, totals, started);
        }
        Ok(Arc::new(VerifiedBatch {
            records: records.to_vec(),
            storage_roots: Some(Arc::new(update.storage_roots.into_iter().collect())),
        }))
    }
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
            let (batches, failure) = self.verify(shared, part.to_vec())?;
            verified.extend(batches);
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
        let source = StoreNodes(shared);
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
        batch.undo().put(pending.clone(), &change);
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
/// `change.to` (block `hash`), and the record's removal last.
fn queue_change(shared: &Shared, change: &TrieRecord, hash: B256, batch: &mut WriteBatch) {
    let pending = shared.store.keys().trie_pending();
    // First: a cut anywhere after it leaves what a restart needs to finish the change.
    batch.put(pending.clone(), change);
    queue_nodes(shared, &change.nodes, |c| c.post.as_ref(), batch);
    shared.store.queue_checkpoint(batch, STAGE, change.to, hash);
    batch.remove(pending);
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
    match outcome(first, trie.update(&StoreNodes(shared), changes))? {
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

/// The stored tries as the trie crate reads them: one MGET per call.
struct StoreNodes<'a>(&'a Shared);

impl NodeSource for StoreNodes<'_> {
    type Error = primitives::store::StoreError;

    fn nodes(&self, keys: &[NodeKey]) -> Result<Vec<Option<Bytes>>, Self::Error> {
        let store = &self.0.store;
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
