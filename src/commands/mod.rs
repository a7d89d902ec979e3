//! The CLI commands' implementations, each in its own module, and what they share: the opened
//! store with its key layout, and the check that the store belongs to the configured chain.

pub mod adopt;
pub mod bench;
pub mod gen;
pub mod import;
pub mod init;
pub mod run;
pub mod status;

use crate::config::Config;
use stages::block::{BodyMismatch, CorruptRlp};
use stages::chain_data;
use stages::contract::{decode_json, ChainRecord, MalformedValue};
use stages::genesis::GenesisError;
use stages::keys::Keys;
use stages::store::{Store, StoreError};
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
    /// A store without `idx:chain` cannot be taken over as it is.
    #[error("cannot take over the store: {0}")]
    Takeover(String),
    /// The chain data built into the program is unusable.
    #[error(transparent)]
    ChainData(#[from] stages::chain_data::ChainDataError),
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
    /// A block could not be loaded or executed (the message names it).
    #[error("{0}")]
    Block(String),
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
        let key = self.keys.chain();
        match self.store.get(&key)? {
            Some(bytes) => Ok(Some(decode_json(&key, &bytes)?)),
            None => Ok(None),
        }
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

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
