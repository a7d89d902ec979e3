//! Criterion benchmarks of the pipeline's hot pieces on a generated workload (200 transactions
//! per block: transfers, ERC-20 calls, swaps, deployments, storage fills): decoding a block,
//! recovering its senders on one and on two threads, executing it over the store-backed state
//! layers, encoding its execution record (compressed) and reading back what pruning needs of
//! it, and committing the state writes of a batch of blocks to the embedded store.
//!
//! `cargo bench --bench hot_paths`; `cargo test --benches` runs each once as a smoke test.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use evm::chain::ChainSpec;
use evm_executor::commands::{self, Context};
use evm_executor::config::Config;
use evm_executor::gen::{generate, Options};
use evm_executor::store::embedded::EmbeddedStore;
use pipeline::stage::{Control, Shared, Stage, StageStore};
use pipeline::stages::commit::{CommitSettings, CommitStage};
use pipeline::stages::merkle::VerifiedBatch;
use pipeline::state::execution::ExecutionState;
use pipeline::state::{cache::CacheSizes, StateLayers};
use primitives::block::{decode_block, ChainBlock};
use primitives::keys::Keys;
use primitives::load::recover_senders;
use primitives::record::{ExecutionRecord, RecordSummary};
use primitives::value::ContractRead;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Blocks generated; the benchmarks use the last one, executed on the state after the others.
const BLOCKS: u64 = 12;
const TXS_PER_BLOCK: usize = 200;

/// A generated chain, executed by the daemon up to the block before the last, on an embedded
/// store in a temp dir.
struct Workload {
    _dir: tempfile::TempDir,
    ctx: Context,
    spec: Arc<ChainSpec>,
    /// Every block with the bytes it was decoded from.
    blocks: Vec<(Vec<u8>, ChainBlock)>,
}

impl Workload {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let chain_dir = dir.path().join("chain");
        generate(&Options {
            blocks: BLOCKS,
            txs_per_block: TXS_PER_BLOCK,
            out: chain_dir.clone(),
            seed: 7,
            accounts: None,
        })
        .expect("generate the workload");
        let bytes = std::fs::read(chain_dir.join("chain.rlp")).expect("read chain.rlp");
        let mut rest = bytes.as_slice();
        let mut blocks = Vec::new();
        while !rest.is_empty() {
            let before = rest;
            let block = decode_block("chain.rlp", &mut rest).expect("decode a generated block");
            let encoded = before[..before.len() - rest.len()].to_vec();
            blocks.push((encoded, block));
        }
        // All but the last block go through the daemon.
        let head_path = dir.path().join("head.rlp");
        let head: Vec<u8> = blocks[..blocks.len() - 1]
            .iter()
            .flat_map(|(encoded, _)| encoded.iter().copied())
            .collect();
        std::fs::write(&head_path, head).expect("write head.rlp");
        let mut config = Config::default();
        config.chain.name = "custom".into();
        config.metrics.enabled = false;
        let store = EmbeddedStore::open(&dir.path().join("store.redb")).expect("open store");
        let ctx = Context {
            config,
            store: Arc::new(store),
            keys: Keys::default(),
        };
        commands::init::run(&ctx, &chain_dir.join("genesis.json")).expect("init");
        commands::import::run(&ctx, &head_path).expect("import");
        commands::run::run(&ctx, true).expect("run to the block before the last");
        let chain = ctx.checked_chain().expect("chain record");
        let spec = Arc::new(commands::run::chain_spec(&ctx, &chain).expect("chain spec"));
        Self {
            _dir: dir,
            ctx,
            spec,
            blocks,
        }
    }

    fn last(&self) -> &(Vec<u8>, ChainBlock) {
        &self.blocks[self.blocks.len() - 1]
    }

    fn layers(&self) -> StateLayers {
        StateLayers::new(
            Arc::clone(&self.ctx.store),
            self.ctx.keys.clone(),
            CacheSizes::default(),
        )
    }

    /// Execute the last block on a fresh revm state over `layers`, then take its changes out
    /// of their overlay again (as the commit stage would), so it can run again.
    fn execute_last(&self, layers: &StateLayers) -> ExecutionRecord {
        let (_, block) = self.last();
        let parent = &self.blocks[self.blocks.len() - 2].1.header;
        let senders = recover_senders(block, true).expect("recover senders");
        let record = ExecutionState::new(layers, CacheSizes::default())
            .execute(&self.spec, block, &senders, parent)
            .expect("execute the last block");
        layers.release(record.number);
        record
    }

    /// The execution records the daemon stored for blocks `numbers`.
    fn stored_records(&self, numbers: std::ops::RangeInclusive<u64>) -> Vec<ExecutionRecord> {
        numbers
            .map(|n| {
                self.ctx
                    .store
                    .read(&self.ctx.keys.record(n))
                    .expect("read a record")
                    .expect("record present")
            })
            .collect()
    }
}

fn benches(c: &mut Criterion) {
    let workload = Workload::new();
    let (encoded, block) = workload.last();

    c.bench_function("decode_block/200_txs", |b| {
        b.iter(|| decode_block("bench", &mut encoded.as_slice()).expect("decode"))
    });

    let mut recovery = c.benchmark_group("recover_senders/200_txs");
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("rayon pool");
        recovery.bench_function(format!("{threads}_threads"), |b| {
            b.iter(|| pool.install(|| recover_senders(block, true).expect("recover")))
        });
    }
    recovery.finish();

    // Warm caches, as in the daemon after its first blocks.
    let layers = workload.layers();
    workload.execute_last(&layers);
    c.bench_function("execute_block/200_txs_warm_layers", |b| {
        b.iter(|| workload.execute_last(&layers))
    });

    let record = workload.execute_last(&layers);
    c.bench_function("encode_record/200_txs", |b| b.iter(|| record.encode()));
    let stored = record.encode();
    c.bench_function("decode_record_summary/200_txs", |b| {
        b.iter(|| RecordSummary::decode(&stored).expect("a record's summary"))
    });

    let records: Vec<Arc<ExecutionRecord>> = workload
        .stored_records(BLOCKS - 8..=BLOCKS - 1)
        .into_iter()
        .map(Arc::new)
        .collect();
    let commit_dir = tempfile::tempdir().expect("temp dir");
    let commit_store: Arc<EmbeddedStore> =
        Arc::new(EmbeddedStore::open(&commit_dir.path().join("commit.redb")).expect("store"));
    let shared = Shared {
        store: StageStore::new(commit_store.clone(), Keys::default(), None),
        spec: Arc::clone(&workload.spec),
        layers: Arc::new(StateLayers::new(
            commit_store,
            Keys::default(),
            CacheSizes::default(),
        )),
        control: Control::new(Arc::new(AtomicBool::new(false))),
        meters: Default::default(),
    };
    let batch = vec![Arc::new(VerifiedBatch::new(records, None))];
    c.bench_function("commit_batch/8_blocks_embedded", |b| {
        b.iter_batched(
            || {
                let settings = CommitSettings {
                    history_ttl: Duration::from_secs(3600),
                };
                (CommitStage::new(settings, 0, 0), batch.clone())
            },
            |(mut commit, batch)| commit.execute(&shared, batch).expect("commit the batch"),
            BatchSize::SmallInput,
        )
    });
}

criterion_group! {
    name = hot_paths;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = benches
}
criterion_main!(hot_paths);
