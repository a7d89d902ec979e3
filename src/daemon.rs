//! The daemon: the six stages of [`stages::pipeline`] on OS threads, joined by bounded
//! crossbeam channels, started from the store's checkpoints after checking (and repairing)
//! that they agree. Stops on SIGINT/SIGTERM (in-flight blocks finish their current write), on
//! the first stage error, or at the syncer's head with `--exit-at-head`.

use crate::commands::{run::chain_spec, CommandError, Context};
use alloy_primitives::B256;
use crossbeam_channel::bounded;
use stages::block::decode_header;
use stages::contract::{decode_json, ExecProgress};
use stages::metrics::metrics;
use stages::pipeline::headers::HeadersEnd;
use stages::pipeline::meter::StageTotals;
use stages::pipeline::{self, unwind, PipelineContext, StageError};
use stages::record::ExecutionRecord;
use stages::stage_id::StageId;
use stages::state::{cache::CacheSizes, StateLayers};
use stages::store::WriteBatch;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

/// Where each stage resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartPoint {
    /// Last block whose record is written.
    pub executed: u64,
    /// Last block applied to `st:latest`.
    pub committed: u64,
    /// Last block whose receipts are written.
    pub receipts: u64,
    /// Last block pruned.
    pub pruned: u64,
    /// Transactions executed up to `committed`.
    pub total_txs: u64,
}

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

fn stage_error(error: StageError) -> CommandError {
    match error {
        StageError::LeaseLost => CommandError::LeaseLost,
        other => CommandError::Block(other.to_string()),
    }
}

/// Read the checkpoints, take over a store without them, and repair what is out of order.
pub fn start_point(pctx: &PipelineContext) -> Result<StartPoint, CommandError> {
    let progress_key = pctx.keys.exec_progress();
    let progress: ExecProgress = match pctx.store.get(&progress_key)? {
        Some(bytes) => decode_json(&progress_key, &bytes)?,
        None => {
            return Err(CommandError::NotInitialised(format!(
                "{progress_key} is missing"
            )))
        }
    };
    let block = |stage| -> Result<Option<u64>, CommandError> {
        Ok(pctx
            .checkpoint(stage)
            .map_err(stage_error)?
            .map(|c| c.block))
    };
    let (executed, committed, receipts, pruned) = (
        block(StageId::Execution)?,
        block(StageId::Commit)?,
        block(StageId::Receipts)?,
        block(StageId::Prune)?.unwrap_or(0),
    );
    let legacy = progress.latest_executed_block;
    let Some(executed) = executed else {
        // A store written by the original service (or fresh from `init`): its state is
        // complete up to latestExecutedBlock and nothing is in flight.
        tracing::info!(
            block = legacy,
            "no stage checkpoints: taking over at idx:exec:progress"
        );
        // The consumers' checkpoints start at the takeover point too: without them a restart
        // could not tell blocks the receipts stage had not reached yet from blocks before the
        // takeover once commit has moved idx:exec:progress.
        let hash = pctx
            .layers
            .block_hash(legacy)
            .map_err(|e| CommandError::Block(format!("taking over at block {legacy}: {e}")))?;
        let mut batch = WriteBatch::new();
        for stage in [StageId::Commit, StageId::Receipts] {
            if block(stage)?.is_none() {
                pctx.queue_checkpoint(&mut batch, stage, legacy, hash);
            }
        }
        pctx.write(StageId::Execution, batch).map_err(stage_error)?;
        return Ok(StartPoint {
            executed: legacy,
            committed: legacy,
            receipts: legacy,
            pruned,
            total_txs: progress.total_txs_executed,
        });
    };
    // A store whose takeover predates writing these checkpoints may lack them.
    let committed = committed.unwrap_or(legacy);
    let receipts = receipts.unwrap_or(legacy);
    let mut start = StartPoint {
        executed,
        committed,
        receipts,
        pruned,
        total_txs: progress.total_txs_executed,
    };
    if committed > executed || receipts > executed {
        let ahead = committed.max(receipts);
        tracing::warn!(
            executed,
            committed,
            receipts,
            "execution checkpoint behind its consumers; moving it to {ahead}"
        );
        let record = pctx
            .load_record(StageId::Execution, ahead)
            .map_err(stage_error)?;
        let mut batch = WriteBatch::new();
        pctx.queue_checkpoint(&mut batch, StageId::Execution, ahead, record.hash);
        pctx.write(StageId::Execution, batch).map_err(stage_error)?;
        start.executed = ahead;
    }
    if legacy != committed {
        // Commit writes progress and its checkpoint in one ordered batch; a cut between them
        // leaves progress ahead, which re-applying those records repairs.
        tracing::warn!(
            progress = legacy,
            committed,
            "idx:exec:progress differs from the commit checkpoint; re-applying from {}",
            committed + 1
        );
        // The running transaction total must not count the re-applied records twice.
        let mut total = progress.total_txs_executed;
        for number in committed + 1..=legacy {
            let record = pctx
                .load_record(StageId::Commit, number)
                .map_err(stage_error)?;
            total = total.saturating_sub(record.tx_count() as u64);
        }
        start.total_txs = total;
    }
    if pruned > committed.min(receipts) {
        return Err(CommandError::Block(format!(
            "prune checkpoint {pruned} is above the commit ({committed}) or receipts ({receipts}) checkpoint"
        )));
    }
    Ok(start)
}

/// Records `first..=last` from the store.
fn pending_records(
    pctx: &PipelineContext,
    first: u64,
    last: u64,
) -> Result<Vec<Arc<ExecutionRecord>>, CommandError> {
    (first..=last)
        .map(|n| {
            pctx.load_record(StageId::Execution, n)
                .map(Arc::new)
                .map_err(stage_error)
        })
        .collect()
}

/// Run the pipeline until `stop` is set, an error occurs, or (with `exit_at_head`) the head.
pub fn run(
    ctx: &Context,
    exit_at_head: bool,
    shutdown: Arc<AtomicBool>,
    write_deadline: Option<Arc<std::sync::atomic::AtomicU64>>,
) -> Result<DaemonOutcome, CommandError> {
    let record = crate::commands::adopt::chain_for_run(ctx)?;
    let spec = Arc::new(chain_spec(ctx, &record)?);
    let cache = &ctx.config.cache;
    let sizes = CacheSizes {
        accounts: cache.accounts as usize,
        storage_slots: cache.storage_slots as usize,
        code: cache.code as usize,
    };
    let pctx = PipelineContext {
        store: Arc::clone(&ctx.store),
        keys: ctx.keys.clone(),
        spec,
        layers: Arc::new(StateLayers::new(
            Arc::clone(&ctx.store),
            ctx.keys.clone(),
            sizes,
        )),
        shutdown,
        abort: AtomicBool::new(false),
        write_deadline,
        exit_at_head,
        poll_interval: Duration::from_millis(ctx.config.executor.poll_interval_ms),
        batch_size: ctx.config.executor.batch_size,
        history_ttl: ctx.config.state.history_ttl(),
        window_size: ctx.config.state.window_size,
        meters: Default::default(),
        synced: AtomicU64::new(0),
        loading_stopped: AtomicBool::new(false),
    };
    let first_start = start_point(&pctx)?;
    metrics().execution_height.set(first_start.committed as i64);
    let mut start = first_start;
    loop {
        match run_pipeline(ctx, &pctx, start)? {
            HeadersEnd::Reorg { block } if !pctx.stopping() => {
                let executed = pctx
                    .checkpoint(StageId::Execution)
                    .map_err(stage_error)?
                    .map_or(start.executed, |c| c.block);
                // Pruning went on while the pipeline ran: the window's floor is the prune
                // checkpoint now, not at start.
                let pruned = pctx
                    .checkpoint(StageId::Prune)
                    .map_err(stage_error)?
                    .map_or(start.pruned, |c| c.block);
                let fork = unwind::fork_point(&pctx, executed, pruned).map_err(stage_error)?;
                let progress_key = ctx.keys.exec_progress();
                let total = match ctx.store.get(&progress_key)? {
                    Some(bytes) => {
                        decode_json::<ExecProgress>(&progress_key, &bytes)?.total_txs_executed
                    }
                    None => 0,
                };
                tracing::warn!(
                    replaced = block,
                    fork,
                    depth = executed - fork,
                    "unwinding to the fork point"
                );
                metrics().reorgs_total.inc();
                metrics().unwind_depth.set((executed - fork) as i64);
                unwind::unwind_to(&pctx, fork, executed, total).map_err(stage_error)?;
                metrics().execution_height.set(fork as i64);
                start = start_point(&pctx)?;
            }
            _ => break,
        }
    }
    let head = pctx
        .checkpoint(StageId::Commit)
        .map_err(stage_error)?
        .map_or(first_start.committed, |c| c.block);
    Ok(DaemonOutcome {
        start: first_start,
        head,
        stages: pctx.meters.totals(),
    })
}

/// One run of the six stages from `start` until they stop; tells whether a reorg stopped them.
fn run_pipeline(
    ctx: &Context,
    pctx: &PipelineContext,
    start: StartPoint,
) -> Result<HeadersEnd, CommandError> {
    pctx.layers.reset();
    let commit_pending = pending_records(pctx, start.committed + 1, start.executed)?;
    let receipt_pending = pending_records(pctx, start.receipts + 1, start.executed)?;
    for record in &commit_pending {
        pctx.layers.absorb(record);
    }
    let header_key = ctx.keys.header(start.executed);
    let header_bytes = ctx
        .store
        .get(&header_key)?
        .ok_or_else(|| CommandError::NotInitialised(format!("{header_key} is missing")))?;
    let (parent, parent_hash): (_, B256) = decode_header(&header_key, &header_bytes)?;
    // The syncer may have replaced the executed head while we were down.
    if let Some(checkpoint) = pctx.checkpoint(StageId::Execution).map_err(stage_error)? {
        if checkpoint.block == start.executed && checkpoint.hash != parent_hash {
            tracing::warn!(
                block = start.executed,
                "the executed head was replaced while stopped: reorg"
            );
            return Ok(HeadersEnd::Reorg {
                block: start.executed,
            });
        }
    }
    let threads = match ctx.config.workers.sender_recovery {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("senders-{i}"))
        .build()
        .map_err(|e| CommandError::Block(format!("cannot start the sender-recovery pool: {e}")))?;
    let capacity = ctx.config.workers.queue_capacity as usize;
    let (blocks_tx, blocks_rx) = bounded(capacity);
    let (senders_tx, senders_rx) = bounded(capacity);
    let (commit_tx, commit_rx) = bounded(capacity);
    let (receipts_tx, receipts_rx) = bounded(capacity);
    let (pruned_tx, pruned_rx) = bounded(capacity);
    let receipts_pruned_tx = pruned_tx.clone();
    pctx.loading_stopped.store(false, Ordering::Relaxed);
    tracing::info!(
        executed = start.executed,
        committed = start.committed,
        receipts = start.receipts,
        pruned = start.pruned,
        "pipeline starting"
    );

    let queues = Queues {
        senders: blocks_rx.clone(),
        execution: senders_rx.clone(),
        commit: commit_rx.clone(),
        receipts: receipts_rx.clone(),
    };
    let pipeline_done = AtomicBool::new(false);
    let (headers_end, results) = std::thread::scope(|scope| {
        let pool = &pool;
        // The reporter owns its receiver clones and drops them as soon as the pipeline stops,
        // so a stage blocked on a full channel sees the disconnect instead of waiting for ever.
        let reporter = scope.spawn(|| report_progress(pctx, queues, &pipeline_done));
        let stopping = |result: Result<(), StageError>| {
            if result.is_err() {
                pctx.request_stop();
            }
            result
        };
        let headers = std::thread::Builder::new()
            .name("headers".into())
            .spawn_scoped(scope, move || {
                // No abort on error: closing the channel lets the later stages finish the good
                // blocks already loaded before the error is reported.
                pipeline::headers::run(pctx, start.executed + 1, parent_hash, blocks_tx)
            });
        let handles = [
            std::thread::Builder::new()
                .name("senders".into())
                .spawn_scoped(scope, move || {
                    // Like headers: a bad block closes the channel, so the good blocks before
                    // it are still executed and written before the error is reported.
                    pipeline::senders::run(pctx, pool, blocks_rx, senders_tx)
                }),
            std::thread::Builder::new()
                .name("execution".into())
                .spawn_scoped(scope, move || {
                    let outputs = pipeline::execution::RecordOutputs {
                        commit: commit_tx,
                        receipts: receipts_tx,
                    };
                    stopping(pipeline::execution::run(pctx, parent, senders_rx, outputs))
                }),
            std::thread::Builder::new()
                .name("commit".into())
                .spawn_scoped(scope, move || {
                    stopping(pipeline::commit::run(
                        pctx,
                        start.total_txs,
                        commit_pending,
                        commit_rx,
                        pruned_tx,
                    ))
                }),
            std::thread::Builder::new()
                .name("receipts".into())
                .spawn_scoped(scope, move || {
                    stopping(pipeline::receipts::run(
                        pctx,
                        receipt_pending,
                        receipts_rx,
                        receipts_pruned_tx,
                    ))
                }),
            std::thread::Builder::new()
                .name("prune".into())
                .spawn_scoped(scope, move || {
                    stopping(pipeline::prune::run(pctx, start.pruned, pruned_rx))
                }),
        ];
        let headers_end = join_stage(headers);
        let results: Vec<Result<(), StageError>> = handles.into_iter().map(join_stage).collect();
        pipeline_done.store(true, Ordering::Relaxed);
        let _ = reporter.join();
        (headers_end, results)
    });
    if let Some(error) = results.into_iter().find_map(Result::err) {
        return Err(stage_error(error));
    }
    headers_end.map_err(stage_error)
}

/// Wait for a stage thread; a thread that could not start or panicked is an error.
fn join_stage<T>(
    handle: std::io::Result<std::thread::ScopedJoinHandle<'_, Result<T, StageError>>>,
) -> Result<T, StageError> {
    match handle {
        Ok(handle) => handle
            .join()
            .unwrap_or_else(|_| Err(StageError::Inconsistent("a stage thread panicked".into()))),
        Err(e) => Err(StageError::Inconsistent(format!(
            "cannot start a stage thread: {e}"
        ))),
    }
}

/// Receivers of the inter-stage channels, kept to read their lengths.
struct Queues {
    senders: crossbeam_channel::Receiver<stages::block::ChainBlock>,
    execution: crossbeam_channel::Receiver<pipeline::SendersBlock>,
    commit: crossbeam_channel::Receiver<Arc<ExecutionRecord>>,
    receipts: crossbeam_channel::Receiver<Arc<ExecutionRecord>>,
}

/// How often a progress line is logged.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Until `done`: sample queue lengths and cache statistics into the metrics four times a
/// second, and log one progress line (block range, tx/s, Mgas/s, lag) every [`REPORT_EVERY`].
fn report_progress(pctx: &PipelineContext, queues: Queues, done: &AtomicBool) {
    let m = metrics();
    let mut since = Instant::now();
    let mut from_block = m.execution_height.get();
    let (mut from_txs, mut from_gas) = (m.txs_executed_total.get(), m.gas_used_total.get());
    // Also ends when loading stops, so that its clone of the senders queue no longer keeps a
    // headers stage blocked on a full queue.
    while !done.load(Ordering::Relaxed)
        && !pctx.stopping()
        && !pctx.loading_stopped.load(Ordering::Relaxed)
    {
        std::thread::sleep(Duration::from_millis(250));
        for (pool, len) in [
            ("senders", queues.senders.len()),
            ("execution", queues.execution.len()),
            ("commit", queues.commit.len()),
            ("receipts", queues.receipts.len()),
        ] {
            m.worker_pool_queue_length
                .with_label_values(&[pool])
                .set(len as i64);
            m.worker_pool_active_workers
                .with_label_values(&[pool])
                .set(i64::from(len > 0));
        }
        pctx.layers.with_cache(|cache| {
            m.state_accounts_cached.set(cache.accounts_cached() as i64);
            let (mut hits, mut misses) = (0, 0);
            for (name, counter) in [
                ("accounts", &cache.account_hits),
                ("storage", &cache.storage_hits),
                ("code", &cache.code_hits),
            ] {
                let (h, miss) = counter.get();
                m.cache_hits_total.with_label_values(&[name]).set(h as i64);
                m.cache_misses_total
                    .with_label_values(&[name])
                    .set(miss as i64);
                hits += h;
                misses += miss;
            }
            if hits + misses > 0 {
                m.state_cache_hit_rate
                    .set(hits as f64 / (hits + misses) as f64);
            }
        });
        let elapsed = since.elapsed();
        if elapsed >= REPORT_EVERY {
            let secs = elapsed.as_secs_f64();
            let (txs, gas, head) = (
                m.txs_executed_total.get(),
                m.gas_used_total.get(),
                m.execution_height.get(),
            );
            m.gas_per_second.set((gas - from_gas) as f64 / secs);
            if head > from_block {
                tracing::info!(
                    blocks = format!("{}..={head}", from_block + 1),
                    tx_per_sec = format!("{:.0}", (txs - from_txs) as f64 / secs),
                    mgas_per_sec = format!("{:.1}", (gas - from_gas) as f64 / secs / 1e6),
                    lag = m.execution_lag.get(),
                    "progress"
                );
            }
            (since, from_block, from_txs, from_gas) = (Instant::now(), head, txs, gas);
        }
    }
}
