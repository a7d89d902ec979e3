//! Headers stage: follows `idx:sync:progress`, loads blocks in batches (one pipelined MGET per
//! batch), checks each body against its header and each parent hash against the block before.
//! No durable output, so nothing to unwind: after a restart it resumes from the execution
//! checkpoint.
//!
//! A block whose data is missing or inconsistent stops the pipeline at that block: the error is
//! logged and the block retried every poll interval, so a syncer that repairs the data lets the
//! daemon continue by itself (with `exit_at_head` the run ends with the error instead).

use crate::stage::{BlockFailure, ErrorAction, Shared, Stage, StageError};
use alloy_primitives::B256;
use crossbeam_channel::Sender;
use primitives::block::ChainBlock;
use primitives::load::{load_blocks, LoadError};
use primitives::stage_id::StageId;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// How the headers stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadersEnd {
    /// Stopped (signal, head reached with `exit_at_head`, or downstream gone).
    Done,
    /// The syncer replaced block `block`, which this pipeline already loaded: the chain
    /// reorganised and must be unwound.
    Reorg {
        /// The highest block whose stored hash no longer matches.
        block: u64,
    },
}

/// The headers stage's settings.
#[derive(Debug, Clone)]
pub struct HeadersSettings {
    /// Blocks loaded per store round trip.
    pub batch_size: u64,
    /// How often the syncer's progress is polled when caught up, and a bad block retried.
    pub poll_interval: Duration,
    /// Stop once every synced block is loaded (and fail on a bad block instead of waiting).
    pub exit_at_head: bool,
}

/// The headers stage: where it is in the chain.
#[derive(Debug)]
pub struct HeadersStage {
    settings: HeadersSettings,
    /// The next block to load.
    next: u64,
    /// The hash the next block must name as its parent.
    parent_hash: B256,
}

impl HeadersStage {
    /// Load from block `first` on, which must extend `parent_hash`.
    pub fn new(settings: HeadersSettings, first: u64, parent_hash: B256) -> Self {
        Self {
            settings,
            next: first,
            parent_hash,
        }
    }

    /// Load blocks as the syncer publishes them into `out` until stopped, the head (with
    /// `exit_at_head`), a reorg, or an error.
    pub fn run(
        &mut self,
        shared: &Shared,
        out: Sender<ChainBlock>,
    ) -> Result<HeadersEnd, StageError> {
        let meter = shared.meter(StageId::Headers);
        let mut reported: Option<u64> = None;
        while !shared.control.stopping() && !shared.control.loading_stopped() {
            let synced = synced_height(shared)?;
            if self.next > synced {
                // A reorg to a branch no longer than ours shows only as a replaced header.
                if let Some(end) = self.replaced_head(shared)? {
                    return Ok(end);
                }
                if self.settings.exit_at_head {
                    return Ok(HeadersEnd::Done);
                }
                std::thread::sleep(self.settings.poll_interval);
                meter.add_input_wait(StageId::Headers, self.settings.poll_interval);
                continue;
            }
            let last = synced.min(self.next + self.settings.batch_size.max(1) - 1);
            match self.execute(shared, vec![self.next..=last]) {
                Ok(blocks) => {
                    reported = None;
                    for block in blocks {
                        if !meter.send(StageId::Headers, &out, block) {
                            return Ok(HeadersEnd::Done);
                        }
                    }
                }
                Err(error) => {
                    if let StageError::Block {
                        failure: BlockFailure::NotAChild { .. },
                        ..
                    } = &error
                    {
                        if let Some(end) = self.replaced_head(shared)? {
                            return Ok(end);
                        }
                    }
                    if self.settings.exit_at_head || error.action() != ErrorAction::WaitForSyncer {
                        return Err(error);
                    }
                    if reported != Some(self.next) {
                        tracing::error!(
                            block = self.next,
                            "{error}; waiting for the syncer to fix it"
                        );
                        reported = Some(self.next);
                    }
                    std::thread::sleep(self.settings.poll_interval);
                }
            }
        }
        Ok(HeadersEnd::Done)
    }

    /// [`HeadersEnd::Reorg`] when the syncer replaced the block this stage loaded last.
    fn replaced_head(&self, shared: &Shared) -> Result<Option<HeadersEnd>, StageError> {
        let number = self.next - 1;
        if self.next <= 1 {
            return Ok(None);
        }
        let stored = shared
            .store
            .store()
            .get(shared.store.keys().header(number).as_str())
            .map_err(|error| StageError::store(StageId::Headers, error))?;
        let replaced = stored.is_some_and(|bytes| {
            shared
                .store
                .keys()
                .header(number)
                .decode(&bytes)
                .is_ok_and(|header| header.hash() != self.parent_hash)
        });
        if replaced {
            tracing::warn!(
                block = number,
                "the syncer replaced an executed block: reorg"
            );
        }
        Ok(replaced.then_some(HeadersEnd::Reorg { block: number }))
    }
}

impl Stage for HeadersStage {
    /// Ranges of block numbers to load.
    type Input = RangeInclusive<u64>;
    type Output = ChainBlock;
    const ID: StageId = StageId::Headers;

    /// Load `input`'s blocks with one batched read per range, checking every body against its
    /// header and every block against its parent. A bad block ends the call: with the good
    /// blocks before it when there are any (the next call starts at the bad one), else with
    /// its error.
    fn execute(
        &mut self,
        shared: &Shared,
        input: Vec<Self::Input>,
    ) -> Result<Vec<ChainBlock>, StageError> {
        let mut blocks = Vec::new();
        for range in input {
            let started = Instant::now();
            let loaded = load_blocks(
                shared.store.store().as_ref(),
                shared.store.keys(),
                *range.start(),
                *range.end(),
            )
            .map_err(|error| StageError::store(StageId::Headers, error))?;
            for result in loaded {
                let failure = match result {
                    Ok(block) if block.header.parent_hash == self.parent_hash => {
                        let totals = (block.body.transactions.len() as u64, block.header.gas_used);
                        shared.record_progress(StageId::Headers, block.number(), totals, started);
                        self.parent_hash = block.hash;
                        self.next += 1;
                        blocks.push(block);
                        continue;
                    }
                    Ok(block) => BlockFailure::NotAChild {
                        block: block.number(),
                        parent_hash: block.header.parent_hash,
                        expected: self.parent_hash,
                    },
                    Err(LoadError::Store(error)) => {
                        return Err(StageError::store(StageId::Headers, error))
                    }
                    Err(error) => error.into(),
                };
                if blocks.is_empty() {
                    return Err(StageError::block(StageId::Headers, failure));
                }
                return Ok(blocks);
            }
        }
        Ok(blocks)
    }
}

/// The syncer's height, noted for the other stages and the metrics (0 before it wrote any).
fn synced_height(shared: &Shared) -> Result<u64, StageError> {
    let key = shared.store.keys().sync_progress();
    let height = shared
        .store
        .read(StageId::Headers, &key)?
        .map_or(0, |p| p.latest_synced_block);
    shared.control.note_synced(height);
    let m = crate::metrics::metrics();
    m.sync_height.set(height as i64);
    // Updated here too, so a stalled pipeline shows a growing lag.
    m.execution_lag
        .set((height as i64 - m.execution_height.get()).max(0));
    Ok(height)
}
