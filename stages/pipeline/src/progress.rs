//! The progress sampler: while the pipeline runs, queue lengths and cache statistics go into
//! the metrics four times a second, and one progress line (block range, tx/s, Mgas/s, lag)
//! goes to the log every [`REPORT_EVERY`].

use crate::metrics::metrics;
use crate::stage::Shared;
use crate::stages::merkle::VerifiedBatch;
use crate::stages::senders::SendersBlock;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use primitives::block::ChainBlock;
use primitives::record::ExecutionRecord;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Receivers of the inter-stage channels, kept to read their lengths.
pub struct Queues {
    /// Into the senders stage.
    pub senders: Receiver<ChainBlock>,
    /// Into the execution stage.
    pub execution: Receiver<SendersBlock>,
    /// Into the merkle stage.
    pub merkle: Receiver<Arc<ExecutionRecord>>,
    /// Into the commit stage.
    pub commit: Receiver<Arc<VerifiedBatch>>,
    /// Into the receipts stage.
    pub receipts: Receiver<Arc<VerifiedBatch>>,
}

/// How often queue lengths and cache statistics are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// How often a progress line is logged.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Until `done` disconnects: sample queue lengths and cache statistics into the metrics every
/// [`SAMPLE_EVERY`], and log one progress line (block range, tx/s, Mgas/s, lag) every
/// [`REPORT_EVERY`].
/// The receivers are dropped as soon as the pipeline stops, so a stage blocked on a full
/// channel sees the disconnect instead of waiting for ever.
pub fn report_progress(shared: &Shared, queues: Queues, done: &Receiver<()>) {
    let m = metrics();
    let mut since = Instant::now();
    let mut from_block = m.execution_height.get();
    let (mut from_txs, mut from_gas) = (m.txs_executed_total.get(), m.gas_used_total.get());
    // Also ends when loading stops, so that its clone of the senders queue no longer keeps a
    // headers stage blocked on a full queue.
    while !shared.control.stopping() && !shared.control.loading_stopped() {
        // Ends at once when the pipeline is done (the sender dropped), not a sample later.
        if done.recv_timeout(SAMPLE_EVERY) != Err(RecvTimeoutError::Timeout) {
            break;
        }
        for (pool, len) in [
            ("senders", queues.senders.len()),
            ("execution", queues.execution.len()),
            ("merkle", queues.merkle.len()),
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
        shared.layers.with_cache(|cache| {
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
