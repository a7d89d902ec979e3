//! BNB Smart Chain (Parlia) execution, as bnb-chain/bsc does it.
//!
//! - [`forks`]: the fork schedule and the revm rules per block.
//! - [`upgrades`]: system-contract code replaced at fork blocks.
//! - [`system`]: the system contracts and system transactions.
//! - [`handler`]: revm handling of BSC transactions (fees to the system address, system
//!   transactions as direct calls).
//! - [`header`]: the header rules execution depends on.
//! - [`hertzfix`]: the storage patches that replay the HertzFix blocks.
//! - [`executor`]: one block, start to end.
//!
//! Chain data (fork schedule, upgrade bytecode) comes from [`ChainFiles`]: the copy of BSC
//! mainnet's and Chapel's built into the program (the `chain_data` module), or a directory named
//! in the configuration for any other Parlia chain. Parlia's seal, validator set and vote
//! checks are consensus, not execution, and are not done here.

pub mod executor;
pub mod forks;
pub mod handler;
pub mod header;
pub mod hertzfix;
pub mod spec;
pub mod system;
pub mod upgrades;

use forks::BscForks;
use std::borrow::Cow;
use std::path::Path;
use upgrades::Upgrades;

/// Where a Parlia chain's data files are read from, by their path under the data root
/// (`hardforks.json`, `systemcontracts/upgrades.json`, `systemcontracts/bruno/mainnet/…`).
#[derive(Debug, Clone, Copy)]
pub enum ChainFiles<'a> {
    /// Files under a directory (`chain.data_dir`).
    Dir(&'a Path),
    /// Files built into the program: each path with its text.
    BuiltIn(&'static [(&'static str, &'static str)]),
}

impl ChainFiles<'_> {
    /// The text of the file at `path` (under the data root).
    pub fn read(&self, path: &str) -> Result<Cow<'static, str>, String> {
        match self {
            Self::Dir(dir) => std::fs::read_to_string(dir.join(path))
                .map(Cow::Owned)
                .map_err(|e| format!("cannot read {}: {e}", self.show(path))),
            Self::BuiltIn(files) => files
                .iter()
                .find(|(name, _)| *name == path)
                .map(|(_, text)| Cow::Borrowed(*text))
                .ok_or_else(|| format!("{} is not in the built-in chain data", self.show(path))),
        }
    }

    /// How `path` is named in messages: the file's path, or its place in the built-in data.
    pub fn show(&self, path: &str) -> String {
        match self {
            Self::Dir(dir) => dir.join(path).display().to_string(),
            Self::BuiltIn(_) => format!("built-in {path}"),
        }
    }
}

/// Everything BSC-specific a chain spec carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BscChain {
    /// The network's name in the data files (`mainnet`, `chapel`, …).
    pub network: String,
    /// Its fork schedule.
    pub forks: BscForks,
    /// Its system-contract upgrades.
    pub upgrades: Upgrades,
}

impl BscChain {
    /// Load the network whose `hardforks.json` section has chain id `chain_id` from
    /// `data_dir` (`hardforks.json`, `systemcontracts/upgrades.json` and bytecode files).
    pub fn load(data_dir: &Path, chain_id: u64) -> Result<Self, String> {
        Self::from_files(ChainFiles::Dir(data_dir), chain_id)
    }

    /// Load the network whose `hardforks.json` section has chain id `chain_id` from `files`.
    pub fn from_files(files: ChainFiles<'_>, chain_id: u64) -> Result<Self, String> {
        let path = files.show("hardforks.json");
        let text = files.read("hardforks.json")?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{path} is not JSON: {e}"))?;
        let object = json
            .as_object()
            .ok_or_else(|| format!("{path} is not a JSON object"))?;
        let (network, section) = object
            .iter()
            .find(|(_, section)| {
                section.get("ChainID").and_then(|id| id.as_u64()) == Some(chain_id)
            })
            .ok_or_else(|| format!("{path} has no network with ChainID {chain_id}"))?;
        let forks = BscForks::from_json(section).map_err(|e| format!("{path}: {network}: {e}"))?;
        let upgrades = Upgrades::load(files, network)?;
        Ok(Self {
            network: network.clone(),
            forks,
            upgrades,
        })
    }
}
