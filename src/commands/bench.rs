//! `bench --chain DIR`: how fast the executor runs a chain (DIR/genesis.json + DIR/chain.rlp)
//! through a fresh store, next to the ceiling: the same blocks executed by the same block
//! executor over revm's in-memory database, in the same process and run.

use super::{CommandError, Context};
use crate::store::embedded::EmbeddedStore;
use alloy_hardforks::EthereumHardforks;
use alloy_primitives::{keccak256, U256};
use revm::bytecode::Bytecode;
use revm::database::{InMemoryDB, State};
use revm::state::AccountInfo;
use serde::Serialize;
use stages::block::decode_block;
use stages::execute::run_block;
use stages::genesis::GenesisBlock;
use stages::keys::Keys;
use stages::load::recover_senders;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

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
        }
    }
}

/// The bench result.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The store backend the executor ran on.
    pub backend: &'static str,
    /// `run` over the store: load, sender recovery, execution, verification, writes.
    pub executor: Throughput,
    /// The same blocks on revm's in-memory database (sender recovery and execution only).
    pub in_memory: Throughput,
    /// executor Mgas/s ÷ in-memory Mgas/s.
    pub ratio_to_in_memory: f64,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<26} {:>8} {:>8} {:>12} {:>9} {:>10}",
            "path", "blocks", "txs", "gas", "seconds", "Mgas/s"
        )?;
        for (name, t) in [
            (format!("executor ({})", self.backend), self.executor),
            ("revm in-memory".to_string(), self.in_memory),
        ] {
            writeln!(
                f,
                "{name:<26} {:>8} {:>8} {:>12} {:>9.3} {:>10.1}",
                t.blocks, t.transactions, t.gas, t.seconds, t.mgas_per_sec
            )?;
        }
        write!(f, "ratio to in-memory: {:.2}", self.ratio_to_in_memory)
    }
}

/// Run the bench for the chain in `dir`; the executor's store is a fresh embedded store in
/// `work_dir`.
pub fn run(
    config: &crate::config::Config,
    dir: &Path,
    work_dir: &Path,
) -> Result<BenchReport, CommandError> {
    let genesis_path = dir.join("genesis.json");
    let chain_path = dir.join("chain.rlp");
    std::fs::create_dir_all(work_dir)
        .map_err(|e| CommandError::Block(format!("{}: {e}", work_dir.display())))?;
    let store_path = work_dir.join(format!("bench-{}.redb", std::process::id()));
    let _ = std::fs::remove_file(&store_path);
    let mut bench_config = config.clone();
    bench_config.chain.name = "custom".into();
    bench_config.chain.network_id = 0;
    let ctx = Context {
        config: bench_config,
        store: Arc::new(EmbeddedStore::open(&store_path)?),
        keys: Keys::default(),
    };
    super::init::run(&ctx, &genesis_path)?;
    super::import::run(&ctx, &chain_path)?;
    let started = Instant::now();
    let outcome = super::run::run(&ctx, true)?;
    let executor = Throughput::new(
        outcome.blocks,
        outcome.transactions,
        outcome.gas,
        started.elapsed().as_secs_f64(),
    );
    let backend = ctx.store.backend_name();
    let record = ctx.checked_chain()?;
    let spec = Arc::new(super::run::chain_spec(&ctx, &record)?);
    drop(ctx);
    let _ = std::fs::remove_file(&store_path);

    let in_memory = in_memory_run(&spec, &genesis_path, &chain_path)?;
    Ok(BenchReport {
        backend,
        executor,
        in_memory,
        ratio_to_in_memory: executor.mgas_per_sec / in_memory.mgas_per_sec.max(f64::EPSILON),
    })
}

/// Execute the chain file over revm's in-memory database seeded with the genesis.
fn in_memory_run(
    spec: &Arc<stages::chain::ChainSpec>,
    genesis_path: &Path,
    chain_path: &Path,
) -> Result<Throughput, CommandError> {
    let genesis = GenesisBlock::load(genesis_path)?;
    let mut db = InMemoryDB::default();
    for (address, account) in &genesis.genesis.alloc {
        let code = account.code.clone().unwrap_or_default();
        let info = AccountInfo {
            balance: account.balance,
            nonce: account.nonce.unwrap_or_default(),
            code_hash: if code.is_empty() {
                stages::contract::EMPTY_CODE_HASH
            } else {
                keccak256(&code)
            },
            code: Some(Bytecode::new_raw(code)),
            ..AccountInfo::default()
        };
        db.insert_account_info(*address, info);
        for (slot, value) in account.storage.iter().flatten() {
            db.insert_account_storage(
                *address,
                U256::from_be_bytes(slot.0),
                U256::from_be_bytes(value.0),
            )
            .map_err(|e| CommandError::Block(e.to_string()))?;
        }
    }
    db.cache.block_hashes.insert(U256::ZERO, genesis.hash);
    let bytes = std::fs::read(chain_path)
        .map_err(|e| CommandError::Block(format!("{}: {e}", chain_path.display())))?;
    let mut blocks = Vec::new();
    let mut buf = bytes.as_slice();
    while !buf.is_empty() {
        blocks.push(decode_block("chain file", &mut buf)?);
    }
    let mut state = State::builder().with_database(db).build();
    let mut parent = genesis.header.clone();
    let (mut gas, mut transactions) = (0u64, 0u64);
    let started = Instant::now();
    for block in &blocks {
        let senders = recover_senders(block, spec.is_homestead_active_at_block(block.number()))
            .map_err(|e| CommandError::Block(e.to_string()))?;
        let output = run_block(spec, &mut state, block, &senders, &parent, None)
            .map_err(|e| CommandError::Block(e.to_string()))?;
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
