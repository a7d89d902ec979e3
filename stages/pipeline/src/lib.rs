//! The staged pipeline (DESIGN §2): six stages, each a loop over a bounded channel, each
//! checkpointing in `idx:stage:{name}`. What they share lives here: the context every stage
//! reads, checkpoints, and the error a stage stops with.
//!
//! Flow: headers → senders → execution ─┬→ commit → (prune reads checkpoints)
//!                                       └→ receipts
//! Execution writes each block's [`ExecutionRecord`] as one value before anything else of the
//! block is written; commit and receipts apply records idempotently and only then move their
//! checkpoints (the crash rule).

pub mod commit_writes;
pub mod meter;
pub mod metrics;
pub mod stages;
pub mod state;
pub mod unwind;

use crate::state::StateLayers;
use alloy_primitives::{Address, B256};
use evm::chain::ChainSpec;
use primitives::block::ChainBlock;
use primitives::contract::{decode_json, encode_json, MalformedValue, StageCheckpoint};
use primitives::keys::Keys;
use primitives::record::ExecutionRecord;
use primitives::stage_id::StageId;
use primitives::store::{Store, StoreError, WriteBatch};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use primitives::clock::{unix_now, unix_now_ms};

/// While catching up, how long a stage that writes a batch of blocks at a time waits for the
/// batch to fill: fewer, larger store transactions. At the head every block is written as soon
/// as it comes.
pub const CATCH_UP_LINGER: Duration = Duration::from_millis(500);

/// A block with its recovered senders.
pub type SendersBlock = (ChainBlock, Vec<Address>);

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
    /// A block could not be processed (the message names block and key or field).
    #[error("{stage}: {message}")]
    Block {
        /// The stage.
        stage: StageId,
        /// What went wrong.
        message: String,
    },
    /// The leader lease was lost or could not be renewed in time; nothing more was written.
    #[error("leader lease lost or not renewed in time; stopped writing")]
    LeaseLost,
    /// The store's progress markers contradict each other in a way that cannot be repaired.
    #[error("inconsistent store: {0}")]
    Inconsistent(String),
}

/// What every stage needs.
pub struct PipelineContext {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Key layout.
    pub keys: Keys,
    /// The chain's rules.
    pub spec: Arc<ChainSpec>,
    /// The state layers execution reads through.
    pub layers: Arc<StateLayers>,
    /// Set by SIGINT/SIGTERM: stop every stage.
    pub shutdown: Arc<AtomicBool>,
    /// Set by a failing stage: stop the others.
    pub abort: AtomicBool,
    /// With a leader lease: Unix milliseconds until which this process may write (moved
    /// forward by each renewal). Past it every write is refused, so a leader that cannot renew
    /// stops writing before its lease can expire.
    pub write_deadline: Option<Arc<AtomicU64>>,
    /// Stop once every synced block is executed.
    pub exit_at_head: bool,
    /// How often the syncer's progress is polled when caught up.
    pub poll_interval: Duration,
    /// Blocks loaded per store round trip.
    pub batch_size: u64,
    /// TTL of history keys.
    pub history_ttl: Duration,
    /// Blocks of history and records kept.
    pub window_size: u64,
    /// Where each stage's time goes.
    pub meters: meter::PipelineMeters,
    /// The syncer's height as the headers stage last read it: a stage that has not reached it
    /// knows more blocks are on their way.
    pub synced: AtomicU64,
    /// Set by the senders stage when a block fails: the headers stage loads no more, while the
    /// stages after senders finish the blocks before it.
    pub loading_stopped: AtomicBool,
}

impl PipelineContext {
    /// True once a stop was requested.
    pub fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed) || self.abort.load(Ordering::Relaxed)
    }

    /// True while blocks above `number` are known to be synced (the pipeline is catching up).
    pub fn behind_head(&self, number: u64) -> bool {
        number < self.synced.load(Ordering::Relaxed)
    }

    /// Ask every stage to stop.
    pub fn request_stop(&self) {
        self.abort.store(true, Ordering::Relaxed);
    }

    /// A stage's checkpoint.
    pub fn checkpoint(&self, stage: StageId) -> Result<Option<StageCheckpoint>, StageError> {
        let key = self.keys.stage_checkpoint(stage.as_str());
        let bytes = self
            .store
            .get(&key)
            .map_err(|error| StageError::Store { stage, error })?;
        bytes
            .map(|b| decode_json(&key, &b))
            .transpose()
            .map_err(|e: MalformedValue| StageError::Inconsistent(e.to_string()))
    }

    /// Queue a stage's checkpoint at `block`.
    pub fn queue_checkpoint(&self, batch: &mut WriteBatch, stage: StageId, block: u64, hash: B256) {
        let checkpoint = StageCheckpoint {
            block,
            hash,
            time: unix_now(),
        };
        batch.set(
            self.keys.stage_checkpoint(stage.as_str()),
            encode_json(&checkpoint),
        );
    }

    /// Report that `stage` finished block `number` (`transactions` and `gas` in it, gas 0
    /// where the stage does not know it), begun at `started`.
    pub fn record_stage_progress(
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
        self.meters.stage(stage).add_block(transactions, gas);
    }

    /// Block `number`'s execution record from the store.
    pub fn load_record(&self, stage: StageId, number: u64) -> Result<ExecutionRecord, StageError> {
        let key = self.keys.record(number);
        let bytes = self
            .store
            .get(&key)
            .map_err(|error| StageError::Store { stage, error })?
            .ok_or_else(|| StageError::Inconsistent(format!("{key} missing")))?;
        ExecutionRecord::decode(&bytes).map_err(|e| StageError::Inconsistent(format!("{key}: {e}")))
    }

    /// Write `batch`, naming `stage` on failure. With a lease, the batch carries the write
    /// deadline, so a store that retries a lost connection gives up once it passes instead of
    /// writing after another replica may have taken over.
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
            other => other.map_err(|error| StageError::Store { stage, error }),
        }
    }

    /// True when a lease is in force and its write deadline has passed.
    pub fn past_write_deadline(&self) -> bool {
        self.write_deadline
            .as_ref()
            .is_some_and(|deadline| unix_now_ms() >= deadline.load(Ordering::Acquire))
    }
}
