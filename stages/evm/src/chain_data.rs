//! The chain data of the built-in chains, compiled into the program: the genesis files of BSC
//! mainnet, Chapel and the Ethereum networks, BSC's fork schedule (`hardforks.json`) and its
//! system-contract upgrade bytecode (`systemcontracts/`), all from `config/chains/` (its README
//! says where each file comes from and how to check it). Every path to those files is in this
//! module and nowhere else.
//!
//! A built-in chain's genesis must reproduce the genesis block hash its network publishes
//! ([`BuiltInChain::genesis_hash`]); [`BuiltInChain::genesis`] refuses data that does not.

use crate::bsc::{BscChain, ChainFiles};
use crate::chain::ChainSpec;
use crate::genesis::GenesisBlock;
use alloy_primitives::{b256, B256};

/// The text of `config/chains/<path>`, built into the program.
macro_rules! chain_file {
    ($path:expr) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/chains/",
            $path
        ))
    };
}

/// A BSC data file as [`ChainFiles::BuiltIn`] lists it: its path under `config/chains/bsc/`
/// with its text.
macro_rules! bsc_file {
    ($path:literal) => {
        ($path, chain_file!(concat!("bsc/", $path)))
    };
}

/// How a built-in chain's blocks are executed.
#[derive(Debug, Clone, Copy)]
enum Rules {
    /// Ethereum's rules with the schedule this function returns.
    Ethereum(fn() -> ChainSpec),
    /// BNB Smart Chain's (Parlia), with the fork schedule and upgrades of [`BSC_FILES`].
    Parlia,
}

/// A chain whose data the program carries, selected by `chain.name`.
#[derive(Debug)]
pub struct BuiltInChain {
    /// Its `chain.name`.
    pub name: &'static str,
    /// Its EIP-155 chain id.
    pub chain_id: u64,
    /// Its genesis block hash as the network publishes it.
    pub genesis_hash: B256,
    /// Its genesis file (geth style; the Ethereum networks' files carry no `config`).
    genesis: &'static str,
    /// How its blocks are executed.
    rules: Rules,
}

/// Every built-in chain.
pub const BUILT_IN_CHAINS: &[BuiltInChain] = &[
    BuiltInChain {
        name: "bsc",
        chain_id: 56,
        genesis_hash: b256!("0d21840abff46b96c84b2ac9e10e4f5cdaeb5693cb665db62a2f3b02d2d57b5b"),
        genesis: chain_file!("bsc/genesis-mainnet.json"),
        rules: Rules::Parlia,
    },
    BuiltInChain {
        name: "chapel",
        chain_id: 97,
        genesis_hash: b256!("6d3c66c5357ec91d5c43af47e234a939b22557cbb552dc45bebbceeed90fbe34"),
        genesis: chain_file!("bsc/genesis-chapel.json"),
        rules: Rules::Parlia,
    },
    BuiltInChain {
        name: "mainnet",
        chain_id: 1,
        genesis_hash: b256!("d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3"),
        genesis: chain_file!("ethereum/mainnet.json"),
        rules: Rules::Ethereum(ChainSpec::mainnet),
    },
    BuiltInChain {
        name: "sepolia",
        chain_id: 11_155_111,
        genesis_hash: b256!("25a5cc106eea7138acab33231d7160d69cb777ee0c2c553fcddf5138993e6dd9"),
        genesis: chain_file!("ethereum/sepolia.json"),
        rules: Rules::Ethereum(ChainSpec::sepolia),
    },
    BuiltInChain {
        name: "holesky",
        chain_id: 17_000,
        genesis_hash: b256!("b5f7f912443c940f21fd611f12828d75b534364ed9e95ca4e307729a4661bde4"),
        genesis: chain_file!("ethereum/holesky.json"),
        rules: Rules::Ethereum(ChainSpec::holesky),
    },
    BuiltInChain {
        name: "hoodi",
        chain_id: 560_048,
        genesis_hash: b256!("bbe312868b376a3001692a646dd2d7d1e4406380dfd86b98aa8a34d1557c971b"),
        genesis: chain_file!("ethereum/hoodi.json"),
        rules: Rules::Ethereum(ChainSpec::hoodi),
    },
];

/// The built-in chain called `name`.
pub fn built_in(name: &str) -> Option<&'static BuiltInChain> {
    BUILT_IN_CHAINS.iter().find(|chain| chain.name == name)
}

/// The built-in chain with chain id `chain_id`.
pub fn built_in_with_id(chain_id: u64) -> Option<&'static BuiltInChain> {
    BUILT_IN_CHAINS
        .iter()
        .find(|chain| chain.chain_id == chain_id)
}

/// The built-in chain whose genesis block is `hash`.
pub fn built_in_with_genesis(hash: B256) -> Option<&'static BuiltInChain> {
    BUILT_IN_CHAINS
        .iter()
        .find(|chain| chain.genesis_hash == hash)
}

/// Built-in chain data that cannot be used (a damaged checkout or build).
#[derive(Debug, thiserror::Error)]
#[error("the built-in data of chain {chain:?} is unusable: {reason}")]
pub struct ChainDataError {
    /// The chain's name.
    pub chain: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl BuiltInChain {
    /// The chain's rules: Ethereum's schedule for the network, or BSC's from the built-in data.
    pub fn spec(&self) -> Result<ChainSpec, ChainDataError> {
        match self.rules {
            Rules::Ethereum(spec) => Ok(spec()),
            Rules::Parlia => BscChain::from_files(ChainFiles::BuiltIn(BSC_FILES), self.chain_id)
                .map(ChainSpec::parlia)
                .map_err(|reason| self.unusable(reason)),
        }
    }

    /// The chain's genesis block, checked against [`Self::genesis_hash`].
    pub fn genesis(&self) -> Result<GenesisBlock, ChainDataError> {
        let genesis = GenesisBlock::parse_for_spec(
            &self.genesis_origin(),
            self.genesis.as_bytes(),
            &self.spec()?,
        )
        .map_err(|e| self.unusable(e.to_string()))?;
        self.check_genesis_hash(genesis.hash)?;
        Ok(genesis)
    }

    /// The text of its genesis file, for a reader that streams it
    /// ([`crate::genesis::stream`]); [`Self::genesis_origin`] names it in errors.
    pub fn genesis_text(&self) -> &'static str {
        self.genesis
    }

    /// How errors name its genesis file.
    pub fn genesis_origin(&self) -> String {
        format!("the built-in genesis of {}", self.name)
    }

    /// Refuse a genesis hash read from the built-in genesis file that is not the network's.
    pub fn check_genesis_hash(&self, hash: B256) -> Result<(), ChainDataError> {
        if hash != self.genesis_hash {
            return Err(self.unusable(format!(
                "its genesis hashes to {hash:#x}, not the network's {:#x}",
                self.genesis_hash
            )));
        }
        Ok(())
    }

    fn unusable(&self, reason: String) -> ChainDataError {
        ChainDataError {
            chain: self.name,
            reason,
        }
    }
}

/// BSC's data files (`config/chains/bsc/`) as [`ChainFiles::BuiltIn`] reads them: the fork
/// schedule, the upgrade list and the bytecode it names for mainnet and Chapel.
const BSC_FILES: &[(&str, &str)] = &[
    bsc_file!("hardforks.json"),
    bsc_file!("systemcontracts/upgrades.json"),
    bsc_file!("systemcontracts/bohr/chapel/StakeHubContract"),
    bsc_file!("systemcontracts/bohr/chapel/ValidatorContract"),
    bsc_file!("systemcontracts/bohr/mainnet/StakeHubContract"),
    bsc_file!("systemcontracts/bohr/mainnet/ValidatorContract"),
    bsc_file!("systemcontracts/bruno/chapel/ValidatorContract"),
    bsc_file!("systemcontracts/bruno/mainnet/ValidatorContract"),
    bsc_file!("systemcontracts/euler/chapel/SlashContract"),
    bsc_file!("systemcontracts/euler/chapel/ValidatorContract"),
    bsc_file!("systemcontracts/euler/mainnet/SlashContract"),
    bsc_file!("systemcontracts/euler/mainnet/ValidatorContract"),
    bsc_file!("systemcontracts/fermi/chapel/StakeHubContract"),
    bsc_file!("systemcontracts/fermi/mainnet/StakeHubContract"),
    bsc_file!("systemcontracts/feynman/chapel/CrossChainContract"),
    bsc_file!("systemcontracts/feynman/chapel/GovHubContract"),
    bsc_file!("systemcontracts/feynman/chapel/GovernorContract"),
    bsc_file!("systemcontracts/feynman/chapel/SlashContract"),
    bsc_file!("systemcontracts/feynman/chapel/StakeHubContract"),
    bsc_file!("systemcontracts/feynman/chapel/StakingContract"),
    bsc_file!("systemcontracts/feynman/chapel/TimelockContract"),
    bsc_file!("systemcontracts/feynman/chapel/TokenHubContract"),
    bsc_file!("systemcontracts/feynman/chapel/TokenRecoverPortalContract"),
    bsc_file!("systemcontracts/feynman/chapel/ValidatorContract"),
    bsc_file!("systemcontracts/feynman/mainnet/CrossChainContract"),
    bsc_file!("systemcontracts/feynman/mainnet/GovHubContract"),
    bsc_file!("systemcontracts/feynman/mainnet/GovTokenContract"),
    bsc_file!("systemcontracts/feynman/mainnet/GovernorContract"),
    bsc_file!("systemcontracts/feynman/mainnet/SlashContract"),
    bsc_file!("systemcontracts/feynman/mainnet/StakeCreditContract"),
    bsc_file!("systemcontracts/feynman/mainnet/StakeHubContract"),
    bsc_file!("systemcontracts/feynman/mainnet/StakingContract"),
    bsc_file!("systemcontracts/feynman/mainnet/TimelockContract"),
    bsc_file!("systemcontracts/feynman/mainnet/TokenHubContract"),
    bsc_file!("systemcontracts/feynman/mainnet/TokenRecoverPortalContract"),
    bsc_file!("systemcontracts/feynman/mainnet/ValidatorContract"),
    bsc_file!("systemcontracts/feynman_fix/chapel/StakeHubContract"),
    bsc_file!("systemcontracts/feynman_fix/chapel/ValidatorContract"),
    bsc_file!("systemcontracts/gibbs/chapel/StakingContract"),
    bsc_file!("systemcontracts/gibbs/chapel/TokenHubContract"),
    bsc_file!("systemcontracts/gibbs/mainnet/StakingContract"),
    bsc_file!("systemcontracts/gibbs/mainnet/TokenHubContract"),
    bsc_file!("systemcontracts/haber_fix/chapel/SlashContract"),
    bsc_file!("systemcontracts/haber_fix/chapel/ValidatorContract"),
    bsc_file!("systemcontracts/haber_fix/mainnet/SlashContract"),
    bsc_file!("systemcontracts/haber_fix/mainnet/ValidatorContract"),
    bsc_file!("systemcontracts/kepler/chapel/SlashContract"),
    bsc_file!("systemcontracts/kepler/chapel/SystemRewardContract"),
    bsc_file!("systemcontracts/kepler/chapel/ValidatorContract"),
    bsc_file!("systemcontracts/kepler/mainnet/SlashContract"),
    bsc_file!("systemcontracts/kepler/mainnet/SystemRewardContract"),
    bsc_file!("systemcontracts/kepler/mainnet/ValidatorContract"),
    bsc_file!("systemcontracts/lorentz/chapel/ValidatorContract"),
    bsc_file!("systemcontracts/lorentz/mainnet/ValidatorContract"),
    bsc_file!("systemcontracts/luban/chapel/CrossChainContract"),
    bsc_file!("systemcontracts/luban/chapel/RelayerHubContract"),
    bsc_file!("systemcontracts/luban/chapel/SlashContract"),
    bsc_file!("systemcontracts/luban/chapel/SystemRewardContract"),
    bsc_file!("systemcontracts/luban/chapel/ValidatorContract"),
    bsc_file!("systemcontracts/luban/mainnet/CrossChainContract"),
    bsc_file!("systemcontracts/luban/mainnet/RelayerHubContract"),
    bsc_file!("systemcontracts/luban/mainnet/SlashContract"),
    bsc_file!("systemcontracts/luban/mainnet/SystemRewardContract"),
    bsc_file!("systemcontracts/luban/mainnet/ValidatorContract"),
    bsc_file!("systemcontracts/maxwell/chapel/StakeHubContract"),
    bsc_file!("systemcontracts/maxwell/mainnet/StakeHubContract"),
    bsc_file!("systemcontracts/mirror/chapel/RelayerIncentivizeContract"),
    bsc_file!("systemcontracts/mirror/chapel/TokenHubContract"),
    bsc_file!("systemcontracts/mirror/chapel/TokenManagerContract"),
    bsc_file!("systemcontracts/mirror/mainnet/RelayerIncentivizeContract"),
    bsc_file!("systemcontracts/mirror/mainnet/TokenHubContract"),
    bsc_file!("systemcontracts/mirror/mainnet/TokenManagerContract"),
    bsc_file!("systemcontracts/moran/chapel/CrossChainContract"),
    bsc_file!("systemcontracts/moran/chapel/LightClientContract"),
    bsc_file!("systemcontracts/moran/chapel/RelayerHubContract"),
    bsc_file!("systemcontracts/moran/mainnet/CrossChainContract"),
    bsc_file!("systemcontracts/moran/mainnet/LightClientContract"),
    bsc_file!("systemcontracts/moran/mainnet/RelayerHubContract"),
    bsc_file!("systemcontracts/niels/chapel/CrossChainContract"),
    bsc_file!("systemcontracts/niels/chapel/GovHubContract"),
    bsc_file!("systemcontracts/niels/chapel/LightClientContract"),
    bsc_file!("systemcontracts/niels/chapel/RelayerHubContract"),
    bsc_file!("systemcontracts/niels/chapel/RelayerIncentivizeContract"),
    bsc_file!("systemcontracts/niels/chapel/SlashContract"),
    bsc_file!("systemcontracts/niels/chapel/SystemRewardContract"),
    bsc_file!("systemcontracts/niels/chapel/TokenHubContract"),
    bsc_file!("systemcontracts/niels/chapel/TokenManagerContract"),
    bsc_file!("systemcontracts/niels/chapel/ValidatorContract"),
    bsc_file!("systemcontracts/pascal/chapel/CrossChainContract"),
    bsc_file!("systemcontracts/pascal/chapel/GovHubContract"),
    bsc_file!("systemcontracts/pascal/chapel/GovTokenContract"),
    bsc_file!("systemcontracts/pascal/chapel/GovernorContract"),
    bsc_file!("systemcontracts/pascal/chapel/LightClientContract"),
    bsc_file!("systemcontracts/pascal/chapel/RelayerHubContract"),
    bsc_file!("systemcontracts/pascal/chapel/RelayerIncentivizeContract"),
    bsc_file!("systemcontracts/pascal/chapel/SlashContract"),
    bsc_file!("systemcontracts/pascal/chapel/StakeCreditContract"),
    bsc_file!("systemcontracts/pascal/chapel/StakeHubContract"),
    bsc_file!("systemcontracts/pascal/chapel/StakingContract"),
    bsc_file!("systemcontracts/pascal/chapel/SystemRewardContract"),
    bsc_file!("systemcontracts/pascal/chapel/TimelockContract"),
    bsc_file!("systemcontracts/pascal/chapel/TokenHubContract"),
    bsc_file!("systemcontracts/pascal/chapel/TokenManagerContract"),
    bsc_file!("systemcontracts/pascal/chapel/TokenRecoverPortalContract"),
    bsc_file!("systemcontracts/pascal/chapel/ValidatorContract"),
    bsc_file!("systemcontracts/pascal/mainnet/CrossChainContract"),
    bsc_file!("systemcontracts/pascal/mainnet/GovHubContract"),
    bsc_file!("systemcontracts/pascal/mainnet/GovTokenContract"),
    bsc_file!("systemcontracts/pascal/mainnet/GovernorContract"),
    bsc_file!("systemcontracts/pascal/mainnet/LightClientContract"),
    bsc_file!("systemcontracts/pascal/mainnet/RelayerHubContract"),
    bsc_file!("systemcontracts/pascal/mainnet/RelayerIncentivizeContract"),
    bsc_file!("systemcontracts/pascal/mainnet/SlashContract"),
    bsc_file!("systemcontracts/pascal/mainnet/StakeCreditContract"),
    bsc_file!("systemcontracts/pascal/mainnet/StakeHubContract"),
    bsc_file!("systemcontracts/pascal/mainnet/StakingContract"),
    bsc_file!("systemcontracts/pascal/mainnet/SystemRewardContract"),
    bsc_file!("systemcontracts/pascal/mainnet/TimelockContract"),
    bsc_file!("systemcontracts/pascal/mainnet/TokenHubContract"),
    bsc_file!("systemcontracts/pascal/mainnet/TokenManagerContract"),
    bsc_file!("systemcontracts/pascal/mainnet/TokenRecoverPortalContract"),
    bsc_file!("systemcontracts/pascal/mainnet/ValidatorContract"),
    bsc_file!("systemcontracts/planck/chapel/CrossChainContract"),
    bsc_file!("systemcontracts/planck/chapel/SlashContract"),
    bsc_file!("systemcontracts/planck/chapel/StakingContract"),
    bsc_file!("systemcontracts/planck/chapel/TokenHubContract"),
    bsc_file!("systemcontracts/planck/mainnet/CrossChainContract"),
    bsc_file!("systemcontracts/planck/mainnet/SlashContract"),
    bsc_file!("systemcontracts/planck/mainnet/TokenHubContract"),
    bsc_file!("systemcontracts/plato/chapel/SlashContract"),
    bsc_file!("systemcontracts/plato/chapel/ValidatorContract"),
    bsc_file!("systemcontracts/plato/mainnet/SlashContract"),
    bsc_file!("systemcontracts/plato/mainnet/ValidatorContract"),
    bsc_file!("systemcontracts/ramanujan/chapel/CrossChainContract"),
    bsc_file!("systemcontracts/ramanujan/chapel/GovHubContract"),
    bsc_file!("systemcontracts/ramanujan/chapel/LightClientContract"),
    bsc_file!("systemcontracts/ramanujan/chapel/RelayerHubContract"),
    bsc_file!("systemcontracts/ramanujan/chapel/RelayerIncentivizeContract"),
    bsc_file!("systemcontracts/ramanujan/chapel/SlashContract"),
    bsc_file!("systemcontracts/ramanujan/chapel/SystemRewardContract"),
    bsc_file!("systemcontracts/ramanujan/chapel/TokenHubContract"),
    bsc_file!("systemcontracts/ramanujan/chapel/TokenManagerContract"),
    bsc_file!("systemcontracts/ramanujan/chapel/ValidatorContract"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every built-in genesis reproduces the hash its network publishes (the constants come
    /// from the networks, not from this code) and every chain's rules load.
    #[test]
    fn built_in_genesis_files_reproduce_the_published_hashes() {
        for chain in BUILT_IN_CHAINS {
            let genesis = chain.genesis().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(genesis.chain_id(), chain.chain_id, "{}", chain.name);
            assert_eq!(chain.spec().expect("rules").chain_id, chain.chain_id);
        }
    }

    /// The built-in BSC data holds every bytecode file the upgrade list names for mainnet and
    /// Chapel, and nothing else.
    #[test]
    fn bsc_files_are_exactly_what_the_upgrade_list_names() {
        let list: serde_json::Value = serde_json::from_str(BSC_FILES[1].1).expect("upgrades.json");
        let mut named: Vec<String> = list["upgrades"]
            .as_object()
            .expect("upgrades")
            .values()
            .flat_map(|networks| ["mainnet", "chapel"].map(|n| networks.get(n).cloned()))
            .flatten()
            .flat_map(|entries| entries.as_array().cloned().unwrap_or_default())
            .map(|entry| {
                format!(
                    "systemcontracts/{}",
                    entry["code_file"].as_str().expect("file")
                )
            })
            .collect();
        named.sort();
        named.dedup();
        let mut shipped: Vec<String> = BSC_FILES[2..].iter().map(|(p, _)| p.to_string()).collect();
        shipped.sort();
        assert_eq!(shipped, named);
        for chain in ["bsc", "chapel"] {
            let spec = built_in(chain)
                .expect("built in")
                .spec()
                .expect("BSC data loads");
            let bsc = spec.bsc.expect("Parlia rules");
            assert!(!bsc.upgrades.forks.is_empty(), "{chain} has upgrades");
        }
    }
}
