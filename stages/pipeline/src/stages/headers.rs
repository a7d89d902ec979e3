//! Headers stage: follows `idx:sync:progress`, loads blocks in batches (one pipelined MGET per
//! batch), checks each body against its header and each parent hash against the block before.
//! No durable output: after a restart it resumes from the execution checkpoint.
//!
//! A block whose data is missing or inconsistent stops the pipeline at that block: the error is
//! logged and the block retried every poll interval, so a syncer that repairs the data lets the
//! daemon continue by itself (with `exit_at_head` the run ends with the error instead).

use crate::{PipelineContext, StageError};
use alloy_primitives::B256;
use crossbeam_channel::Sender;
use primitives::block::decode_header;
use primitives::block::ChainBlock;
use primitives::contract::{decode_json, SyncProgress};
use primitives::load::{load_blocks, LoadError};
use primitives::stage_id::StageId;
use std::sync::atomic::Ordering;

const STAGE: StageId = StageId::Headers;

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

/// Load blocks from `first` on, each extending `parent_hash`, into `out`.
pub fn run(
    ctx: &PipelineContext,
    first: u64,
    mut parent_hash: B256,
    out: Sender<ChainBlock>,
) -> Result<HeadersEnd, StageError> {
    let mut next = first;
    let mut reported: Option<u64> = None;
    let meter = ctx.meters.stage(STAGE);
    while !ctx.stopping() && !ctx.loading_stopped.load(Ordering::Relaxed) {
        let synced = synced_height(ctx)?;
        if next > synced {
            // A reorg to a branch no longer than ours shows only as a replaced header.
            if next > 1 && replaced(ctx, next - 1, parent_hash)? {
                tracing::warn!(
                    block = next - 1,
                    "the syncer replaced an executed block: reorg"
                );
                return Ok(HeadersEnd::Reorg { block: next - 1 });
            }
            if ctx.exit_at_head {
                return Ok(HeadersEnd::Done);
            }
            std::thread::sleep(ctx.poll_interval);
            meter.add_input_wait(STAGE, ctx.poll_interval);
            continue;
        }
        let last = synced.min(next + ctx.batch_size - 1);
        let batch_started = std::time::Instant::now();
        let loaded = load_blocks(ctx.store.as_ref(), &ctx.keys, next, last);
        let loaded = match loaded {
            Ok(blocks) => blocks,
            Err(error) => {
                return Err(StageError::Store {
                    stage: STAGE,
                    error,
                })
            }
        };
        for result in loaded {
            let problem = match result {
                Ok(block) if block.header.parent_hash == parent_hash => {
                    let totals = (block.body.transactions.len() as u64, block.header.gas_used);
                    ctx.record_stage_progress(STAGE, block.number(), totals, batch_started);
                    parent_hash = block.hash;
                    next += 1;
                    reported = None;
                    if !meter.send(STAGE, &out, block) {
                        return Ok(HeadersEnd::Done);
                    }
                    continue;
                }
                Ok(_) if replaced(ctx, next - 1, parent_hash)? => {
                    tracing::warn!(
                        block = next - 1,
                        "the syncer replaced an executed block: reorg"
                    );
                    return Ok(HeadersEnd::Reorg { block: next - 1 });
                }
                Ok(block) => format!(
                    "block {}: parentHash {:#x} does not extend block {}'s hash {parent_hash:#x}",
                    block.number(),
                    block.header.parent_hash,
                    block.number() - 1
                ),
                Err(LoadError::Store(error)) => {
                    return Err(StageError::Store {
                        stage: STAGE,
                        error,
                    })
                }
                Err(error) => error.to_string(),
            };
            if ctx.exit_at_head {
                return Err(StageError::Block {
                    stage: STAGE,
                    message: problem,
                });
            }
            if reported != Some(next) {
                tracing::error!(block = next, "{problem}; waiting for the syncer to fix it");
                reported = Some(next);
            }
            std::thread::sleep(ctx.poll_interval);
            break;
        }
    }
    Ok(HeadersEnd::Done)
}

/// True when the store's header `number` is no longer the block `hash` this pipeline loaded.
fn replaced(ctx: &PipelineContext, number: u64, hash: B256) -> Result<bool, StageError> {
    let key = ctx.keys.header(number);
    let bytes = ctx.store.get(&key).map_err(|error| StageError::Store {
        stage: STAGE,
        error,
    })?;
    Ok(match bytes {
        Some(bytes) => decode_header(&key, &bytes).is_ok_and(|(_, stored)| stored != hash),
        None => false,
    })
}

fn synced_height(ctx: &PipelineContext) -> Result<u64, StageError> {
    let key = ctx.keys.sync_progress();
    let bytes = ctx.store.get(&key).map_err(|error| StageError::Store {
        stage: STAGE,
        error,
    })?;
    match bytes {
        Some(bytes) => decode_json::<SyncProgress>(&key, &bytes)
            .map(|p| {
                ctx.synced.store(p.latest_synced_block, Ordering::Relaxed);
                let m = crate::metrics::metrics();
                m.sync_height.set(p.latest_synced_block as i64);
                // Updated here too, so a stalled pipeline shows a growing lag.
                m.execution_lag
                    .set((p.latest_synced_block as i64 - m.execution_height.get()).max(0));
                p.latest_synced_block
            })
            .map_err(|e| StageError::Block {
                stage: STAGE,
                message: e.to_string(),
            }),
        None => Ok(0),
    }
}
