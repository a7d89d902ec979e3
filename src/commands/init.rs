//! `init --genesis FILE`: the genesis state into `st:latest:*` and `st:code:*`, the genesis
//! header into `blk:hdr:0`, `idx:exec:progress` at block 0, and last the chain record
//! `idx:chain` (its presence marks a complete init, so an interrupted init is simply rerun).

use super::{check_config_matches, CommandError, Context};
use alloy_primitives::B256;
use primitives::clock::unix_now;

use evm::genesis::GenesisBlock;
use primitives::contract::{ChainRecord, ExecProgress};
use primitives::store::WriteBatch;
use primitives::value::ContractRead;
use std::path::Path;

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
    /// False when the store already held this genesis and nothing was written.
    pub written: bool,
}

/// Initialise the store from a genesis file.
pub fn run(ctx: &Context, genesis_path: &Path) -> Result<InitOutcome, CommandError> {
    let genesis = GenesisBlock::load(genesis_path)?;
    let name = ctx.config.chain.name.clone();
    check_config_matches(&ctx.config, &name, genesis.chain_id())?;
    let outcome = |written| InitOutcome {
        chain_id: genesis.chain_id(),
        state_root: genesis.header.state_root,
        genesis_hash: genesis.hash,
        accounts: genesis.genesis.alloc.len(),
        written,
    };

    if let Some(record) = ctx.chain_record()? {
        if record.genesis_hash != genesis.hash {
            return Err(CommandError::ChainMismatch(format!(
                "the store already holds genesis {:#x} (chain {:?}, id {}); {} has genesis {:#x}",
                record.genesis_hash,
                record.name,
                record.chain_id,
                genesis_path.display(),
                genesis.hash
            )));
        }
        tracing::info!(genesis = %genesis.hash, "store already initialised with this genesis");
        return Ok(outcome(false));
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

    ctx.store.write(&genesis.state_writes(&ctx.keys))?;
    let progress_key = ctx.keys.exec_progress();
    let mut batch = WriteBatch::new();
    if ctx.store.read(&progress_key)?.is_none() {
        let progress = ExecProgress {
            latest_executed_block: 0,
            last_execution_time: unix_now(),
            total_txs_executed: 0,
        };
        batch.put(progress_key, &progress);
    }
    let record = ChainRecord {
        name,
        chain_id: genesis.chain_id(),
        genesis_hash: genesis.hash,
        config: genesis.config_json.clone(),
        storage_only_accounts: evm::collision::storage_only_accounts(&genesis.genesis),
    };
    // Last: its presence marks a complete init.
    batch.put(ctx.keys.chain(), &record);
    ctx.store.write(&batch)?;
    Ok(outcome(true))
}
