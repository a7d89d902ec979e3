//! The CLI commands' implementations, each in its own module, and what they share: the opened
//! store with its key layout, and the check that the store belongs to the configured chain.

pub mod adopt;
pub mod bench;
pub mod gen;
pub mod import;
pub mod init;
pub mod run;
pub mod status;
pub mod trie;

use crate::config::Config;
use evm::chain_data;
use evm::error::BlockError;
use evm::genesis::{GenesisError, GenesisSummary};
use pipeline::stage::{Inconsistency, StageError};
use primitives::block::{BodyMismatch, CorruptRlp};
use primitives::contract::{ChainRecord, MalformedValue};
use primitives::keys::Keys;
use primitives::load::LoadError;
use primitives::store::{Store, StoreError};
use primitives::value::{ContractRead, ReadError};
use std::sync::Arc;

/// Why a command stopped.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value in the store does not decode.
    #[error(transparent)]
    Malformed(#[from] MalformedValue),
    /// RLP in the store does not decode.
    #[error(transparent)]
    Corrupt(#[from] CorruptRlp),
    /// The genesis file is unusable.
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    /// The store, the config and the genesis disagree about the chain.
    #[error("chain mismatch: {0}")]
    ChainMismatch(String),
    /// The store has not been initialised with `init`.
    #[error(
        "store not initialised: {0}; run `evm-executor init` first (with `--genesis FILE` for \
         chain.name = \"custom\")"
    )]
    NotInitialised(String),
    /// `init` without `--genesis` for a chain that is not built in.
    #[error(
        "chain.name = \"custom\" takes its chain from a genesis file: run `evm-executor init \
         --genesis FILE`, or set chain.name to a built-in chain ({0})"
    )]
    GenesisNeeded(String),
    /// The genesis state's tries could not be built or do not give its state root.
    #[error("genesis state tries: {0}")]
    GenesisTries(String),
    /// A store without `idx:chain` cannot be taken over as it is.
    #[error("cannot take over the store: {0}")]
    Takeover(String),
    /// The chain data built into the program is unusable.
    #[error(transparent)]
    ChainData(#[from] chain_data::ChainDataError),
    /// A chain file could not be imported.
    #[error("import stopped at block {block} (byte offset {offset}): {reason}")]
    Import {
        /// The block number being imported (the one expected next when it could not be decoded).
        block: u64,
        /// Where in the file the block starts.
        offset: u64,
        /// What went wrong.
        reason: String,
    },
    /// A stage of the pipeline stopped (the error names stage, block and key).
    #[error(transparent)]
    Stage(StageError),
    /// A value in the store could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The signal handlers could not be installed.
    #[error("cannot install the SIGINT/SIGTERM handlers: {0}")]
    Signal(std::io::Error),
    /// The metrics server could not start.
    #[error("metrics.listen_addr {addr:?}: {reason}")]
    MetricsServer {
        /// The configured address.
        addr: String,
        /// Why it cannot serve there.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A block could not be loaded or its senders recovered.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A block did not execute or verify.
    #[error(transparent)]
    Execution(#[from] BlockError),
    /// The bench's relay could not start or measure its round trip.
    #[error("bench relay: {0}")]
    Relay(String),
    /// The sender-recovery thread pool could not start.
    #[error("cannot start the sender-recovery pool: {0}")]
    ThreadPool(String),
    /// This replica lost the leader lease (or could not renew it) and stopped writing.
    #[error("leader lease lost; stopped writing")]
    LeaseLost,
    /// The conformance run failed or could not start.
    #[error("ef-test: {0}")]
    EfTest(String),
    /// The workload generator failed.
    #[error(transparent)]
    Gen(#[from] crate::gen::GenError),
    /// A block's body does not match its header.
    #[error(transparent)]
    BodyMismatch(#[from] BodyMismatch),
    /// `trie rebuild` stopped.
    #[error("trie rebuild: {0}")]
    TrieRebuild(#[from] pipeline::trie_rebuild::RebuildError),
    /// A daemon holds the leader lease, so the state may change under the command.
    #[error(
        "{key} is held by {holder}: a daemon is running on this store; stop it first (or pass \
         --force if the lease is stale)"
    )]
    LeaderActive {
        /// The lease key.
        key: String,
        /// The holder's token.
        holder: String,
    },
}

impl From<StageError> for CommandError {
    fn from(error: StageError) -> Self {
        match error {
            StageError::LeaseLost => CommandError::LeaseLost,
            StageError::Inconsistent(Inconsistency::NotInitialised { key }) => {
                CommandError::NotInitialised(format!("{key} is missing"))
            }
            other => CommandError::Stage(other),
        }
    }
}

impl CommandError {
    /// An I/O failure on `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        CommandError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// What every command works on: the config, the opened store and its key layout.
pub struct Context {
    /// The loaded configuration.
    pub config: Config,
    /// The opened store.
    pub store: Arc<dyn Store>,
    /// Keys under `storage.key_prefix`.
    pub keys: Keys,
}

impl Context {
    /// Open the configured store.
    pub fn open(config: Config) -> Result<Self, CommandError> {
        let store = crate::store::open(&config.storage)?;
        let keys = Keys::new(config.storage.key_prefix.clone());
        Ok(Self {
            config,
            store,
            keys,
        })
    }

    /// The chain record `init` left in the store, if any.
    pub fn chain_record(&self) -> Result<Option<ChainRecord>, CommandError> {
        Ok(self.store.read(&self.keys.chain())?)
    }

    /// The chain record, checked against the configured chain; an error when the store was not
    /// initialised or belongs to another chain.
    pub fn checked_chain(&self) -> Result<ChainRecord, CommandError> {
        let record = self
            .chain_record()?
            .ok_or_else(|| CommandError::NotInitialised(format!("no {}", self.keys.chain())))?;
        check_config_matches(&self.config, &record.name, record.chain_id)?;
        Ok(record)
    }
}

/// Refuse when the config names a chain other than `name` / `chain_id`, saying which setting
/// would fit.
pub fn check_config_matches(
    config: &Config,
    name: &str,
    chain_id: u64,
) -> Result<(), CommandError> {
    let chain = &config.chain;
    if chain.name != name && chain.name != "custom" {
        return Err(CommandError::ChainMismatch(format!(
            "config chain.name is {:?} but the store holds chain {name:?} (chain id {chain_id}); \
             set {}",
            chain.name,
            setting_for(name, chain_id)
        )));
    }
    if let Some(expected) = chain.expected_chain_id().filter(|id| *id != chain_id) {
        return Err(CommandError::ChainMismatch(format!(
            "config expects chain id {expected} (chain.name {:?}, chain.network_id {}) but the \
             chain has id {chain_id}; set {}",
            chain.name,
            chain.network_id,
            setting_for(name, chain_id)
        )));
    }
    Ok(())
}

/// The config setting that serves a chain with id `chain_id` called `name` (by the store, or by
/// the config when the store has no name yet): `name` when it is the built-in chain of that id,
/// else the built-in chain of that id, else `custom`.
pub fn setting_for(name: &str, chain_id: u64) -> String {
    let fitting = match chain_data::built_in(name) {
        Some(chain) if chain.chain_id == chain_id => Some(chain.name),
        _ if name == "custom" => None,
        _ => chain_data::built_in_with_id(chain_id).map(|chain| chain.name),
    };
    format!(
        "chain.name = {:?} with chain.network_id = 0",
        fitting.unwrap_or("custom")
    )
}

/// The chain record `idx:chain` for the chain `name` with `genesis`.
pub fn chain_record(name: &str, genesis: &GenesisSummary) -> ChainRecord {
    ChainRecord {
        name: name.to_string(),
        chain_id: genesis.chain_id,
        genesis_hash: genesis.hash,
        config: genesis.config_json.clone(),
        storage_only_accounts: genesis.storage_only.clone(),
    }
}
