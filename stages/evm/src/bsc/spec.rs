//! The [`ChainSpec`] of a BSC network: its fork schedule mapped onto Ethereum's forks (so the
//! generic parts of the executor read the same schedule), Cancun's blob parameters throughout
//! (`DefaultPragueBlobConfigBSC` and `DefaultOsakaBlobConfigBSC` are Cancun's in
//! `params/config.go`), no deposit contract, and the BSC rules themselves.

use super::forks::BscForks;
use super::BscChain;
use crate::chain::ChainSpec;
use alloy_eips::eip7840::BlobParams;
use alloy_eips::eip7892::BlobScheduleBlobParams;
use alloy_hardforks::{EthereumChainHardforks, EthereumHardfork, ForkCondition};
use std::sync::Arc;

impl ChainSpec {
    /// The spec of the BSC network `chain`.
    pub fn parlia(chain: BscChain) -> Self {
        let cancun = BlobParams::cancun();
        Self {
            chain_id: chain.forks.chain_id,
            hardforks: ethereum_forks(&chain.forks),
            blob_schedule: BlobScheduleBlobParams {
                cancun,
                prague: cancun,
                osaka: cancun,
                scheduled: Vec::new(),
            },
            deposit_contract: None,
            bsc: Some(Arc::new(chain)),
            // BSC's genesis has none; the BSC executor does not run the EIP-7610 check.
            storage_only_accounts: Default::default(),
        }
    }
}

/// Ethereum's forks where BSC activates them.
fn ethereum_forks(forks: &BscForks) -> EthereumChainHardforks {
    use EthereumHardfork as H;
    let by_block = [
        (H::Homestead, "HomesteadBlock"),
        (H::Tangerine, "EIP150Block"),
        (H::SpuriousDragon, "EIP158Block"),
        (H::Byzantium, "ByzantiumBlock"),
        (H::Constantinople, "ConstantinopleBlock"),
        (H::Petersburg, "PetersburgBlock"),
        (H::Istanbul, "IstanbulBlock"),
        (H::MuirGlacier, "MuirGlacierBlock"),
        (H::Berlin, "BerlinBlock"),
        (H::London, "LondonBlock"),
    ];
    let by_time = [
        (H::Shanghai, "ShanghaiTime"),
        (H::Cancun, "CancunTime"),
        (H::Prague, "PragueTime"),
        (H::Osaka, "OsakaTime"),
    ];
    let mut list = vec![(H::Frontier, ForkCondition::Block(0))];
    list.extend(by_block.iter().filter_map(|(fork, key)| {
        forks
            .activation(key)
            .map(|n| (*fork, ForkCondition::Block(n)))
    }));
    list.extend(by_time.iter().filter_map(|(fork, key)| {
        forks
            .activation(key)
            .map(|t| (*fork, ForkCondition::Timestamp(t)))
    }));
    EthereumChainHardforks::new(list)
}
