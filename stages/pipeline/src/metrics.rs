//! Every Prometheus metric the executor exports, defined in one place and registered in one
//! registry. Names follow the original service (`evm_executor_*`) plus what an operator of a
//! staged pipeline needs (per-stage checkpoints, items, durations; reorgs; prune; leader).

use prometheus::{
    CounterVec, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};
use std::sync::OnceLock;

/// The executor's metrics, each field named as its metric without the `evm_executor_` prefix
/// (`tests/it/deployments.rs` reads the field names to check the dashboard shows them all).
pub struct Metrics {
    /// The registry `/metrics` serves.
    pub registry: Registry,
    /// Last block whose state is completely in `st:latest`.
    pub execution_height: IntGauge,
    /// `idx:sync:progress` as last read.
    pub sync_height: IntGauge,
    /// Synced minus executed blocks.
    pub execution_lag: IntGauge,
    /// Transactions executed (committed).
    pub txs_executed_total: IntCounter,
    /// Gas used by committed blocks.
    pub gas_used_total: IntCounter,
    /// Accounts in the LRU cache.
    pub state_accounts_cached: IntGauge,
    /// Hit rate of the state caches (accounts, storage, code together).
    pub state_cache_hit_rate: Gauge,
    /// Hits per cache layer.
    pub cache_hits_total: IntGaugeVec,
    /// Misses per cache layer.
    pub cache_misses_total: IntGaugeVec,
    /// Time to write one commit batch (the state of up to `executor.batch_size` blocks).
    pub state_commit_latency_seconds: Histogram,
    /// Threads working per pool (one pool per stage).
    pub worker_pool_active_workers: IntGaugeVec,
    /// Blocks waiting in each stage's input channel.
    pub worker_pool_queue_length: IntGaugeVec,
    /// Each stage's checkpoint.
    pub stage_checkpoint: IntGaugeVec,
    /// Blocks each stage finished.
    pub stage_blocks_total: IntCounterVec,
    /// Time each stage spends on one block.
    pub stage_duration_seconds: HistogramVec,
    /// Time each stage spent waiting, on its input (`on="input"`) or for the next stage to
    /// take its output (`on="output"`).
    pub stage_wait_seconds_total: CounterVec,
    /// Time to execute one block (EVM only).
    pub block_execution_seconds: Histogram,
    /// Gas per second over the last progress interval.
    pub gas_per_second: Gauge,
    /// Blocks rejected as invalid.
    pub invalid_blocks_total: IntCounter,
    /// Reorgs handled.
    pub reorgs_total: IntCounter,
    /// Blocks unwound by the last reorg.
    pub unwind_depth: IntGauge,
    /// Blocks whose history and record were pruned.
    pub pruned_blocks_total: IntCounter,
    /// Store errors seen (each retry counts).
    pub store_errors_total: IntCounter,
    /// Round trips to the store (one per command or pipeline sent).
    pub store_round_trips_total: IntCounter,
    /// 1 while this replica holds the leader lease.
    pub leader: IntGauge,
    /// 1 while the store answers.
    pub store_up: IntGauge,
    /// 1 while the merkle stage checks state roots; 0 for a store executing unverified.
    pub state_verified: IntGauge,
    /// Store round trips the execution thread made per block (prefetch and misses).
    pub execution_round_trips_per_block: Histogram,
    /// From a block first seen synced (at the head) to its state and receipts written.
    pub head_latency_seconds: Histogram,
    /// Round trips to each node of the store (label `node`, `host:port`): one per command or
    /// pipeline sent to it.
    pub store_node_round_trips_total: IntCounterVec,
    /// Failures per node of the store (label `node`): connections lost or refused, timeouts,
    /// error replies (cluster redirections included).
    pub store_node_errors_total: IntCounterVec,
}

fn name(short: &str) -> String {
    format!("evm_executor_{short}")
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let int_gauge = |n: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
        let m = IntGauge::new(name(n), help)?;
        registry.register(Box::new(m.clone()))?;
        Ok(m)
    };
    let int_counter = |n: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
        let m = IntCounter::new(name(n), help)?;
        registry.register(Box::new(m.clone()))?;
        Ok(m)
    };
    let gauge = |n: &str, help: &str| -> Result<Gauge, prometheus::Error> {
        let m = Gauge::new(name(n), help)?;
        registry.register(Box::new(m.clone()))?;
        Ok(m)
    };
    let int_gauge_vec =
        |n: &str, help: &str, label: &str| -> Result<IntGaugeVec, prometheus::Error> {
            let m = IntGaugeVec::new(Opts::new(name(n), help), &[label])?;
            registry.register(Box::new(m.clone()))?;
            Ok(m)
        };
    let histogram_with = |n: &str, help: &str, buckets: Vec<f64>| {
        let m = Histogram::with_opts(HistogramOpts::new(name(n), help).buckets(buckets))?;
        registry.register(Box::new(m.clone()))?;
        Ok::<_, prometheus::Error>(m)
    };
    let histogram = |n: &str, help: &str| -> Result<Histogram, prometheus::Error> {
        histogram_with(n, help, prometheus::exponential_buckets(0.0005, 2.0, 16)?)
    };
    let stage_blocks_total = IntCounterVec::new(
        Opts::new(name("stage_blocks_total"), "Blocks each stage finished"),
        &["stage"],
    )?;
    registry.register(Box::new(stage_blocks_total.clone()))?;
    let stage_duration_seconds = HistogramVec::new(
        HistogramOpts::new(
            name("stage_duration_seconds"),
            "Time a stage spends on one block",
        )
        .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16)?),
        &["stage"],
    )?;
    registry.register(Box::new(stage_duration_seconds.clone()))?;
    let stage_wait_seconds_total = CounterVec::new(
        Opts::new(
            name("stage_wait_seconds_total"),
            "Seconds each stage waited on its input or on the next stage",
        ),
        &["stage", "on"],
    )?;
    registry.register(Box::new(stage_wait_seconds_total.clone()))?;
    let int_counter_vec =
        |n: &str, help: &str, label: &str| -> Result<IntCounterVec, prometheus::Error> {
            let m = IntCounterVec::new(Opts::new(name(n), help), &[label])?;
            registry.register(Box::new(m.clone()))?;
            Ok(m)
        };
    Ok(Metrics {
        execution_height: int_gauge(
            "execution_height",
            "Last block whose state is completely in st:latest",
        )?,
        sync_height: int_gauge("sync_height", "the syncer's progress as last read")?,
        execution_lag: int_gauge("execution_lag", "Synced minus executed blocks")?,
        txs_executed_total: int_counter("txs_executed_total", "Transactions executed")?,
        gas_used_total: int_counter("gas_used_total", "Gas used by executed blocks")?,
        state_accounts_cached: int_gauge("state_accounts_cached", "Accounts in the LRU cache")?,
        state_cache_hit_rate: gauge("state_cache_hit_rate", "Hit rate of the state caches")?,
        cache_hits_total: int_gauge_vec("cache_hits_total", "Cache hits per layer", "cache")?,
        cache_misses_total: int_gauge_vec("cache_misses_total", "Cache misses per layer", "cache")?,
        state_commit_latency_seconds: histogram(
            "state_commit_latency_seconds",
            "Time to write one commit batch (the state changes of the blocks waiting, up to executor.batch_size)",
        )?,
        worker_pool_active_workers: int_gauge_vec(
            "worker_pool_active_workers",
            "Threads working per pool",
            "pool",
        )?,
        worker_pool_queue_length: int_gauge_vec(
            "worker_pool_queue_length",
            "Blocks waiting in a stage's input channel",
            "pool",
        )?,
        stage_checkpoint: int_gauge_vec(
            "stage_checkpoint",
            "Each stage's checkpoint block",
            "stage",
        )?,
        stage_blocks_total,
        stage_duration_seconds,
        stage_wait_seconds_total,
        block_execution_seconds: histogram(
            "block_execution_seconds",
            "Time to execute and verify one block",
        )?,
        gas_per_second: gauge("gas_per_second", "Gas per second over the last interval")?,
        invalid_blocks_total: int_counter("invalid_blocks_total", "Blocks rejected as invalid")?,
        reorgs_total: int_counter("reorgs_total", "Reorgs handled")?,
        unwind_depth: int_gauge("unwind_depth", "Blocks unwound by the last reorg")?,
        pruned_blocks_total: int_counter(
            "pruned_blocks_total",
            "Blocks whose history and record were pruned",
        )?,
        store_round_trips_total: int_counter(
            "store_round_trips_total",
            "Round trips to the store (commands or pipelines sent)",
        )?,
        store_errors_total: int_counter(
            "store_errors_total",
            "Store errors seen, each retry counted",
        )?,
        leader: int_gauge("leader", "1 while this replica holds the leader lease")?,
        execution_round_trips_per_block: histogram_with(
            "execution_round_trips_per_block",
            "store round trips the execution thread made per block (batched prefetch and misses)",
            vec![0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 10.0, 20.0, 50.0, 100.0],
        )?,
        head_latency_seconds: histogram_with(
            "head_latency_seconds",
            "from a block first seen in the syncer's progress (at the head) to its state and \
             receipts written",
            prometheus::exponential_buckets(0.005, 1.5, 16)?,
        )?,
        state_verified: int_gauge(
            "state_verified",
            "1 while state roots are checked against the headers; 0 when the state is unverified",
        )?,
        store_up: int_gauge("store_up", "1 while the store answers")?,
        store_node_round_trips_total: int_counter_vec(
            "store_node_round_trips_total",
            "Round trips to each store node (commands or pipelines sent)",
            "node",
        )?,
        store_node_errors_total: int_counter_vec(
            "store_node_errors_total",
            "Failures per store node: lost or refused connections, timeouts, error replies",
            "node",
        )?,
        registry,
    })
}

/// The process's metrics (created on first use).
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    // The definitions above are static and distinct: building them cannot fail at run time
    // (a failure would be a programming error caught by the unit test below).
    METRICS
        .get_or_init(|| build().unwrap_or_else(|e| panic!("metric definitions are invalid: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn metric_definitions_register() {
        assert!(super::build().is_ok());
    }
}
