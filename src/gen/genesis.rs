//! The generated chain's genesis: a post-merge chain with every fork through Prague active at
//! genesis, the EIP-4788/2935/7002/7251 system contracts, the accounts' balances, and the
//! tokens, pairs, router and fillers of the [`Layout`] with their starting storage (account
//! balances, pair reserves, and the allowances that let traders swap: to the pairs, or to the
//! router and from it to the pairs).

use super::contracts::{self, allowance_slot, balance_slot};
use super::layout::Layout;
use super::workload::{ACCOUNT_ETHER, ACCOUNT_TOKENS, TRADERS};
use super::GenError;
use alloy_eips::eip7840::BlobParams;
use alloy_eips::{eip2935, eip4788, eip7002, eip7251};
use alloy_genesis::{ChainConfig, Genesis, GenesisAccount};
use alloy_primitives::{Address, Bytes, B256, U256};
use std::collections::BTreeMap;

/// The generated chain's id.
pub const CHAIN_ID: u64 = 20_260;
/// The genesis timestamp; block n is 12 n seconds later.
pub const GENESIS_TIME: u64 = 1_767_225_600;
/// Seconds between blocks.
pub const BLOCK_TIME: u64 = 12;
/// The genesis base fee (EIP-1559's initial 1 gwei).
pub const GENESIS_BASE_FEE: u64 = 1_000_000_000;

/// The fork schedule: everything through Prague at block 0 / time 0, merged at genesis.
fn chain_config() -> ChainConfig {
    let mut config = ChainConfig {
        chain_id: CHAIN_ID,
        homestead_block: Some(0),
        eip150_block: Some(0),
        eip155_block: Some(0),
        eip158_block: Some(0),
        byzantium_block: Some(0),
        constantinople_block: Some(0),
        petersburg_block: Some(0),
        istanbul_block: Some(0),
        berlin_block: Some(0),
        london_block: Some(0),
        terminal_total_difficulty: Some(U256::ZERO),
        terminal_total_difficulty_passed: true,
        shanghai_time: Some(0),
        cancun_time: Some(0),
        prague_time: Some(0),
        ..ChainConfig::default()
    };
    config
        .blob_schedule
        .insert("cancun".to_string(), BlobParams::cancun());
    config
        .blob_schedule
        .insert("prague".to_string(), BlobParams::prague());
    config
}

fn contract(code: Bytes, nonce: u64, storage: BTreeMap<B256, B256>) -> GenesisAccount {
    GenesisAccount {
        nonce: Some(nonce),
        code: Some(code),
        storage: (!storage.is_empty()).then_some(storage),
        ..GenesisAccount::default()
    }
}

/// The genesis of a chain over `layout` whose keys are `keys`, with `gas_limit` per block; the
/// first [`TRADERS`] keys have approved every pair on its tokens.
pub fn build(layout: &Layout, keys: &[Address], gas_limit: u64) -> Result<Genesis, GenError> {
    Ok(Genesis {
        alloc: allocation(layout, keys, TRADERS)?.collect(),
        ..without_alloc(gas_limit)
    })
}

/// The genesis fields besides the allocation.
pub fn without_alloc(gas_limit: u64) -> Genesis {
    Genesis {
        config: chain_config(),
        nonce: 0,
        timestamp: GENESIS_TIME,
        extra_data: Bytes::from_static(b"evm-executor gen"),
        gas_limit,
        difficulty: U256::ZERO,
        mix_hash: B256::ZERO,
        coinbase: Address::ZERO,
        alloc: BTreeMap::new(),
        base_fee_per_gas: Some(u128::from(GENESIS_BASE_FEE)),
        excess_blob_gas: Some(0),
        blob_gas_used: Some(0),
        number: Some(0),
        ..Genesis::default()
    }
}

/// Every account of the allocation, each built when its turn comes (a token's storage holds a
/// slot per key): the keys, the system contracts, the tokens, the pairs, the router (when the
/// layout has one) and the fillers. The first `traders` keys may swap at once: they have
/// approved the router on every token, or without a router every pair on its tokens; the
/// router has approved every pair on its tokens.
pub fn allocation<'a>(
    layout: &'a Layout,
    keys: &'a [Address],
    traders: usize,
) -> Result<impl Iterator<Item = (Address, GenesisAccount)> + 'a, GenError> {
    let funded = keys.iter().map(|key| {
        let account = GenesisAccount {
            balance: U256::from(ACCOUNT_ETHER),
            ..GenesisAccount::default()
        };
        (*key, account)
    });
    let system = [
        (eip4788::BEACON_ROOTS_ADDRESS, &eip4788::BEACON_ROOTS_CODE),
        (
            eip2935::HISTORY_STORAGE_ADDRESS,
            &eip2935::HISTORY_STORAGE_CODE,
        ),
        (
            eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
            &eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_CODE,
        ),
        (
            eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS,
            &eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_CODE,
        ),
    ]
    .map(|(address, code)| (address, contract(code.clone(), 1, BTreeMap::new())));
    let token_code = contracts::token_runtime()?;
    let tokens = layout.tokens.iter().map(move |token| {
        let storage = token_storage(layout, keys, traders, *token);
        (*token, contract(token_code.clone(), 1, storage))
    });
    let reserve = word(Layout::reserve());
    let pairs = layout
        .pairs
        .iter()
        .map(|pair| {
            let storage =
                BTreeMap::from([(B256::ZERO, reserve), (B256::with_last_byte(1), reserve)]);
            let code = contracts::pair_runtime(pair.token0, pair.token1)?;
            Ok((pair.address, contract(code, 1, storage)))
        })
        .collect::<Result<Vec<_>, GenError>>()?;
    let router_code = contracts::router_runtime()?;
    let router = layout
        .router
        .map(|router| (router, contract(router_code, 1, BTreeMap::new())));
    let filler_code = contracts::filler_runtime()?;
    let fillers = layout
        .fillers
        .iter()
        .map(move |filler| (*filler, contract(filler_code.clone(), 1, BTreeMap::new())));
    Ok(funded
        .chain(system)
        .chain(tokens)
        .chain(pairs)
        .chain(router)
        .chain(fillers))
}

fn word(value: U256) -> B256 {
    B256::from(value.to_be_bytes::<32>())
}

/// A genesis token's storage: every key's balance, the reserves of the pairs trading it, and
/// the allowances that let the first `traders` keys swap.
fn token_storage(
    layout: &Layout,
    keys: &[Address],
    traders: usize,
    token: Address,
) -> BTreeMap<B256, B256> {
    let unlimited = word(U256::MAX >> 1);
    let mut storage: BTreeMap<B256, B256> = keys
        .iter()
        .map(|key| (balance_slot(*key), word(U256::from(ACCOUNT_TOKENS))))
        .collect();
    let traders = &keys[..traders.min(keys.len())];
    for pair in layout
        .pairs
        .iter()
        .filter(|pair| pair.token0 == token || pair.token1 == token)
    {
        storage.insert(balance_slot(pair.address), word(Layout::reserve()));
        let spender_of_traders = match layout.router {
            Some(router) => {
                storage.insert(allowance_slot(router, pair.address), unlimited);
                router
            }
            None => pair.address,
        };
        for trader in traders {
            storage.insert(allowance_slot(*trader, spender_of_traders), unlimited);
        }
    }
    storage
}
