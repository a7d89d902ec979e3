//! `gen`: a synthetic workload chain for benchmarks. Writes `genesis.json` (every fork
//! through Prague active at genesis) and `chain.rlp` (blocks 1..=N in geth export format),
//! every block executed by the executor's own block execution as it is built, so every header
//! field (stateRoot included) is real. The same options give byte-identical files. With
//! `accounts`, the state is the size asked for (every account holding every genesis token) and
//! the mix is [`workload::routed`]'s; the genesis is then streamed ([`streamed_genesis`]). A
//! [`Fork`] gives a second branch: the same blocks up to a point, then another seed's.

pub mod asm;
pub mod builder;
pub mod contracts;
pub mod genesis;
pub mod layout;
pub mod streamed_genesis;
pub mod trie;
pub mod workload;
pub mod world;

use alloy_consensus::TxReceipt;
use alloy_eips::eip4895::Withdrawal;
use alloy_primitives::{keccak256, Address, Bytes, B256};
use builder::{build_block, BlockInput};
use evm::chain::ChainSpec;
use evm::genesis::{GenesisBlock, GenesisError};
use layout::Layout;
use primitives::block::encode_block;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use streamed_genesis::Start;
use workload::{Mix, Rng, Workload};
use world::World;

/// Why generation stopped.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// An output file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A contract did not assemble.
    #[error("contract assembly: {0}")]
    Asm(#[from] asm::AsmError),
    /// A key could not sign.
    #[error("signing: {0}")]
    Signing(String),
    /// The genesis written could not be read back.
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    /// The genesis could not be serialised.
    #[error("genesis JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A generated block did not execute or did not pass the executor's checks.
    #[error("generated block {block} failed: {reason}")]
    Execution {
        /// The block number.
        block: u64,
        /// What went wrong.
        reason: String,
    },
    /// The generator disagrees with itself (a bug).
    #[error("internal: {0}")]
    Internal(String),
    /// The options cannot produce a chain.
    #[error("invalid options: {0}")]
    Options(String),
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Blocks after genesis.
    pub blocks: u64,
    /// Transactions in each block.
    pub txs_per_block: usize,
    /// The directory for `genesis.json` and `chain.rlp`.
    pub out: PathBuf,
    /// The workload's seed.
    pub seed: u64,
    /// Funded accounts (each holding every genesis token) and the routed mix over them; `None`
    /// for the standard workload of [`workload::ACCOUNTS`] keys.
    pub accounts: Option<usize>,
}

/// A second branch of a generated chain: the same genesis and blocks `1..=at`, then blocks
/// whose transactions and per-block values come from another seed (real blocks, with real
/// state roots, for reorg tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fork {
    /// The last block shared with the chain of [`Options::seed`].
    pub at: u64,
    /// The seed of the blocks after it.
    pub seed: u64,
}

/// What was generated.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Blocks written.
    pub blocks: u64,
    /// Transactions in them.
    pub transactions: u64,
    /// Transactions whose receipt has status 0.
    pub failed: u64,
    /// Gas used by all blocks.
    pub gas: u64,
    /// The transaction mix.
    pub mix: Mix,
    /// Accounts in the final state.
    pub accounts: usize,
    /// The hot set's size, with `--accounts`.
    pub hot_accounts: Option<usize>,
    /// The last block's hash.
    pub head_hash: B256,
    /// The last block's state root.
    pub state_root: B256,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The genesis file written.
    pub genesis_path: PathBuf,
    /// The chain file written.
    pub chain_path: PathBuf,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.mix;
        writeln!(
            f,
            "generated {} blocks, {} transactions ({} failed), {} gas in {:.1} s",
            self.blocks, self.transactions, self.failed, self.gas, self.seconds
        )?;
        writeln!(
            f,
            "mix: {} ETH transfers, {} ERC-20 transfers, {} approvals, {} transferFroms, {} \
             swaps, {} deployments, {} storage fills; {} legacy; {} built to fail",
            m.eth_transfers,
            m.token_transfers,
            m.approvals,
            m.transfer_froms,
            m.swaps,
            m.creations,
            m.fills,
            m.legacy,
            m.designed_failures
        )?;
        if let Some(hot) = self.hot_accounts {
            writeln!(
                f,
                "access: {} swaps over two pairs; {} transactions touch accounts outside the hot \
                 set of {hot}, {} send to fresh addresses",
                m.two_hop_swaps, m.cold, m.fresh
            )?;
        }
        writeln!(
            f,
            "head {:#x}, state root {:#x}, {} accounts",
            self.head_hash, self.state_root, self.accounts
        )?;
        writeln!(f, "genesis: {}", self.genesis_path.display())?;
        write!(f, "chain:   {}", self.chain_path.display())
    }
}

/// Gas limit of every block: 300k per transaction (several times what the mix uses on
/// average) and at least 30M, so blocks stay under the EIP-1559 target and the base fee falls.
fn gas_limit(txs_per_block: usize) -> u64 {
    (txs_per_block as u64)
        .saturating_mul(300_000)
        .max(30_000_000)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> GenError + '_ {
    move |source| GenError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Write the standard genesis (pretty JSON of the whole [`alloy_genesis::Genesis`]) to `path`,
/// read it back exactly as `init` reads it, and return what the chain starts from: the world
/// holding exactly the allocation, checked against init's state root.
fn standard_genesis(
    path: &Path,
    layout: &Layout,
    keys: &[Address],
    gas_limit: u64,
) -> Result<Start, GenError> {
    let genesis_json = genesis::build(layout, keys, gas_limit)?;
    let mut genesis_bytes = serde_json::to_vec_pretty(&genesis_json)?;
    genesis_bytes.push(b'\n');
    std::fs::write(path, &genesis_bytes).map_err(io_error(path))?;
    let block = GenesisBlock::parse(&path.display().to_string(), &genesis_bytes)?;
    let mut world = World::default();
    for (address, account) in &block.genesis.alloc {
        world.insert_genesis_account(*address, account);
    }
    let root = world.state_root();
    if root != block.header.state_root {
        return Err(GenError::Internal(format!(
            "genesis state root {root:#x} differs from init's {:#x}",
            block.header.state_root
        )));
    }
    world.push_block_hash(block.hash);
    Ok(Start {
        genesis: block.genesis,
        header: block.header,
        hash: block.hash,
        world,
    })
}

/// Withdrawals of block `number`: two, to accounts, of up to 32 ether in gwei.
fn withdrawals(rng: &mut Rng, keys: &[Address], number: u64) -> Vec<Withdrawal> {
    (0..2)
        .map(|i| Withdrawal {
            index: number * 2 + i,
            validator_index: rng.below(1_000_000),
            address: keys[rng.below(keys.len() as u64) as usize],
            amount: rng.between(1, 32_000_000_000),
        })
        .collect()
}

/// A per-block value derived from the seed (beacon root, prevRandao).
fn derived(seed: u64, what: &str, number: u64) -> B256 {
    let mut material = what.as_bytes().to_vec();
    material.extend_from_slice(&seed.to_be_bytes());
    material.extend_from_slice(&number.to_be_bytes());
    keccak256(material)
}

/// Generate the chain `options` describe.
pub fn generate(options: &Options) -> Result<Summary, GenError> {
    generate_branch(options, None)
}

/// Generate the chain `options` describe, or with `fork` its second branch.
pub fn generate_branch(options: &Options, fork: Option<Fork>) -> Result<Summary, GenError> {
    if options.blocks == 0 || options.txs_per_block == 0 {
        return Err(GenError::Options(
            "--blocks and --txs-per-block must be at least 1".to_string(),
        ));
    }
    if let Some(fork) = fork {
        if fork.at >= options.blocks || fork.seed == options.seed {
            return Err(GenError::Options(format!(
                "--fork-at {} must be below --blocks {} and --fork-seed {} differ from --seed {}",
                fork.at, options.blocks, fork.seed, options.seed
            )));
        }
    }
    let started = Instant::now();
    let seed = options.seed;
    let (layout, mut workload) = match options.accounts {
        None => {
            let layout = Layout::standard();
            let workload = Workload::new(genesis::CHAIN_ID, seed, layout.clone())?;
            (layout, workload)
        }
        Some(0) => {
            return Err(GenError::Options(
                "--accounts must be at least 1".to_string(),
            ))
        }
        Some(accounts) => {
            let layout = Layout::routed();
            let workload =
                Workload::with_accounts(genesis::CHAIN_ID, seed, layout.clone(), accounts)?;
            (layout, workload)
        }
    };
    let keys: Vec<Address> = workload.addresses().collect();
    tracing::info!(
        accounts = keys.len(),
        seconds = started.elapsed().as_secs_f64(),
        "accounts derived"
    );
    std::fs::create_dir_all(&options.out).map_err(io_error(&options.out))?;
    let genesis_path = options.out.join("genesis.json");
    let gas_limit = gas_limit(options.txs_per_block);
    let Start {
        genesis,
        header: genesis_header,
        hash: genesis_hash,
        mut world,
    } = match workload.hot_accounts() {
        None => standard_genesis(&genesis_path, &layout, &keys, gas_limit)?,
        Some(hot) => streamed_genesis::write(&genesis_path, &layout, &keys, hot, gas_limit)?,
    };
    tracing::info!(
        accounts = keys.len(),
        seconds = started.elapsed().as_secs_f64(),
        "genesis written"
    );
    let spec = Arc::new(ChainSpec::from_genesis_config(
        &genesis.config,
        genesis.difficulty,
    ));

    let chain_path = options.out.join("chain.rlp");
    let file = std::fs::File::create(&chain_path).map_err(io_error(&chain_path))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut extras = Rng::new(seed, 2);
    let mut parent = genesis_header;
    let mut parent_hash = genesis_hash;
    let (mut transactions, mut failed, mut gas) = (0u64, 0u64, 0u64);
    let mut block_seed = seed;
    for number in 1..=options.blocks {
        if let Some(fork) = fork.filter(|fork| fork.at + 1 == number) {
            block_seed = fork.seed;
            workload.reseed(fork.seed);
            extras = Rng::new(fork.seed, 2);
        }
        let (txs, senders) = workload.block(options.txs_per_block)?;
        let input = BlockInput {
            transactions: txs,
            senders,
            withdrawals: withdrawals(&mut extras, &keys, number),
            beacon_root: derived(block_seed, "beacon root", number),
            prev_randao: derived(block_seed, "prevrandao", number),
            interval: genesis::BLOCK_TIME,
            beneficiary: Address::from_slice(&derived(seed, "coinbase", 0)[12..]),
            extra_data: Bytes::from_static(b"evm-executor gen"),
        };
        let built = build_block(&spec, &mut world, &parent, parent_hash, input)?;
        out.write_all(&encode_block(&built.block))
            .map_err(io_error(&chain_path))?;
        transactions += built.block.body.transactions.len() as u64;
        failed += built.receipts.iter().filter(|r| !r.status()).count() as u64;
        gas += built.block.header.gas_used;
        parent_hash = built.block.hash;
        parent = built.block.header;
        if number % 250 == 0 {
            tracing::info!(block = number, txs = transactions, gas, "generating");
        }
    }
    out.flush().map_err(io_error(&chain_path))?;
    Ok(Summary {
        blocks: options.blocks,
        transactions,
        failed,
        gas,
        mix: workload.mix,
        accounts: world.account_count(),
        hot_accounts: workload.hot_accounts(),
        head_hash: parent_hash,
        state_root: parent.state_root,
        seconds: started.elapsed().as_secs_f64(),
        genesis_path,
        chain_path,
    })
}
