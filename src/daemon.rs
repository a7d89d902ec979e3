//! The daemon: the stages of [`pipeline::stages`] on OS threads, joined by bounded crossbeam
//! channels, started from the store's checkpoints ([`pipeline::startup`]). Stops on
//! SIGINT/SIGTERM (in-flight blocks finish their current write), on the first stage error, or
//! at the syncer's head with `--exit-at-head`; a reorg unwinds ([`pipeline::reorg`]) and
//! starts the stages again.

use crate::commands::{CommandError, Context};
use crossbeam_channel::bounded;
use evm::chain::ChainSpec;
use pipeline::meter::{thread_round_trips, CountedStore, StageTotals};
use pipeline::progress::{report_progress, Queues};
use pipeline::reorg;
use pipeline::stage::{
    run_batches, BlockFailure, Control, Shared, StageError, StageIo, StageStore, Unwind,
};
use pipeline::stages::commit::{CommitSettings, CommitStage};
use pipeline::stages::execution::{ExecutionSettings, ExecutionStage};
use pipeline::stages::headers::{HeadersEnd, HeadersSettings, HeadersStage};
use pipeline::stages::merkle::{MerkleSettings, MerkleStage, VerifyRoot};
use pipeline::stages::prune::{PruneSettings, PruneStage};
use pipeline::stages::receipts::ReceiptsStage;
use pipeline::stages::senders::SendersStage;
use pipeline::startup::{start_point, StartPoint};
use pipeline::state::{cache::CacheSizes, StateLayers};
use primitives::stage_id::StageId;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::thread::{Builder, Scope, ScopedJoinHandle};
use std::time::Duration;

/// What a daemon run did.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonOutcome {
    /// Where it started.
    pub start: StartPoint,
    /// The last block committed when it stopped.
    pub head: u64,
    /// Where each stage's time went.
    pub stages: Vec<(StageId, StageTotals)>,
}

/// Run the pipeline for `spec` until `shutdown` is set, an error occurs, or (with
/// `exit_at_head`) the head; `write_deadline` is the leader lease's.
pub fn run(
    ctx: &Context,
    spec: ChainSpec,
    exit_at_head: bool,
    shutdown: Arc<AtomicBool>,
    write_deadline: Option<Arc<AtomicU64>>,
) -> Result<DaemonOutcome, CommandError> {
    let cache = &ctx.config.cache;
    let sizes = CacheSizes {
        accounts: cache.accounts as usize,
        storage_slots: cache.storage_slots as usize,
        code: cache.code as usize,
    };
    // Every store call the stages make is counted per thread (round trips per stage).
    let store: Arc<dyn primitives::store::Store> = Arc::new(CountedStore(Arc::clone(&ctx.store)));
    let shared = Shared {
        store: StageStore::new(Arc::clone(&store), ctx.keys.clone(), write_deadline),
        spec: Arc::new(spec),
        layers: Arc::new(StateLayers::new(store, ctx.keys.clone(), sizes)),
        control: Control::new(shutdown),
        meters: Default::default(),
    };
    let threads = match ctx.config.workers.sender_recovery {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("senders-{i}"))
        .build()
        .map_err(|e| CommandError::ThreadPool(e.to_string()))?;
    let first_start = start_point(&shared)?;
    pipeline::metrics::metrics()
        .execution_height
        .set(first_start.committed as i64);
    let mut start = first_start;
    while let HeadersEnd::Reorg { block } = run_stages(ctx, &shared, &pool, start, exit_at_head)? {
        if shared.control.stopping() {
            break;
        }
        tracing::warn!(replaced = block, "the syncer replaced block {block}: reorg");
        start = start_point(&shared)?;
    }
    let head = shared
        .store
        .checkpoint_block(StageId::Commit)?
        .unwrap_or(first_start.committed);
    Ok(DaemonOutcome {
        start: first_start,
        head,
        stages: shared.meters.totals(),
    })
}

/// One run of the stages from `start` until they stop; after a reorg the stages unwind to the
/// fork point before this returns.
fn run_stages(
    ctx: &Context,
    shared: &Shared,
    pool: &rayon::ThreadPool,
    start: StartPoint,
    exit_at_head: bool,
) -> Result<HeadersEnd, CommandError> {
    let verify = verify_setting(ctx, &start);
    let verifying = verify != VerifyRoot::Off;
    let merkle_pending = start.merkle_pending(shared, verifying)?;
    let commit_pending = start.verified_pending(shared, start.committed, verifying)?;
    let receipts_pending = start.verified_pending(shared, start.receipts, verifying)?;
    // Every block executed but not committed is in flight: in the overlay.
    let in_flight: Vec<_> = commit_pending
        .iter()
        .flat_map(|batch| batch.records.iter().cloned())
        .chain(merkle_pending.iter().cloned())
        .collect();
    shared.layers.restart(&in_flight);
    shared.control.restart();
    let header_key = ctx.keys.header(start.executed);
    let parent = shared
        .store
        .read(StageId::Headers, &header_key)?
        .ok_or_else(|| CommandError::NotInitialised(format!("{header_key} is missing")))?;
    let config = &ctx.config;
    let batch_size = config.executor.batch_size;
    let poll_interval = Duration::from_millis(config.executor.poll_interval_ms);
    let mut headers = HeadersStage::new(
        HeadersSettings {
            batch_size,
            poll_interval,
            exit_at_head,
        },
        start.executed + 1,
        parent.hash(),
    );
    let mut senders = SendersStage::new(pool);
    let mut execution = ExecutionStage::new(
        ExecutionSettings {
            batch_size,
            retry_interval: poll_interval,
            prewarm: config.executor.prewarm_mode(config.storage.backend),
            log_transactions: config.executor.evm_debug,
        },
        &shared.layers,
        parent.inner().clone(),
    );
    let mut merkle = MerkleStage::new(
        MerkleSettings {
            verify,
            cached_levels: pipeline::stages::merkle::DEFAULT_CACHED_LEVELS,
        },
        start.merkle.unwrap_or(0),
    );
    let mut commit = CommitStage::new(
        CommitSettings {
            history_ttl: config.state.history_ttl(),
        },
        start.committed,
        start.total_txs,
    );
    let mut receipts = ReceiptsStage::new(start.receipts);
    let mut prune = PruneStage::new(
        PruneSettings {
            window_size: config.state.window_size,
        },
        start.pruned,
    );

    // The syncer may have replaced the executed head while we were down.
    let executed = shared.store.checkpoint(StageId::Execution)?;
    let replaced_while_down =
        executed.is_some_and(|c| c.block == start.executed && c.hash != parent.hash());
    let headers_end = if replaced_while_down {
        Ok(HeadersEnd::Reorg {
            block: start.executed,
        })
    } else {
        tracing::info!(
            executed = start.executed,
            committed = start.committed,
            receipts = start.receipts,
            pruned = start.pruned,
            "pipeline starting"
        );
        let capacity = config.workers.queue_capacity as usize;
        let (blocks_tx, blocks_rx) = bounded(capacity);
        let (senders_tx, senders_rx) = bounded(capacity);
        let (merkle_tx, merkle_rx) = bounded(capacity);
        let (commit_tx, commit_rx) = bounded(capacity);
        let (receipts_tx, receipts_rx) = bounded(capacity);
        let (applied_tx, applied_rx) = bounded(capacity);
        let queues = Queues {
            senders: blocks_rx.clone(),
            execution: senders_rx.clone(),
            merkle: merkle_rx.clone(),
            commit: commit_rx.clone(),
            receipts: receipts_rx.clone(),
        };
        let max = batch_size as usize;
        let applied_by_commit = applied_tx.clone();
        let (commit, receipts) = (&mut commit, &mut receipts);
        // Dropped when every stage has ended: the reporter stops at once.
        let (pipeline_running, pipeline_done) = bounded::<()>(0);
        std::thread::scope(|scope| -> Result<HeadersEnd, StageError> {
            let reporter = scope.spawn(|| report_progress(shared, queues, &pipeline_done));
            let headers = spawn(scope, shared, StageId::Headers, || {
                headers.run(shared, blocks_tx)
            });
            let stages = [
                spawn(scope, shared, StageId::Senders, || {
                    senders.run(shared, io(blocks_rx, vec![senders_tx]))
                }),
                spawn(scope, shared, StageId::Execution, || {
                    execution.run(shared, io(senders_rx, vec![merkle_tx]))
                }),
                spawn(scope, shared, StageId::Merkle, || {
                    let io = io(merkle_rx, vec![commit_tx, receipts_tx]);
                    merkle.run(shared, merkle_pending, io, max)
                }),
                spawn(scope, shared, StageId::Commit, move || {
                    let io = io(commit_rx, vec![applied_by_commit]);
                    // One verified batch (up to `batch_size` blocks) at a time.
                    run_batches(commit, shared, commit_pending, io, 1, |_| false)
                }),
                spawn(scope, shared, StageId::Receipts, move || {
                    let io = io(receipts_rx, vec![applied_tx]);
                    run_batches(receipts, shared, receipts_pending, io, 1, |_| false)
                }),
                spawn(scope, shared, StageId::Prune, || {
                    prune.run(shared, io(applied_rx, vec![]))
                }),
            ];
            let headers_end = join(StageId::Headers, headers);
            let results: Vec<_> = StageId::ALL[1..]
                .iter()
                .zip(stages)
                .map(|(stage, handle)| join(*stage, handle))
                .collect();
            drop(pipeline_running);
            let _ = reporter.join();
            results.into_iter().collect::<Result<Vec<()>, _>>()?;
            headers_end
        })
    };
    let headers_end = match headers_end {
        Err(StageError::Block {
            failure: BlockFailure::StateRoot(failure),
            stage,
        }) => {
            // Nothing of the failed block may stay: its record and those after it go, so a
            // restart executes it again.
            let executed = shared.store.checkpoint_block(StageId::Execution)?;
            let verified = failure.block() - 1;
            if let Some(executed) = executed.filter(|e| *e > verified) {
                reorg::unwind_to(shared, verified, executed, &mut [&mut execution])?;
            }
            return Err(StageError::block(stage, BlockFailure::StateRoot(failure)).into());
        }
        other => other?,
    };
    if let HeadersEnd::Reorg { .. } = headers_end {
        if !shared.control.stopping() {
            let stages: &mut [&mut dyn Unwind] =
                &mut [&mut merkle, &mut receipts, &mut commit, &mut execution];
            unwind_reorg(shared, stages)?;
        }
    }
    Ok(headers_end)
}

/// The merkle stage's setting: the configured one, or off (said loudly) for a store without
/// state tries.
fn verify_setting(ctx: &Context, start: &StartPoint) -> VerifyRoot {
    let configured = ctx.config.state.verify_root.stage_setting();
    let verified = start.merkle.is_some() && configured != VerifyRoot::Off;
    pipeline::metrics::metrics()
        .state_verified
        .set(i64::from(verified));
    if start.merkle.is_none() && configured != VerifyRoot::Off {
        tracing::warn!(
            "STATE UNVERIFIED: this store has no state tries (written before the merkle stage, \
             or by the original service), so state roots are not checked; run `evm-executor \
             trie rebuild` once to build them from st:latest and verify from then on"
        );
        return VerifyRoot::Off;
    }
    configured
}

/// Unwind the executed blocks the syncer replaced, down to the fork point.
fn unwind_reorg(shared: &Shared, stages: &mut [&mut dyn Unwind]) -> Result<(), StageError> {
    let store = &shared.store;
    let executed = store.checkpoint_block(StageId::Execution)?.unwrap_or(0);
    // Pruning went on while the pipeline ran: the window's floor is the prune checkpoint now.
    let pruned = store.checkpoint_block(StageId::Prune)?.unwrap_or(0);
    let fork = reorg::fork_point(shared, executed, pruned)?;
    tracing::warn!(fork, depth = executed - fork, "unwinding to the fork point");
    let m = pipeline::metrics::metrics();
    m.reorgs_total.inc();
    m.unwind_depth.set((executed - fork) as i64);
    reorg::unwind_to(shared, fork, executed, stages)?;
    m.execution_height.set(fork as i64);
    Ok(())
}

/// The channels of a stage.
fn io<I, O>(
    input: crossbeam_channel::Receiver<I>,
    outputs: Vec<crossbeam_channel::Sender<O>>,
) -> StageIo<I, O> {
    StageIo { input, outputs }
}

/// Start `stage` on a thread of its own named after it; the store round trips the thread
/// makes are counted in the stage's meter.
fn spawn<'scope, 'env, T: Send + 'scope>(
    scope: &'scope Scope<'scope, 'env>,
    shared: &'scope Shared,
    stage: StageId,
    work: impl FnOnce() -> Result<T, StageError> + Send + 'scope,
) -> std::io::Result<ScopedJoinHandle<'scope, Result<T, StageError>>> {
    Builder::new()
        .name(stage.as_str().into())
        .spawn_scoped(scope, move || {
            let result = work();
            shared.meter(stage).add_round_trips(thread_round_trips());
            result
        })
}

/// Wait for a stage's thread; a thread that could not start or panicked is an error.
fn join<T>(
    stage: StageId,
    handle: std::io::Result<ScopedJoinHandle<'_, Result<T, StageError>>>,
) -> Result<T, StageError> {
    let thread_failed = |reason: String| StageError::Thread { stage, reason };
    match handle {
        Ok(handle) => handle
            .join()
            .unwrap_or_else(|_| Err(thread_failed("panicked".into()))),
        Err(e) => Err(thread_failed(format!("cannot start: {e}"))),
    }
}
