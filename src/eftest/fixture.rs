//! The execution-spec-tests blockchain-test format (`blockchain_tests/**.json`): the fields the
//! runner needs, and the mapping from a test's `network` name to a chain spec.

use alloy_genesis::ChainConfig;
use alloy_primitives::{Address, Bytes, B256, U256};
use evm::chain::ChainSpec;
use evm::collision::StorageOnlyAccounts;
use serde::Deserialize;
use std::collections::BTreeMap;

/// One test of a fixture file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockchainTest {
    /// Fork name, possibly a transition (`ShanghaiToCancunAtTime15k`).
    pub network: String,
    /// Chain id and blob schedule.
    pub config: TestConfig,
    /// Accounts before the first block.
    pub pre: BTreeMap<Address, TestAccount>,
    /// The genesis block, RLP.
    #[serde(rename = "genesisRLP")]
    pub genesis_rlp: Bytes,
    /// Blocks in order.
    pub blocks: Vec<TestBlock>,
    /// Accounts after the last valid block.
    pub post_state: Option<BTreeMap<Address, TestAccount>>,
    /// Hash of the last valid block.
    pub lastblockhash: B256,
}

/// A test's `config` object.
#[derive(Debug, Deserialize)]
pub struct TestConfig {
    /// Chain id.
    pub chainid: U256,
    /// Blob parameters per fork name (`Cancun`, `Prague`, `BPO1`, …).
    #[serde(rename = "blobSchedule", default)]
    pub blob_schedule: BTreeMap<String, TestBlobParams>,
}

/// One fork's blob parameters as the tests spell them.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestBlobParams {
    /// Target blobs per block.
    pub target: U256,
    /// Most blobs per block.
    pub max: U256,
    /// Base fee update fraction.
    pub base_fee_update_fraction: U256,
}

/// An account in `pre` or `postState`.
#[derive(Debug, Clone, Deserialize)]
pub struct TestAccount {
    /// Balance.
    pub balance: U256,
    /// Nonce.
    pub nonce: U256,
    /// Code.
    pub code: Bytes,
    /// Storage.
    #[serde(default)]
    pub storage: BTreeMap<U256, U256>,
}

/// A block of a test.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestBlock {
    /// The block, RLP.
    pub rlp: Bytes,
    /// Set when the block must be rejected.
    pub expect_exception: Option<String>,
}

/// Fork activations of a single-fork or transition network, in order.
const FORKS: &[&str] = &[
    "Frontier",
    "Homestead",
    "EIP150",
    "EIP158",
    "Byzantium",
    "ConstantinopleFix",
    "Istanbul",
    "Berlin",
    "London",
    "Paris",
    "Shanghai",
    "Cancun",
    "Prague",
    "Osaka",
    "BPO1",
    "BPO2",
    "BPO3",
    "BPO4",
    "BPO5",
];

/// Where a fork starts in a network: every fork up to the named one at genesis, the
/// transition target at block 5 or time 15,000.
fn activations(network: &str) -> Option<Vec<(&'static str, Activation)>> {
    let (from, to, at) = match network.split_once("To") {
        Some((from, rest)) => {
            let (to, at) = rest.split_once("At")?;
            let at = match at {
                "5" => Activation::Block(5),
                "Time15k" => Activation::Time(15_000),
                _ => return None,
            };
            (from, Some(to), at)
        }
        None => (network, None, Activation::Block(0)),
    };
    let from_index = FORKS.iter().position(|f| *f == from)?;
    let mut out: Vec<_> = FORKS[..=from_index]
        .iter()
        .map(|f| (*f, Activation::Genesis))
        .collect();
    if let Some(to) = to {
        if to == "Dao" {
            out.push(("Dao", at));
        } else {
            let to_index = FORKS.iter().position(|f| *f == to)?;
            out.extend(
                FORKS
                    .get(from_index + 1..=to_index)?
                    .iter()
                    .map(|f| (*f, at)),
            );
        }
    }
    Some(out)
}

/// When a fork starts.
#[derive(Debug, Clone, Copy)]
enum Activation {
    Genesis,
    Block(u64),
    Time(u64),
}

impl BlockchainTest {
    /// The chain spec the test's network names, or `None` for a network this runner does not
    /// know.
    pub fn chain_spec(&self) -> Option<ChainSpec> {
        let mut config = ChainConfig {
            chain_id: self.config.chainid.to::<u64>(),
            ..Default::default()
        };
        for (fork, activation) in activations(&self.network)? {
            let block = match activation {
                Activation::Genesis => Some(0),
                Activation::Block(n) => Some(n),
                Activation::Time(_) => None,
            };
            let time = match activation {
                Activation::Genesis => Some(0),
                Activation::Time(t) => Some(t),
                Activation::Block(_) => None,
            };
            match fork {
                "Frontier" => {}
                "Homestead" => config.homestead_block = block,
                "Dao" => {
                    config.dao_fork_block = block;
                    config.dao_fork_support = true;
                }
                "EIP150" => config.eip150_block = block,
                "EIP158" => {
                    config.eip155_block = block;
                    config.eip158_block = block;
                }
                "Byzantium" => config.byzantium_block = block,
                "ConstantinopleFix" => {
                    config.constantinople_block = block;
                    config.petersburg_block = block;
                }
                "Istanbul" => config.istanbul_block = block,
                "Berlin" => config.berlin_block = block,
                "London" => config.london_block = block,
                "Paris" => {
                    config.terminal_total_difficulty = Some(U256::ZERO);
                    config.terminal_total_difficulty_passed = true;
                }
                "Shanghai" => config.shanghai_time = time,
                "Cancun" => config.cancun_time = time,
                "Prague" => config.prague_time = time,
                "Osaka" => config.osaka_time = time,
                "BPO1" => config.bpo1_time = time,
                "BPO2" => config.bpo2_time = time,
                "BPO3" => config.bpo3_time = time,
                "BPO4" => config.bpo4_time = time,
                "BPO5" => config.bpo5_time = time,
                _ => return None,
            }
        }
        for (fork, params) in &self.config.blob_schedule {
            let key = fork.to_lowercase();
            let blob = alloy_eips::eip7840::BlobParams {
                target_blob_count: params.target.to::<u64>(),
                max_blob_count: params.max.to::<u64>(),
                update_fraction: params.base_fee_update_fraction.to::<u128>(),
                // Before Osaka a transaction may carry as many blobs as a block.
                max_blobs_per_tx: params.max.to::<u64>(),
                ..alloy_eips::eip7840::BlobParams::cancun()
            };
            config.blob_schedule.insert(key, blob);
        }
        Some(
            ChainSpec::from_genesis_config(&config, U256::ZERO)
                .with_storage_only_accounts(self.storage_only_accounts()),
        )
    }

    /// The EIP-7610 candidates of the pre-state, as `init` derives them from a genesis.
    fn storage_only_accounts(&self) -> StorageOnlyAccounts {
        let mut accounts = StorageOnlyAccounts::default();
        for (address, account) in &self.pre {
            accounts.note(
                *address,
                account.code.is_empty() && account.nonce.is_zero(),
                account
                    .storage
                    .iter()
                    .map(|(slot, value)| (B256::from(*slot), *value)),
            );
        }
        accounts
    }

    /// The fork family for the report table: the network's first fork.
    pub fn fork_family(&self) -> &str {
        self.network
            .split_once("To")
            .map_or(self.network.as_str(), |(from, _)| from)
    }
}
