//! `init`: the genesis state into `st:latest:*` and `st:code:*`, the genesis header into
//! `blk:hdr:0`, `idx:exec:progress` at block 0, and last the chain record `idx:chain` (its
//! presence marks a complete init, so an interrupted init is simply rerun).
//!
//! A built-in chain's genesis is built into the program ([`evm::chain_data`]); `--genesis
//! FILE` gives a custom chain's (or a built-in chain's, which must then be the network's
//! genesis). With `--adopt` nothing is written but the chain record: the store is one the
//! original service filled, taken over as [`super::adopt`] describes.

use super::{adopt, chain_record, check_config_matches, setting_for, CommandError, Context};
use crate::config::VerifyRootConfig;
use alloy_primitives::{Address, B256};
use evm::chain_data::{self, BuiltInChain};

use evm::genesis::{GenesisBlock, GenesisError};
use pipeline::tries::{build_genesis_tries, BuiltTries};
use primitives::clock::unix_now;
use primitives::contract::ExecProgress;
use primitives::store::WriteBatch;
use primitives::value::ContractRead;
use std::path::Path;

/// Where `init` takes the genesis from.
#[derive(Debug, Clone, Copy)]
pub enum GenesisSource<'a> {
    /// The genesis of the built-in chain `chain.name` names.
    BuiltIn,
    /// A geth-style genesis file.
    File(&'a Path),
}

/// What `init` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOutcome {
    /// The chain id of the genesis.
    pub chain_id: u64,
    /// The genesis state root.
    pub state_root: B256,
    /// The genesis block hash.
    pub genesis_hash: B256,
    /// Accounts in the allocation.
    pub accounts: usize,
    /// False when the store already held this genesis (or was taken over) and no state was
    /// written.
    pub written: bool,
    /// With `--adopt`: the executed block the store was taken over at, and its hash.
    pub adopted: Option<(u64, B256)>,
}

/// Initialise the store from a genesis file.
pub fn run(ctx: &Context, genesis_path: &Path) -> Result<InitOutcome, CommandError> {
    init(ctx, GenesisSource::File(genesis_path), false)
}

/// Initialise the store with the genesis from `source`, or with `adopt` take over a store the
/// original service filled for that genesis.
pub fn init(
    ctx: &Context,
    source: GenesisSource<'_>,
    adopt: bool,
) -> Result<InitOutcome, CommandError> {
    let name = ctx.config.chain.name.clone();
    let genesis = resolve_genesis(ctx, source)?;
    let outcome = |written, adopted| InitOutcome {
        chain_id: genesis.chain_id(),
        state_root: genesis.header.state_root,
        genesis_hash: genesis.hash,
        accounts: genesis.genesis.alloc.len(),
        written,
        adopted,
    };
    if adopt {
        let adoption = adopt::adopt(ctx, &name, &genesis)?;
        return Ok(outcome(false, Some((adoption.block, adoption.hash))));
    }

    let shown = match source {
        GenesisSource::BuiltIn => format!("the built-in genesis of {name}"),
        GenesisSource::File(path) => path.display().to_string(),
    };
    if let Some(record) = ctx.chain_record()? {
        if record.genesis_hash != genesis.hash {
            return Err(CommandError::ChainMismatch(format!(
                "the store already holds genesis {:#x} (chain {:?}, id {}); {shown} has genesis \
                 {:#x}. Point storage at another store for this chain, or set {} to serve the \
                 store's chain",
                record.genesis_hash,
                record.name,
                record.chain_id,
                genesis.hash,
                setting_for(&record.name, record.chain_id)
            )));
        }
        tracing::info!(genesis = %genesis.hash, "store already initialised with this genesis");
        return Ok(outcome(false, None));
    }
    let progress_key = ctx.keys.exec_progress();
    let progress = ctx.store.read(&progress_key)?;
    // Progress at block 0 without a chain record is an init cut short; above it, the store
    // holds executed state that the genesis would overwrite.
    if let Some(executed) = progress.as_ref().map(|p| p.latest_executed_block) {
        if executed > 0 {
            return Err(CommandError::Takeover(format!(
                "{progress_key} says blocks up to {executed} are executed but there is no {} \
                 (a store the original service wrote?); `init` would overwrite that state with \
                 the genesis. Take the store over instead: `evm-executor init --adopt` (with \
                 `--genesis FILE` for chain.name = \"custom\"; `run` does it by itself for a \
                 built-in chain)",
                ctx.keys.chain()
            )));
        }
    }
    let header_key = ctx.keys.header(0);
    if let Some(stored) = ctx.store.read(&header_key)? {
        let stored_hash = stored.hash();
        if stored_hash != genesis.hash {
            return Err(CommandError::ChainMismatch(format!(
                "{header_key} holds block {stored_hash:#x}, not this genesis {:#x}",
                genesis.hash
            )));
        }
    }

    // The tries (with the merkle stage's checkpoint at the genesis), unless state roots are
    // not to be verified.
    let tries = match ctx.config.state.verify_root {
        VerifyRootConfig::Off => None,
        _ => Some(genesis_tries(&genesis)?),
    };
    let storage_root = |address: &Address| {
        tries
            .as_ref()
            .map_or(B256::ZERO, |tries| tries.storage_root(address))
    };
    ctx.store
        .write(&genesis.state_writes(&ctx.keys, storage_root))?;
    let mut batch = WriteBatch::new();
    if let Some(tries) = &tries {
        tries.queue(&ctx.keys, 0, genesis.hash, &mut batch);
    }
    if progress.is_none() {
        let progress = ExecProgress {
            latest_executed_block: 0,
            last_execution_time: unix_now(),
            total_txs_executed: 0,
        };
        batch.put(progress_key, &progress);
    }
    // Last: its presence marks a complete init.
    batch.put(ctx.keys.chain(), &chain_record(&name, &genesis));
    ctx.store.write(&batch)?;
    Ok(outcome(true, None))
}

/// The genesis `source` gives, checked against the configured chain: a built-in chain's own
/// genesis, a file that must be that genesis, or a custom chain's file with a `config`.
fn resolve_genesis(ctx: &Context, source: GenesisSource<'_>) -> Result<GenesisBlock, CommandError> {
    let config = &ctx.config;
    let name = config.chain.name.as_str();
    let built_in = chain_data::built_in(name);
    let genesis = match (source, built_in) {
        (GenesisSource::BuiltIn, Some(chain)) => chain.genesis()?,
        (GenesisSource::BuiltIn, None) => {
            let names: Vec<_> = chain_data::BUILT_IN_CHAINS.iter().map(|c| c.name).collect();
            return Err(CommandError::GenesisNeeded(names.join(", ")));
        }
        (GenesisSource::File(path), Some(chain)) => {
            let genesis = load_for(path, chain)?;
            check_config_matches(config, name, genesis.chain_id())?;
            if genesis.hash != chain.genesis_hash {
                let fitting = chain_data::built_in_with_genesis(genesis.hash)
                    .map_or("custom", |other| other.name);
                return Err(CommandError::ChainMismatch(format!(
                    "{} is genesis {:#x}, not the genesis of {name} ({:#x}); for that chain set \
                     chain.name = {fitting:?}",
                    path.display(),
                    genesis.hash,
                    chain.genesis_hash
                )));
            }
            genesis
        }
        (GenesisSource::File(path), None) => {
            let genesis = GenesisBlock::load(path)?;
            if !genesis.has_config() {
                return Err(CommandError::ChainMismatch(format!(
                    "{} has no `config` object, so it does not say which chain it is; {}",
                    path.display(),
                    match network_of(path) {
                        Some(chain) => format!(
                            "it is the genesis of {0}: set chain.name = {0:?} (which needs no \
                             --genesis)",
                            chain.name
                        ),
                        None => "add the chain's geth `config` (chainId and forks)".to_string(),
                    }
                )));
            }
            check_config_matches(config, name, genesis.chain_id())?;
            genesis
        }
    };
    Ok(genesis)
}

/// A genesis file read for the built-in chain `chain` (whose rules fill a missing `config`).
fn load_for(path: &Path, chain: &BuiltInChain) -> Result<GenesisBlock, CommandError> {
    let shown = path.display().to_string();
    let text = std::fs::read(path).map_err(|source| GenesisError::Read {
        path: shown.clone(),
        source,
    })?;
    Ok(GenesisBlock::parse_for_spec(&shown, &text, &chain.spec()?)?)
}

/// The built-in chain whose genesis the config-less file at `path` is, if any.
fn network_of(path: &Path) -> Option<&'static BuiltInChain> {
    chain_data::BUILT_IN_CHAINS
        .iter()
        .find(|chain| load_for(path, chain).is_ok_and(|g| g.hash == chain.genesis_hash))
}

/// The state tries of `genesis`, checked against its header's state root.
fn genesis_tries(genesis: &GenesisBlock) -> Result<BuiltTries, CommandError> {
    let tries =
        build_genesis_tries(genesis).map_err(|e| CommandError::GenesisTries(e.to_string()))?;
    if tries.state_root != genesis.header.state_root {
        return Err(CommandError::GenesisTries(format!(
            "the tries give state root {:#x}, the genesis header {:#x}",
            tries.state_root, genesis.header.state_root
        )));
    }
    Ok(tries)
}
