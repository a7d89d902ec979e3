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
//! Chain data (fork schedule, upgrade bytecode) is read from a directory named in the
//! configuration, never compiled in. Parlia's seal, validator set and vote checks are
//! consensus, not execution, and are not done here.

pub mod executor;
pub mod forks;
pub mod handler;
pub mod header;
pub mod hertzfix;
pub mod spec;
pub mod system;
pub mod upgrades;

use forks::BscForks;
use std::path::Path;
use upgrades::Upgrades;

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
        let path = data_dir.join("hardforks.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        let object = json
            .as_object()
            .ok_or_else(|| format!("{} is not a JSON object", path.display()))?;
        let (network, section) = object
            .iter()
            .find(|(_, section)| {
                section.get("ChainID").and_then(|id| id.as_u64()) == Some(chain_id)
            })
            .ok_or_else(|| format!("{} has no network with ChainID {chain_id}", path.display()))?;
        let forks = BscForks::from_json(section)
            .map_err(|e| format!("{}: {network}: {e}", path.display()))?;
        let upgrades = Upgrades::load(data_dir, network)?;
        Ok(Self {
            network: network.clone(),
            forks,
            upgrades,
        })
    }
}
