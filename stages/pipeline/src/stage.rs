//! The pipeline's vocabulary: the [`Stage`] trait every stage implements, the context the
//! stages share ([`Shared`]: the store with its keys, the chain's rules, the state layers,
//! the stop flags, the meters), and the error a stage stops with ([`StageError`], which says
//! what the daemon should do about it).
//!
//! A stage is a loop over its input channel on a thread of its own (the daemon wires them);
//! [`Stage::execute`] is its work on one batch of blocks, the same code the serial runner
//! (the `serial` module) drives one block at a time for `ef-test`; [`Stage::unwind`] queues the
//! writes that undo its output for one block, which the reorg code (the `reorg` module) puts
//! together per block (the crash rule: one ordered batch per unwound block, checkpoints last).

use crate::meter::{PipelineMeters, StageMeter};
use crate::state::StateLayers;
use alloy_primitives::{map::HashMap, Address, B256};
use crossbeam_channel::{Receiver, Sender};
use evm::chain::ChainSpec;
use evm::error::BlockError;
use primitives::clock::{unix_now, unix_now_ms};
use primitives::contract::{MalformedValue, StageCheckpoint};
use primitives::keys::Keys;
use primitives::load::LoadError;
use primitives::record::ExecutionRecord;
use primitives::stage_id::StageId;
use primitives::store::{Store, StoreError, WriteBatch};
use primitives::value::{ContractRead, Decode, Key, ReadError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// While catching up, how long a stage that writes a batch of blocks at a time waits for the
/// batch to fill: fewer, larger store transactions. At the head every block is written as soon
/// as it comes.
pub const CATCH_UP_LINGER: Duration = Duration::from_millis(500);

/// What the daemon does about a stage's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorAction {
    /// Try again later: the store is unreachable (a restart or a network fault).
    Retry,
    /// Wait for the syncer: the block's data is missing, corrupt or inconsistent, which only a
    /// corrected write by the syncer can fix.
    WaitForSyncer,
    /// Stop: waiting cannot fix it (an invalid block, a damaged store, a lost lease).
    Stop,
}

/// Why a block could not get through a stage.
#[derive(Debug, thiserror::Error)]
pub enum BlockFailure {
    /// Its data could not be loaded (missing, corrupt, inconsistent with its header) or its
    /// senders not recovered.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// It does not extend the block before it.
    #[error("block {block}: parentHash {parent_hash:#x} does not extend block {}'s hash {expected:#x}", block - 1)]
    NotAChild {
        /// The block.
        block: u64,
        /// Its parent hash.
        parent_hash: B256,
        /// The hash of the block before it.
        expected: B256,
    },
    /// Executing it failed or its result does not match its header.
    #[error(transparent)]
    Execution(#[from] BlockError),
    /// The state after it does not have its header's state root (or the tries are damaged).
    #[error(transparent)]
    StateRoot(crate::stages::merkle::MerkleError),
}

/// The store's progress markers or records contradict each other.
#[derive(Debug, thiserror::Error)]
pub enum Inconsistency {
    /// A value the pipeline wrote does not decode.
    #[error(transparent)]
    Malformed(#[from] MalformedValue),
    /// A record the checkpoints say exists is missing.
    #[error("{key} is missing, though the checkpoints say it was written")]
    MissingRecord {
        /// The record's key.
        key: String,
    },
    /// The prune checkpoint is above what was applied.
    #[error("prune checkpoint {pruned} is above the commit ({committed}) or receipts ({receipts}) checkpoint")]
    PrunedAhead {
        /// The prune checkpoint.
        pruned: u64,
        /// The commit checkpoint.
        committed: u64,
        /// The receipts checkpoint.
        receipts: u64,
    },
    /// A reorg's fork point lies at or below the window's floor.
    #[error(
        "reorg deeper than the window: no executed block above {pruned} matches the syncer's \
         chain; re-initialise the store or raise state.window_size"
    )]
    ForkBelowWindow {
        /// The prune checkpoint (the window's floor).
        pruned: u64,
    },
    /// The store has no `idx:exec:progress`: `init` never ran on it.
    #[error("{key} is missing: the store is not initialised (run `evm-executor init` first)")]
    NotInitialised {
        /// The progress key.
        key: String,
    },
    /// The block the pipeline starts from has no header.
    #[error("{key} is missing: the executed head's header is gone")]
    MissingHeader {
        /// The header's key.
        key: String,
    },
}

/// Why a stage stopped.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The store failed in a way retrying did not fix.
    #[error("{stage}: {error}")]
    Store {
        /// The stage.
        stage: StageId,
        /// The failure.
        error: StoreError,
    },
    /// A block could not get through the stage.
    #[error("{stage}: {failure}")]
    Block {
        /// The stage.
        stage: StageId,
        /// What is wrong with the block (names block and key or field).
        failure: BlockFailure,
    },
    /// The leader lease was lost or could not be renewed in time; nothing more was written.
    #[error("leader lease lost or not renewed in time; stopped writing")]
    LeaseLost,
    /// The store's progress markers contradict each other in a way that cannot be repaired.
    #[error("inconsistent store: {0}")]
    Inconsistent(#[from] Inconsistency),
    /// A stage's thread could not be started or panicked.
    #[error("{stage}: thread failed: {reason}")]
    Thread {
        /// The stage.
        stage: StageId,
        /// What happened.
        reason: String,
    },
}

impl StageError {
    /// What the daemon should do about this error.
    pub fn action(&self) -> ErrorAction {
        match self {
            StageError::Store { error, .. } if error.is_transient() => ErrorAction::Retry,
            StageError::Block {
                failure: BlockFailure::Load(LoadError::Store(error)),
                ..
            } if error.is_transient() => ErrorAction::Retry,
            StageError::Block {
                failure: BlockFailure::Load(LoadError::Signature { .. }),
                ..
            } => ErrorAction::Stop,
            StageError::Block {
                failure: BlockFailure::Load(_) | BlockFailure::NotAChild { .. },
                ..
            } => ErrorAction::WaitForSyncer,
            StageError::Block {
                failure: BlockFailure::Execution(BlockError::State { error, .. }),
                ..
            } if error.is_retryable() => ErrorAction::Retry,
            _ => ErrorAction::Stop,
        }
    }

    /// A store failure of `stage`.
    pub fn store(stage: StageId, error: StoreError) -> Self {
        StageError::Store { stage, error }
    }

    /// A failed read of `stage`: the store's failure, or a value the pipeline wrote that does
    /// not decode.
    pub fn read(stage: StageId, error: ReadError) -> Self {
        match error {
            ReadError::Store(error) => StageError::Store { stage, error },
            ReadError::Malformed(error) => StageError::Inconsistent(error.into()),
        }
    }

    /// `block` failed in `stage`.
    pub fn block(stage: StageId, failure: impl Into<BlockFailure>) -> Self {
        StageError::Block {
            stage,
            failure: failure.into(),
        }
    }
}

/// The flags that stop the stages, and what the headers stage last saw of the syncer.
#[derive(Debug)]
pub struct Control {
    /// Set by SIGINT/SIGTERM: stop every stage.
    shutdown: Arc<AtomicBool>,
    /// Set by a failing stage: stop the others.
    abort: AtomicBool,
    /// Set by the senders stage when a block fails: the headers stage loads no more, while the
    /// stages after senders finish the blocks before it.
    loading_stopped: AtomicBool,
    /// The syncer's height as the headers stage last read it: a stage that has not reached it
    /// knows more blocks are on their way.
    synced: AtomicU64,
    /// Blocks seen at the head, until their state and receipts are written.
    head: std::sync::Mutex<HeadLatency>,
}

/// When each block near the head was first seen synced, and which of the stages that publish
/// it (commit: state; receipts) have written it: the head latency the metrics report.
#[derive(Debug, Default)]
struct HeadLatency {
    blocks: std::collections::BTreeMap<u64, (std::time::Instant, bool, bool)>,
}

/// Blocks further than this below a newly read syncer height are not timed: the pipeline is
/// catching up, not following the head.
const HEAD_WINDOW: u64 = 16;

impl Control {
    /// Flags that also stop when `shutdown` is set.
    pub fn new(shutdown: Arc<AtomicBool>) -> Self {
        Self {
            shutdown,
            abort: AtomicBool::new(false),
            loading_stopped: AtomicBool::new(false),
            synced: AtomicU64::new(0),
            head: Default::default(),
        }
    }

    /// True once a stop was requested (signal or a failing stage).
    pub fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed) || self.abort.load(Ordering::Relaxed)
    }

    /// True once a failing stage asked the others to stop (a shutdown is not a failure).
    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }

    /// Ask every stage to stop.
    pub fn request_stop(&self) {
        self.abort.store(true, Ordering::Relaxed);
    }

    /// Tell the headers stage to load no more.
    pub fn stop_loading(&self) {
        self.loading_stopped.store(true, Ordering::Relaxed);
    }

    /// Stop after a stage failed with `error`: a bad block stops only the loading, so the
    /// stages after the failing one still finish the blocks before it (stopping them all could
    /// drop those blocks while they wait in a stage's batch); any other error stops every stage.
    pub fn stop_after(&self, error: &StageError) {
        match error {
            StageError::Block { .. } => self.stop_loading(),
            _ => self.request_stop(),
        }
    }

    /// True once loading was stopped.
    pub fn loading_stopped(&self) -> bool {
        self.loading_stopped.load(Ordering::Relaxed)
    }

    /// Note the syncer's height; blocks it newly shows near the head start their latency.
    pub fn note_synced(&self, height: u64) {
        let before = self.synced.swap(height, Ordering::Relaxed);
        if height > before && before > 0 {
            let now = std::time::Instant::now();
            let mut head = self
                .head
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for block in (before + 1).max(height.saturating_sub(HEAD_WINDOW))..=height {
                head.blocks.entry(block).or_insert((now, false, false));
            }
            // Blocks that never got written (a failed block) do not pile up.
            while head.blocks.len() > 4 * HEAD_WINDOW as usize {
                head.blocks.pop_first();
            }
        }
    }

    /// Note that `stage` (commit or receipts) wrote every block up to `last`; a block both
    /// have written is published, and its head latency goes to the metrics.
    pub fn note_written(&self, stage: StageId, last: u64) {
        let mut head = self
            .head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut published = Vec::new();
        for (block, (_, state, receipts)) in head.blocks.range_mut(..=last) {
            match stage {
                StageId::Commit => *state = true,
                StageId::Receipts => *receipts = true,
                _ => return,
            }
            if *state && *receipts {
                published.push(*block);
            }
        }
        for block in published {
            if let Some((seen, _, _)) = head.blocks.remove(&block) {
                crate::metrics::metrics()
                    .head_latency_seconds
                    .observe(seen.elapsed().as_secs_f64());
            }
        }
    }

    /// True while blocks above `number` are known to be synced (the pipeline is catching up).
    pub fn behind_head(&self, number: u64) -> bool {
        number < self.synced.load(Ordering::Relaxed)
    }

    /// Clear the per-run flags before the stages start again (after a reorg).
    pub fn restart(&self) {
        self.abort.store(false, Ordering::Relaxed);
        self.loading_stopped.store(false, Ordering::Relaxed);
    }
}

/// The store as the stages use it: the key layout, and writes that stop once a leader's lease
/// may have lapsed.
#[derive(Clone)]
pub struct StageStore {
    store: Arc<dyn Store>,
    keys: Keys,
    /// With a leader lease: Unix milliseconds until which this process may write (moved forward
    /// by each renewal). Past it every write is refused, so a leader that cannot renew stops
    /// writing before its lease can expire.
    write_deadline: Option<Arc<AtomicU64>>,
}

impl StageStore {
    /// `store` under `keys`, writing until `write_deadline` when a lease is in force.
    pub fn new(store: Arc<dyn Store>, keys: Keys, write_deadline: Option<Arc<AtomicU64>>) -> Self {
        Self {
            store,
            keys,
            write_deadline,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The value at `key`, read for `stage`.
    pub fn read<V: Decode>(&self, stage: StageId, key: &Key<V>) -> Result<Option<V>, StageError> {
        self.store
            .read(key)
            .map_err(|error| StageError::read(stage, error))
    }

    /// A stage's checkpoint.
    pub fn checkpoint(&self, stage: StageId) -> Result<Option<StageCheckpoint>, StageError> {
        self.read(stage, &self.keys.stage_checkpoint(stage))
    }

    /// The block of a stage's checkpoint, `None` when it has none.
    pub fn checkpoint_block(&self, stage: StageId) -> Result<Option<u64>, StageError> {
        Ok(self.checkpoint(stage)?.map(|c| c.block))
    }

    /// Queue a stage's checkpoint at `block`.
    pub fn queue_checkpoint(&self, batch: &mut WriteBatch, stage: StageId, block: u64, hash: B256) {
        let checkpoint = StageCheckpoint {
            block,
            hash,
            time: unix_now(),
        };
        batch.put(self.keys.stage_checkpoint(stage), &checkpoint);
    }

    /// Block `number`'s execution record, which the checkpoints say exists.
    pub fn record(&self, stage: StageId, number: u64) -> Result<ExecutionRecord, StageError> {
        let key = self.keys.record(number);
        self.read(stage, &key)?.ok_or_else(|| {
            Inconsistency::MissingRecord {
                key: key.into_string(),
            }
            .into()
        })
    }

    /// Write `batch` for `stage`. With a lease, the batch carries the write deadline, so a
    /// store that retries a lost connection gives up once it passes instead of writing after
    /// another replica may have taken over.
    pub fn write(&self, stage: StageId, mut batch: WriteBatch) -> Result<(), StageError> {
        if let Some(deadline) = &self.write_deadline {
            let deadline = deadline.load(Ordering::Acquire);
            if unix_now_ms() >= deadline {
                return Err(StageError::LeaseLost);
            }
            batch.set_deadline(deadline);
        }
        match self.store.write(&batch) {
            Err(StoreError::DeadlinePassed { .. }) => Err(StageError::LeaseLost),
            other => other.map_err(|error| StageError::store(stage, error)),
        }
    }

    /// True when a lease is in force and its write deadline has passed.
    pub fn past_write_deadline(&self) -> bool {
        self.write_deadline
            .as_ref()
            .is_some_and(|deadline| unix_now_ms() >= deadline.load(Ordering::Acquire))
    }
}

/// What every stage shares.
pub struct Shared {
    /// The store with its keys and the lease's write deadline.
    pub store: StageStore,
    /// The chain's rules.
    pub spec: Arc<ChainSpec>,
    /// The state layers execution reads through.
    pub layers: Arc<StateLayers>,
    /// The stop flags and the syncer's height.
    pub control: Control,
    /// Where each stage's time goes.
    pub meters: PipelineMeters,
}

impl Shared {
    /// The meter of `stage`.
    pub fn meter(&self, stage: StageId) -> &StageMeter {
        self.meters.stage(stage)
    }

    /// [`Self::record_progress`] for a block whose execution record the stage handled.
    pub fn record_record_progress(
        &self,
        stage: StageId,
        record: &ExecutionRecord,
        started: std::time::Instant,
    ) {
        let totals = (record.tx_count() as u64, record.gas_used);
        self.record_progress(stage, record.number, totals, started);
    }

    /// [`Self::record_progress`] for a block the stage handled before execution.
    pub fn record_block_progress(
        &self,
        stage: StageId,
        block: &primitives::block::ChainBlock,
        started: std::time::Instant,
    ) {
        let totals = (block.body.transactions.len() as u64, block.header.gas_used);
        self.record_progress(stage, block.number(), totals, started);
    }

    /// Report that `stage` finished block `number` (`transactions` and `gas` in it, gas 0
    /// where the stage does not know it), begun at `started`.
    pub fn record_progress(
        &self,
        stage: StageId,
        number: u64,
        (transactions, gas): (u64, u64),
        started: std::time::Instant,
    ) {
        let m = crate::metrics::metrics();
        let label = [stage.as_str()];
        m.stage_checkpoint
            .with_label_values(&label)
            .set(number as i64);
        m.stage_blocks_total.with_label_values(&label).inc();
        m.stage_duration_seconds
            .with_label_values(&label)
            .observe(started.elapsed().as_secs_f64());
        self.meter(stage).add_block(transactions, gas);
    }
}

/// One stage of the pipeline: its settings and state live in the implementing struct.
pub trait Stage {
    /// What the stage takes from the one before it, one item per block.
    type Input;
    /// What it hands to the ones after it.
    type Output;

    /// The stage's name (its checkpoint key, its label in logs and metrics).
    const ID: StageId;

    /// Do the stage's work on `input` (consecutive blocks, oldest first): write its durable
    /// output and move its checkpoint, then return what goes on to the next stage.
    fn execute(
        &mut self,
        shared: &Shared,
        input: Vec<Self::Input>,
    ) -> Result<Vec<Self::Output>, StageError>;

    /// Queue into `batch` the writes that undo this stage's output for `record`'s block (the
    /// newest it applied), its checkpoint moving to the block before. Nothing by default: a
    /// stage without durable output has nothing to undo.
    fn unwind(
        &mut self,
        _shared: &Shared,
        _record: &ExecutionRecord,
        _batch: &mut UnwindBatch,
    ) -> Result<(), StageError> {
        Ok(())
    }
}

/// A stage seen only as what it undoes (so stages of different types can be unwound together).
pub trait Unwind {
    /// The stage's name.
    fn id(&self) -> StageId;
    /// [`Stage::unwind`].
    fn unwind_block(
        &mut self,
        shared: &Shared,
        record: &ExecutionRecord,
        batch: &mut UnwindBatch,
    ) -> Result<(), StageError>;
}

impl<S: Stage> Unwind for S {
    fn id(&self) -> StageId {
        S::ID
    }

    fn unwind_block(
        &mut self,
        shared: &Shared,
        record: &ExecutionRecord,
        batch: &mut UnwindBatch,
    ) -> Result<(), StageError> {
        self.unwind(shared, record, batch)
    }
}

/// The writes that undo one block, in the order the crash rule needs: every stage's undo
/// first, then every stage's checkpoint, then what the undo itself read (the execution
/// record). A crash inside it leaves the checkpoints at the block, so the unwind is simply done
/// again; restoring pre-values twice gives the same bytes.
#[derive(Debug, Default)]
pub struct UnwindBatch {
    undo: WriteBatch,
    checkpoints: WriteBatch,
    last: WriteBatch,
    /// The storage roots before the block of the accounts it touched, when the merkle stage
    /// (unwound first) knows them.
    storage_roots: HashMap<Address, B256>,
}

impl UnwindBatch {
    /// The writes that undo a stage's output.
    pub fn undo(&mut self) -> &mut WriteBatch {
        &mut self.undo
    }

    /// Move `stage`'s checkpoint to `block` (the unwound block's parent, `hash`).
    pub fn checkpoint(&mut self, shared: &Shared, stage: StageId, block: u64, hash: B256) {
        shared
            .store
            .queue_checkpoint(&mut self.checkpoints, stage, block, hash);
    }

    /// The writes that must come after every checkpoint moved.
    pub fn after_checkpoints(&mut self) -> &mut WriteBatch {
        &mut self.last
    }

    /// Note the storage roots before the block (the merkle stage's unwind).
    pub fn note_storage_roots(&mut self, roots: impl IntoIterator<Item = (Address, B256)>) {
        self.storage_roots.extend(roots);
    }

    /// The storage root before the block of `address`, when the merkle stage noted it.
    pub fn storage_root(&self, address: &Address) -> Option<B256> {
        self.storage_roots.get(address).copied()
    }

    /// The whole batch, in order, fenced between its sections.
    pub fn into_batch(self) -> WriteBatch {
        let mut batch = self.undo;
        batch.extend(self.checkpoints);
        batch.extend(self.last);
        batch
    }
}

/// The channels of a stage that runs as a loop over its input.
pub struct StageIo<I, O> {
    /// Where its input comes from.
    pub input: Receiver<I>,
    /// Where its output goes (every receiver gets each item).
    pub outputs: Vec<Sender<O>>,
}

/// The loop most stages run on their own thread: first `pending` (blocks a restart found
/// already executed), then the blocks waiting on the input (up to `max` at a time; while
/// `behind_head` says more are coming, lingering up to [`CATCH_UP_LINGER`] for a fuller
/// batch), each batch through [`Stage::execute`] and its outputs passed on. Ends when the input
/// closes or another stage failed; its own error asks the other stages to stop. A receiver that
/// is gone is no reason to stop: the stage finishes what it was given (a shutdown drains the
/// pipeline; a failed stage has set the abort flag).
pub fn run_batches<S>(
    stage: &mut S,
    shared: &Shared,
    pending: Vec<S::Input>,
    io: StageIo<S::Input, S::Output>,
    max: usize,
    behind_head: impl Fn(&S::Input) -> bool,
) -> Result<(), StageError>
where
    S: Stage,
    S::Output: Clone,
{
    let meter = shared.meter(S::ID);
    let max = max.max(1);
    let mut pending = pending.into_iter().peekable();
    while !shared.control.aborted() {
        let input = if pending.peek().is_some() {
            pending.by_ref().take(max).collect()
        } else {
            meter.recv_batch_lingering(S::ID, &io.input, max, CATCH_UP_LINGER, &behind_head)
        };
        if input.is_empty() {
            break;
        }
        let outputs = stage
            .execute(shared, input)
            .inspect_err(|_| shared.control.request_stop())?;
        send_all(shared, S::ID, &io.outputs, outputs);
    }
    Ok(())
}

/// Pass `item` to every output without counting the wait: for a stage's writer thread, whose
/// backpressure shows in the wait of the thread handing it work. A receiver that is gone has
/// stopped; its own error says why.
pub fn forward<T: Clone>(outputs: &[Sender<T>], item: T) {
    for output in outputs {
        let _ = output.send(item.clone());
    }
}

/// Send every item to every receiver still there, in order.
pub fn send_all<T: Clone>(shared: &Shared, stage: StageId, outputs: &[Sender<T>], items: Vec<T>) {
    let meter = shared.meter(stage);
    for item in items {
        for output in outputs {
            meter.send(stage, output, item.clone());
        }
    }
}
