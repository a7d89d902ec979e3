//! `bench --chain DIR`: how fast the whole pipeline runs a chain (DIR/genesis.json +
//! DIR/chain.rlp) through a fresh store of the configured backend, stage by stage, next to
//! the ceiling: the same blocks executed by the same block executor over revm's in-memory
//! database, in the same process and run, once before the pipeline and once after (the ratio
//! takes their mean). Also measures sender recovery on one thread and on two, side by side, and
//! reports the process's peak resident memory. With `--relay`, the pipeline reaches the server
//! through a TCP relay of the bench's own ([`relay`]), one network hop as on Kubernetes.

pub mod peak_rss;
pub mod relay;

use super::{CommandError, Context};
use crate::config::{Backend, Config};
use alloy_hardforks::EthereumHardforks;
use alloy_primitives::{keccak256, U256};
use evm::chain::ChainSpec;
use evm::execute::run_block;
use evm::genesis::GenesisBlock;
use pipeline::meter::StageTotals;
use primitives::block::{decode_block, ChainBlock};
use primitives::keys::Keys;
use primitives::load::recover_senders;
use primitives::stage_id::StageId;
use primitives::store::{Store, WriteBatch};
use revm::bytecode::Bytecode;
use revm::database::{InMemoryDB, State};
use revm::state::AccountInfo;
use serde::Serialize;
use std::net::ToSocketAddrs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Blocks whose senders the recovery comparison recovers (from the start of the chain).
const RECOVERY_SAMPLE_BLOCKS: usize = 250;
/// Keys deleted per batch when the bench's keys are removed from a shared server.
const CLEANUP_BATCH: usize = 10_000;
/// PINGs per measurement of the relay's round trip (each a median of this many).
const RELAY_PINGS: usize = 500;
/// Measurements of the direct and the relayed round trip, alternating (the median is taken).
const RELAY_ROUNDS: usize = 5;

/// Throughput of one way of executing the chain.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Throughput {
    /// Blocks executed.
    pub blocks: u64,
    /// Transactions executed.
    pub transactions: u64,
    /// Gas used.
    pub gas: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Millions of gas per second.
    pub mgas_per_sec: f64,
    /// Blocks per second.
    pub blocks_per_sec: f64,
    /// Transactions per second.
    pub tx_per_sec: f64,
}

impl Throughput {
    fn new(blocks: u64, transactions: u64, gas: u64, seconds: f64) -> Self {
        let seconds = seconds.max(f64::EPSILON);
        Self {
            blocks,
            transactions,
            gas,
            seconds,
            mgas_per_sec: gas as f64 / seconds / 1e6,
            blocks_per_sec: blocks as f64 / seconds,
            tx_per_sec: transactions as f64 / seconds,
        }
    }
}

/// One stage of the pipeline run.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    /// The stage.
    pub stage: &'static str,
    /// What it did, over the seconds it was busy (its capacity on its own).
    pub busy_throughput: Throughput,
    /// Share of the run's wall time it was working.
    pub busy_percent: f64,
    /// Seconds it waited for input (an empty channel; the syncer for headers).
    pub input_wait_seconds: f64,
    /// Seconds it waited for the next stage to take its output.
    pub output_wait_seconds: f64,
    /// Store round trips per block, all its threads together.
    pub round_trips_per_block: f64,
    /// The median of the round trips one block took, where the stage counts them per block
    /// (the execution thread's own: its batched prefetch and its misses).
    pub median_block_round_trips: Option<u32>,
}

/// Sender recovery on one thread and on two, over the same blocks.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RecoveryScaling {
    /// Transactions recovered per pass.
    pub transactions: u64,
    /// Transactions per second on one thread (best of two passes).
    pub one_thread_tx_per_sec: f64,
    /// Transactions per second on two threads (best of two passes).
    pub two_threads_tx_per_sec: f64,
    /// two ÷ one.
    pub speedup: f64,
}

/// The bench result.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The store backend the pipeline ran on.
    pub backend: &'static str,
    /// The whole pipeline over the store: load, sender recovery, execution, verification,
    /// records, state, receipts, pruning.
    pub pipeline: Throughput,
    /// Each stage of that run.
    pub stages: Vec<StageReport>,
    /// The same blocks on revm's in-memory database (sender recovery, execution and the
    /// header checks only), at the mean time of its two runs.
    pub in_memory: Throughput,
    /// The seconds of the in-memory run before the pipeline and of the one after.
    pub in_memory_runs_seconds: [f64; 2],
    /// pipeline Mgas/s ÷ in-memory Mgas/s.
    pub ratio_to_in_memory: f64,
    /// Sender recovery scaling.
    pub sender_recovery: RecoveryScaling,
    /// The bench process's peak resident set size (`VmHWM`) over the whole run, in bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Its peak while the pipeline ran, in bytes: the high-water mark reset as the pipeline
    /// started, once freed memory went back to the kernel (what the bench itself still holds,
    /// the decoded chain for the ceiling, counts too).
    pub pipeline_peak_rss_bytes: Option<u64>,
    /// Seconds `init` took to write the genesis into the fresh store.
    pub init_seconds: f64,
    /// The relay the pipeline ran through (`--relay`), with the round trip it adds.
    pub relay: Option<RelayReport>,
}

/// The relay between the pipeline and the server.
#[derive(Debug, Clone, Serialize)]
pub struct RelayReport {
    /// The server it forwarded to.
    pub upstream: String,
    /// The delay it held bytes for in each direction, in microseconds.
    pub one_way_delay_us: u64,
    /// Median PING round trip straight to the server, in milliseconds.
    pub direct_round_trip_ms: f64,
    /// Median PING round trip through the relay, in milliseconds.
    pub relayed_round_trip_ms: f64,
    /// relayed − direct: what the hop adds to every round trip.
    pub added_round_trip_ms: f64,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.pipeline;
        writeln!(
            f,
            "init (genesis into the store): {:.1} s",
            self.init_seconds
        )?;
        writeln!(
            f,
            "pipeline on {}{}: {} blocks, {} txs, {:.1} Mgas in {:.2} s: {:.1} blocks/s, {:.0} tx/s, {:.1} Mgas/s",
            self.backend,
            if self.relay.is_some() { " through the relay" } else { "" },
            p.blocks,
            p.transactions,
            p.gas as f64 / 1e6,
            p.seconds,
            p.blocks_per_sec,
            p.tx_per_sec,
            p.mgas_per_sec
        )?;
        writeln!(
            f,
            "{:<10} {:>10} {:>10} {:>9} {:>7} {:>13} {:>14} {:>9}",
            "stage",
            "blocks/s*",
            "tx/s*",
            "Mgas/s*",
            "busy %",
            "input wait s",
            "output wait s",
            "rt/block"
        )?;
        for s in &self.stages {
            let t = &s.busy_throughput;
            writeln!(
                f,
                "{:<10} {:>10.1} {:>10.0} {:>9.1} {:>7.1} {:>13.2} {:>14.2} {:>9.2}",
                s.stage,
                t.blocks_per_sec,
                t.tx_per_sec,
                t.mgas_per_sec,
                s.busy_percent,
                s.input_wait_seconds,
                s.output_wait_seconds,
                s.round_trips_per_block
            )?;
        }
        writeln!(f, "(* per busy second: what the stage could do on its own)")?;
        for s in &self.stages {
            if let Some(median) = s.median_block_round_trips {
                writeln!(
                    f,
                    "{}: median {median} store round trips per block on its own thread",
                    s.stage
                )?;
            }
        }
        let m = &self.in_memory;
        writeln!(
            f,
            "revm in-memory (ceiling): {:.2} s (mean of {:.2} s before and {:.2} s after the pipeline): {:.1} blocks/s, {:.0} tx/s, {:.1} Mgas/s",
            m.seconds,
            self.in_memory_runs_seconds[0],
            self.in_memory_runs_seconds[1],
            m.blocks_per_sec,
            m.tx_per_sec,
            m.mgas_per_sec
        )?;
        writeln!(f, "ratio to in-memory: {:.2}", self.ratio_to_in_memory)?;
        if let Some(relay) = &self.relay {
            writeln!(
                f,
                "relay to {} ({} µs each way): PING round trip {:.3} ms direct, {:.3} ms \
                 through the relay: +{:.3} ms per round trip",
                relay.upstream,
                relay.one_way_delay_us,
                relay.direct_round_trip_ms,
                relay.relayed_round_trip_ms,
                relay.added_round_trip_ms
            )?;
        }
        let mib = |bytes: Option<u64>| {
            bytes.map_or("n/a".to_string(), |b| {
                format!("{:.0} MiB", b as f64 / 1048576.0)
            })
        };
        writeln!(
            f,
            "peak RSS: {} over the whole bench, {} while the pipeline ran",
            mib(self.peak_rss_bytes),
            mib(self.pipeline_peak_rss_bytes)
        )?;
        let r = &self.sender_recovery;
        write!(
            f,
            "sender recovery ({} txs): 1 thread {:.0} tx/s, 2 threads {:.0} tx/s, speedup {:.2}",
            r.transactions, r.one_thread_tx_per_sec, r.two_threads_tx_per_sec, r.speedup
        )
    }
}

/// Run the bench for the chain in `dir` on a fresh store of the configured backend: a new
/// embedded store in `work_dir`, or keys under a prefix of their own on the configured
/// server (removed afterwards), reached through a [`relay::Relay`] holding bytes for the
/// given one-way delay when `relay` is set.
pub fn run(
    config: &Config,
    dir: &Path,
    work_dir: &Path,
    relay: Option<Duration>,
) -> Result<BenchReport, CommandError> {
    let genesis_path = dir.join("genesis.json");
    let chain_path = dir.join("chain.rlp");
    let mut bench_config = config.clone();
    bench_config.chain.name = "custom".into();
    bench_config.chain.network_id = 0;
    // The daemon's own progress log and metrics are not wanted here.
    bench_config.metrics.enabled = false;
    bench_config.leader.enabled = false;
    let relay = relay
        .map(|delay| start_relay(&mut bench_config, delay))
        .transpose()?;
    let fresh = FreshStore::open(&mut bench_config, work_dir)?;
    let ctx = fresh.context(&bench_config);
    let init_started = Instant::now();
    super::init::run(&ctx, &genesis_path)?;
    let init_seconds = init_started.elapsed().as_secs_f64();
    let record = ctx.checked_chain()?;
    let spec = Arc::new(super::run::chain_spec(&ctx, &record)?);
    let blocks = read_chain(&chain_path)?;
    // The ceiling runs once before and once after the pipeline, and the ratio takes their
    // mean: on a shared machine the speed drifts, and bracketing cancels a steady drift.
    let before = in_memory_run(&spec, &genesis_path, &blocks)?;
    super::import::run(&ctx, &chain_path)?;
    // The daemon's `run` opens the store `init` and `import` wrote in processes of their own:
    // the pipeline starts without their caches.
    drop(ctx);
    let fresh = fresh.reopen(&bench_config)?;
    let ctx = fresh.context(&bench_config);
    let peak_before_pipeline = peak_rss::peak();
    let peak_reset = peak_rss::reset_peak();
    let started = Instant::now();
    let outcome = super::run::run(&ctx, true)?;
    let seconds = started.elapsed().as_secs_f64();
    let pipeline_peak_rss_bytes = peak_reset.then(peak_rss::peak).flatten();
    let pipeline = Throughput::new(outcome.blocks, outcome.transactions, outcome.gas, seconds);
    let backend = ctx.store.backend_name();
    drop(ctx);
    fresh.remove()?;
    let relay = relay.map(|(relay, report)| {
        drop(relay);
        report
    });
    let after = in_memory_run(&spec, &genesis_path, &blocks)?;
    let in_memory = Throughput::new(
        after.blocks,
        after.transactions,
        after.gas,
        (before.seconds + after.seconds) / 2.0,
    );
    let sender_recovery = recovery_scaling(&spec, &blocks)?;
    Ok(BenchReport {
        backend,
        pipeline,
        stages: outcome
            .stages
            .iter()
            .map(|(stage, totals)| stage_report(*stage, totals, seconds))
            .collect(),
        in_memory,
        in_memory_runs_seconds: [before.seconds, after.seconds],
        ratio_to_in_memory: pipeline.mgas_per_sec / in_memory.mgas_per_sec.max(f64::EPSILON),
        sender_recovery,
        peak_rss_bytes: peak_before_pipeline.max(peak_rss::peak()),
        pipeline_peak_rss_bytes,
        init_seconds,
        relay,
    })
}

/// Start a relay to the configured server, point `config` at it, and measure the round trip it
/// adds: PING straight to the server and through the relay, alternating.
fn start_relay(
    config: &mut Config,
    delay: Duration,
) -> Result<(relay::Relay, RelayReport), CommandError> {
    let addr = config.storage.pika.addr.clone();
    if config.storage.backend != Backend::Pika {
        return Err(CommandError::Relay(
            "bench --relay needs storage.backend = \"pika\"".into(),
        ));
    }
    let failed = |what: &str, e: std::io::Error| CommandError::Relay(format!("{what} {addr}: {e}"));
    let upstream = addr
        .to_socket_addrs()
        .map_err(|e| failed("storage.pika.addr", e))?
        .next()
        .ok_or_else(|| CommandError::Relay(format!("storage.pika.addr {addr} has no address")))?;
    let relay = relay::Relay::start(upstream, delay).map_err(|e| failed("relay to", e))?;
    let (mut direct, mut relayed) = (Vec::new(), Vec::new());
    for _ in 0..RELAY_ROUNDS {
        let ping = |to| relay::ping_round_trip(to, RELAY_PINGS).map_err(|e| failed("PING", e));
        direct.push(ping(upstream)?.as_secs_f64() * 1e3);
        relayed.push(ping(relay.addr())?.as_secs_f64() * 1e3);
    }
    let median = |mut times: Vec<f64>| {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let (direct, relayed) = (median(direct), median(relayed));
    config.storage.pika.addr = relay.addr().to_string();
    let report = RelayReport {
        upstream: addr,
        one_way_delay_us: delay.as_micros() as u64,
        direct_round_trip_ms: direct,
        relayed_round_trip_ms: relayed,
        added_round_trip_ms: relayed - direct,
    };
    Ok((relay, report))
}

/// One stage's row: its rates per busy second; busy = wall − waits.
fn stage_report(stage: StageId, totals: &StageTotals, wall_seconds: f64) -> StageReport {
    let waited = totals.input_wait_seconds + totals.output_wait_seconds;
    let busy = (wall_seconds - waited).max(0.0);
    StageReport {
        stage: stage.as_str(),
        busy_throughput: Throughput::new(totals.blocks, totals.transactions, totals.gas, busy),
        busy_percent: 100.0 * busy / wall_seconds.max(f64::EPSILON),
        input_wait_seconds: totals.input_wait_seconds,
        output_wait_seconds: totals.output_wait_seconds,
        round_trips_per_block: totals.round_trips as f64 / totals.blocks.max(1) as f64,
        median_block_round_trips: totals.median_block_round_trips,
    }
}

/// A store no one else uses, for one bench run.
struct FreshStore {
    store: Arc<dyn Store>,
    keys: Keys,
    /// The embedded store's file, or `None` on a server.
    file: Option<std::path::PathBuf>,
}

impl FreshStore {
    /// A store of the configured backend under a name of its own: on the embedded store a
    /// new file in `work_dir` (which `config` then names), on a server a key prefix of its own.
    fn open(config: &mut Config, work_dir: &Path) -> Result<Self, CommandError> {
        let run_id = format!(
            "bench-{}-{}",
            std::process::id(),
            primitives::clock::unix_now()
        );
        match config.storage.backend {
            Backend::Embedded => {
                std::fs::create_dir_all(work_dir).map_err(|e| CommandError::io(work_dir, e))?;
                let file = work_dir.join(format!("{run_id}.redb"));
                config.storage.embedded.path = file.clone();
                Ok(Self {
                    store: crate::store::open(&config.storage)?,
                    keys: Keys::default(),
                    file: Some(file),
                })
            }
            Backend::Pika => Ok(Self {
                store: crate::store::open(&config.storage)?,
                keys: Keys::new(format!("{}{run_id}:", config.storage.key_prefix)),
                file: None,
            }),
        }
    }

    /// A command context on this store.
    fn context(&self, config: &Config) -> Context {
        Context {
            config: config.clone(),
            store: Arc::clone(&self.store),
            keys: self.keys.clone(),
        }
    }

    /// Close the store and open it again (every context on it dropped first: the embedded
    /// file takes one handle at a time). The memory it freed goes back to the kernel with the
    /// peak reset that follows.
    fn reopen(self, config: &Config) -> Result<Self, CommandError> {
        let Self { store, keys, file } = self;
        drop(store);
        Ok(Self {
            store: crate::store::open(&config.storage)?,
            keys,
            file,
        })
    }

    /// Delete what the bench wrote.
    fn remove(self) -> Result<(), CommandError> {
        if let Some(file) = &self.file {
            drop(self.store);
            return std::fs::remove_file(file).map_err(|e| CommandError::io(file, e));
        }
        let keys = self.store.scan_prefix(self.keys.prefix())?;
        for chunk in keys.chunks(CLEANUP_BATCH) {
            let mut batch = WriteBatch::new();
            for key in chunk {
                batch.delete(key.clone());
            }
            self.store.write(&batch)?;
        }
        Ok(())
    }
}

/// Every block of a chain file.
fn read_chain(chain_path: &Path) -> Result<Vec<ChainBlock>, CommandError> {
    let bytes = std::fs::read(chain_path).map_err(|e| CommandError::io(chain_path, e))?;
    let mut blocks = Vec::new();
    let mut buf = bytes.as_slice();
    while !buf.is_empty() {
        blocks.push(decode_block("chain file", &mut buf)?);
    }
    Ok(blocks)
}

/// Execute `blocks` over revm's in-memory database seeded with the genesis.
fn in_memory_run(
    spec: &Arc<ChainSpec>,
    genesis_path: &Path,
    blocks: &[ChainBlock],
) -> Result<Throughput, CommandError> {
    let genesis = GenesisBlock::load(genesis_path)?;
    let mut db = InMemoryDB::default();
    for (address, account) in &genesis.genesis.alloc {
        let code = account.code.clone().unwrap_or_default();
        let info = AccountInfo {
            balance: account.balance,
            nonce: account.nonce.unwrap_or_default(),
            code_hash: if code.is_empty() {
                primitives::contract::EMPTY_CODE_HASH
            } else {
                keccak256(&code)
            },
            code: Some(Bytecode::new_raw(code)),
            ..AccountInfo::default()
        };
        db.insert_account_info(*address, info);
        for (slot, value) in account.storage.iter().flatten() {
            // The in-memory database cannot fail.
            let Ok(()) = db.insert_account_storage(
                *address,
                U256::from_be_bytes(slot.0),
                U256::from_be_bytes(value.0),
            );
        }
    }
    db.cache.block_hashes.insert(U256::ZERO, genesis.hash);
    let mut state = State::builder().with_database(db).build();
    let mut parent = genesis.header.clone();
    let (mut gas, mut transactions) = (0u64, 0u64);
    let started = Instant::now();
    for block in blocks {
        let senders = recover_senders(block, spec.is_homestead_active_at_block(block.number()))?;
        let output = run_block(spec, &mut state, block, &senders, &parent, None, None)?;
        state
            .database
            .cache
            .block_hashes
            .insert(U256::from(block.number()), block.hash);
        gas += output.gas_used;
        transactions += block.body.transactions.len() as u64;
        parent = block.header.clone();
    }
    Ok(Throughput::new(
        blocks.len() as u64,
        transactions,
        gas,
        started.elapsed().as_secs_f64(),
    ))
}

/// Recover the senders of the first blocks on a one-thread pool and on a two-thread pool,
/// alternating, best of two passes each.
fn recovery_scaling(
    spec: &ChainSpec,
    blocks: &[ChainBlock],
) -> Result<RecoveryScaling, CommandError> {
    let sample = &blocks[..blocks.len().min(RECOVERY_SAMPLE_BLOCKS)];
    let transactions: u64 = sample
        .iter()
        .map(|b| b.body.transactions.len() as u64)
        .sum();
    let pool = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| CommandError::ThreadPool(e.to_string()))
    };
    let (one, two) = (pool(1)?, pool(2)?);
    let pass = |pool: &rayon::ThreadPool| -> Result<f64, CommandError> {
        let started = Instant::now();
        for block in sample {
            let homestead = spec.is_homestead_active_at_block(block.number());
            pool.install(|| recover_senders(block, homestead))?;
        }
        Ok(transactions as f64 / started.elapsed().as_secs_f64().max(f64::EPSILON))
    };
    let (mut best_one, mut best_two) = (0f64, 0f64);
    for _ in 0..2 {
        best_one = best_one.max(pass(&one)?);
        best_two = best_two.max(pass(&two)?);
    }
    Ok(RecoveryScaling {
        transactions,
        one_thread_tx_per_sec: best_one,
        two_threads_tx_per_sec: best_two,
        speedup: best_two / best_one.max(f64::EPSILON),
    })
}
