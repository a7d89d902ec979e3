//! Chain specs (DESIGN §5): which fork rules apply at each block (by number or timestamp), the
//! blob parameters, and where the deposit contract is.
//!
//! Built in: Ethereum mainnet, Sepolia, Holesky, Hoodi (BSC's are in [`crate::bsc`]; the
//! built-in chains by name are in `chain_data`). Any other chain comes from a
//! geth-style genesis `config` block. The spec implements alloy's `EthereumHardforks`, so the fork checks,
//! the revm `SpecId` mapping and the block executor of alloy-evm all read the same schedule.

use crate::collision::StorageOnlyAccounts;
use alloy_consensus::Header;
use alloy_eips::eip7840::BlobParams;
use alloy_eips::eip7892::BlobScheduleBlobParams;
use alloy_evm::eth::spec::EthExecutorSpec;
use alloy_genesis::ChainConfig;
use alloy_hardforks::{EthereumChainHardforks, EthereumHardfork, EthereumHardforks, ForkCondition};
use alloy_primitives::{address, Address, U256};
use revm::primitives::hardfork::SpecId;

/// The beacon deposit contract of Ethereum mainnet (also Hoodi's, and the test suites').
pub const MAINNET_DEPOSIT_CONTRACT: Address = address!("00000000219ab540356cBB839Cbe05303d7705Fa");

/// Everything the executor needs to know about a chain's rules.
#[derive(Debug, Clone)]
pub struct ChainSpec {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Fork activations.
    pub hardforks: EthereumChainHardforks,
    /// Blob parameters per fork and the BPO schedule.
    pub blob_schedule: BlobScheduleBlobParams,
    /// The EIP-6110 deposit contract; `None` where deposits are not collected.
    pub deposit_contract: Option<Address>,
    /// BNB Smart Chain's own rules, for a Parlia chain; `None` for Ethereum.
    pub bsc: Option<std::sync::Arc<crate::bsc::BscChain>>,
    /// Genesis accounts with storage but no code or nonce, for EIP-7610 (usually none).
    pub storage_only_accounts: StorageOnlyAccounts,
}

impl EthereumHardforks for ChainSpec {
    fn ethereum_fork_activation(&self, fork: EthereumHardfork) -> ForkCondition {
        match fork {
            // Hidden from alloy-evm, which would move the DAO balances after the fork block's
            // transactions; `crate::dao` moves them before, as go-ethereum does.
            EthereumHardfork::Dao => ForkCondition::Never,
            _ => self.hardforks.ethereum_fork_activation(fork),
        }
    }
}

impl EthExecutorSpec for ChainSpec {
    fn deposit_contract_address(&self) -> Option<Address> {
        self.deposit_contract
    }
}

impl ChainSpec {
    /// Ethereum mainnet.
    pub fn mainnet() -> Self {
        Self::known(
            1,
            EthereumChainHardforks::mainnet(),
            Some(MAINNET_DEPOSIT_CONTRACT),
        )
    }

    /// Sepolia.
    pub fn sepolia() -> Self {
        let deposit = address!("7f02c3e3c98b133055b8b348b2ac625669ed295d");
        Self::known(11_155_111, EthereumChainHardforks::sepolia(), Some(deposit))
    }

    /// Holesky.
    pub fn holesky() -> Self {
        let deposit = address!("4242424242424242424242424242424242424242");
        Self::known(17_000, EthereumChainHardforks::holesky(), Some(deposit))
    }

    /// Hoodi.
    pub fn hoodi() -> Self {
        Self::known(
            560_048,
            EthereumChainHardforks::hoodi(),
            Some(MAINNET_DEPOSIT_CONTRACT),
        )
    }

    fn known(chain_id: u64, hardforks: EthereumChainHardforks, deposit: Option<Address>) -> Self {
        Self {
            chain_id,
            hardforks,
            blob_schedule: BlobScheduleBlobParams::mainnet(),
            deposit_contract: deposit,
            bsc: None,
            storage_only_accounts: StorageOnlyAccounts::default(),
        }
    }

    /// This spec with the genesis-derived EIP-7610 candidates (see [`crate::collision`]).
    pub fn with_storage_only_accounts(mut self, accounts: StorageOnlyAccounts) -> Self {
        self.storage_only_accounts = accounts;
        self
    }

    /// The spec a geth-style genesis `config` describes. `genesis_difficulty` decides whether the
    /// merge has already happened at genesis (terminal total difficulty reached).
    pub fn from_genesis_config(config: &ChainConfig, genesis_difficulty: U256) -> Self {
        use EthereumHardfork as H;
        let block = |b: Option<u64>| b.map(ForkCondition::Block);
        let time = |t: Option<u64>| t.map(ForkCondition::Timestamp);
        // The merge is a block-number fork here: at genesis when the terminal total difficulty
        // is reached there, else at the netsplit block when the config names one.
        let paris = match config.terminal_total_difficulty {
            Some(ttd) if ttd <= genesis_difficulty || config.terminal_total_difficulty_passed => {
                Some(ForkCondition::TTD {
                    activation_block_number: 0,
                    fork_block: Some(0),
                    total_difficulty: ttd,
                })
            }
            Some(ttd) => config.merge_netsplit_block.map(|n| ForkCondition::TTD {
                activation_block_number: n,
                fork_block: Some(n),
                total_difficulty: ttd,
            }),
            None => None,
        };
        let forks = [
            (H::Frontier, Some(ForkCondition::Block(0))),
            (H::Homestead, block(config.homestead_block)),
            (
                H::Dao,
                block(config.dao_fork_block.filter(|_| config.dao_fork_support)),
            ),
            (H::Tangerine, block(config.eip150_block)),
            (H::SpuriousDragon, block(config.eip158_block)),
            (H::Byzantium, block(config.byzantium_block)),
            (H::Constantinople, block(config.constantinople_block)),
            // As in geth: Petersburg is on wherever Constantinople is unless set apart.
            (
                H::Petersburg,
                block(config.petersburg_block.or(config.constantinople_block)),
            ),
            (H::Istanbul, block(config.istanbul_block)),
            (H::MuirGlacier, block(config.muir_glacier_block)),
            (H::Berlin, block(config.berlin_block)),
            (H::London, block(config.london_block)),
            (H::ArrowGlacier, block(config.arrow_glacier_block)),
            (H::GrayGlacier, block(config.gray_glacier_block)),
            (H::Paris, paris),
            (H::Shanghai, time(config.shanghai_time)),
            (H::Cancun, time(config.cancun_time)),
            (H::Prague, time(config.prague_time)),
            (H::Osaka, time(config.osaka_time)),
            (H::Bpo1, time(config.bpo1_time)),
            (H::Bpo2, time(config.bpo2_time)),
            (H::Bpo3, time(config.bpo3_time)),
            (H::Bpo4, time(config.bpo4_time)),
            (H::Bpo5, time(config.bpo5_time)),
        ];
        Self {
            chain_id: config.chain_id,
            hardforks: EthereumChainHardforks::new(
                forks
                    .into_iter()
                    .filter_map(|(fork, cond)| cond.map(|cond| (fork, cond))),
            ),
            blob_schedule: config.blob_schedule_blob_params(),
            deposit_contract: config
                .deposit_contract_address
                .or(Some(MAINNET_DEPOSIT_CONTRACT)),
            bsc: None,
            storage_only_accounts: StorageOnlyAccounts::default(),
        }
    }

    /// The DAO fork block, on a chain that took the DAO fork (EIP-779).
    pub fn dao_fork_block(&self) -> Option<u64> {
        match self
            .hardforks
            .ethereum_fork_activation(EthereumHardfork::Dao)
        {
            ForkCondition::Block(number) => Some(number),
            _ => None,
        }
    }

    /// The revm rules for a block (Petersburg's for Constantinople without Petersburg, whose
    /// SSTORE [`crate::eip1283`] supplies).
    pub fn spec_id(&self, header: &Header) -> SpecId {
        if crate::eip1283::applies(self, header.number) {
            return SpecId::PETERSBURG;
        }
        alloy_evm::spec_by_timestamp_and_block_number(self, header.timestamp, header.number)
    }

    /// The blob parameters in force at `timestamp`, or `None` before Cancun.
    pub fn blob_params_at(&self, timestamp: u64) -> Option<BlobParams> {
        if self.is_osaka_active_at_timestamp(timestamp) {
            Some(
                self.blob_schedule
                    .active_scheduled_params_at_timestamp(timestamp)
                    .copied()
                    .unwrap_or(self.blob_schedule.osaka),
            )
        } else if self.is_prague_active_at_timestamp(timestamp) {
            Some(self.blob_schedule.prague)
        } else if self.is_cancun_active_at_timestamp(timestamp) {
            Some(self.blob_schedule.cancun)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geth_genesis_config_maps_forks_by_number_and_time() {
        // The fork schedule of the geth-ethtest chain (fixtures README): Shanghai at genesis,
        // Cancun at time 60, Prague at time 120, merged at genesis.
        let config: ChainConfig = serde_json::from_str(
            r#"{"chainId":7,"homesteadBlock":0,"eip150Block":0,"eip155Block":0,"eip158Block":0,
            "byzantiumBlock":0,"constantinopleBlock":0,"petersburgBlock":0,"istanbulBlock":0,
            "berlinBlock":0,"londonBlock":0,"terminalTotalDifficulty":131072,
            "shanghaiTime":0,"cancunTime":60,"pragueTime":120}"#,
        )
        .unwrap();
        let spec = ChainSpec::from_genesis_config(&config, U256::from(131072));
        let header = |number, timestamp| Header {
            number,
            timestamp,
            ..Header::default()
        };
        assert_eq!(spec.spec_id(&header(1, 10)), SpecId::SHANGHAI);
        assert_eq!(spec.spec_id(&header(5, 60)), SpecId::CANCUN);
        assert_eq!(spec.spec_id(&header(9, 121)), SpecId::PRAGUE);
        assert_eq!(spec.blob_params_at(10), None);
        assert_eq!(spec.blob_params_at(60).map(|p| p.max_blob_count), Some(6));
        assert_eq!(spec.blob_params_at(120).map(|p| p.max_blob_count), Some(9));
    }
}
