//! The blockchain-test format of both Ethereum suites: execution-spec-tests
//! (`blockchain_tests/**.json`, with a `config` object) and ethereum/tests
//! (`BlockchainTests/**.json`, without one: chain id 1 and each fork's default blob
//! parameters). Only the fields the runner needs are read.

use alloy_eips::eip7840::BlobParams;
use alloy_primitives::{Address, Bytes, B256, U256};
use evm::chain::ChainSpec;
use evm::collision::StorageOnlyAccounts;
use evm::network::TestNetwork;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The chain id of a test without `config`.
const DEFAULT_CHAIN_ID: u64 = 1;

/// Which suite a test comes from, told by its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Suite {
    /// ethereum/tests `BlockchainTests` (no `config`).
    EthereumTests,
    /// execution-spec-tests `blockchain_tests` (with `config`).
    ExecutionSpecTests,
}

impl std::fmt::Display for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Suite::EthereumTests => "ethereum/tests",
            Suite::ExecutionSpecTests => "execution-spec-tests",
        })
    }
}

/// One test of a fixture file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockchainTest {
    /// Fork name, possibly a transition (`ShanghaiToCancunAtTime15k`).
    pub network: String,
    /// Chain id and blob schedule (execution-spec-tests only).
    #[serde(default)]
    pub config: Option<TestConfig>,
    /// Accounts before the first block.
    pub pre: BTreeMap<Address, TestAccount>,
    /// The genesis block, RLP.
    #[serde(rename = "genesisRLP")]
    pub genesis_rlp: Bytes,
    /// Blocks in the order they are imported.
    pub blocks: Vec<TestBlock>,
    /// Accounts after the last valid block.
    pub post_state: Option<BTreeMap<Address, TestAccount>>,
    /// The state root after the last valid block, where a test gives no `postState`.
    pub post_state_hash: Option<B256>,
    /// Hash of the head after every block is imported.
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
    /// Set when the block must be rejected: the reason, in the filler's words.
    pub expect_exception: Option<String>,
}

impl BlockchainTest {
    /// The suite the test's format belongs to.
    pub fn suite(&self) -> Suite {
        match self.config {
            Some(_) => Suite::ExecutionSpecTests,
            None => Suite::EthereumTests,
        }
    }

    /// The chain spec of the test's fork schedule `network` (its `network` field, parsed),
    /// with the test's chain id and blob parameters.
    pub fn chain_spec(&self, network: &TestNetwork) -> ChainSpec {
        let chain_id = self
            .config
            .as_ref()
            .map_or(DEFAULT_CHAIN_ID, |c| c.chainid.saturating_to::<u64>());
        let blob_schedule: BTreeMap<String, BlobParams> = self
            .config
            .iter()
            .flat_map(|config| &config.blob_schedule)
            .map(|(fork, params)| {
                let blob = BlobParams {
                    target_blob_count: params.target.saturating_to::<u64>(),
                    max_blob_count: params.max.saturating_to::<u64>(),
                    update_fraction: params.base_fee_update_fraction.saturating_to::<u128>(),
                    // Before Osaka a transaction may carry as many blobs as a block.
                    max_blobs_per_tx: params.max.saturating_to::<u64>(),
                    ..BlobParams::cancun()
                };
                (fork.to_lowercase(), blob)
            })
            .collect();
        network
            .chain_spec(chain_id, &blob_schedule)
            .with_storage_only_accounts(self.storage_only_accounts())
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
}
