//! Where the generator's contracts live and how they start: four ERC-20 tokens, pairs trading
//! them (three of neighbouring tokens; with many accounts, one for every two tokens and a
//! router), two storage fillers.

use super::workload::Rng;
use alloy_primitives::{Address, U256};

/// Tokens in the genesis.
pub const TOKENS: u8 = 4;
/// Storage fillers in the genesis.
pub const FILLERS: u8 = 2;
/// Each pair's starting reserve of each of its tokens (a billion whole tokens).
pub const PAIR_RESERVE: u128 = 1_000_000_000 * 1_000_000_000_000_000_000;

/// A constant-product pair and its two tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// The pair contract.
    pub address: Address,
    /// Reserve 0's token.
    pub token0: Address,
    /// Reserve 1's token.
    pub token1: Address,
}

/// The contracts of a generated chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The genesis tokens.
    pub tokens: Vec<Address>,
    /// The pairs.
    pub pairs: Vec<Pair>,
    /// The storage fillers.
    pub fillers: Vec<Address>,
    /// The router swaps go through, when there is one (else traders call the pairs).
    pub router: Option<Address>,
}

/// `0xc0{kind}00…00{index}`: the address of contract `index` of a kind.
fn contract_address(kind: u8, index: u8) -> Address {
    let mut bytes = [0u8; 20];
    bytes[0] = 0xc0;
    bytes[1] = kind;
    bytes[19] = index;
    Address::from(bytes)
}

impl Layout {
    /// Tokens at `0xc001…0i`, pairs of tokens (i, i+1) at `0xc002…0i`, fillers at `0xc003…0i`.
    pub fn standard() -> Self {
        Self::with_pairs((0..TOKENS - 1).map(|i| (i, i + 1)), None)
    }

    /// The layout of a workload with many accounts: the standard tokens and fillers, a pair for
    /// every two tokens ((0,1), (0,2), … at `0xc002…00`, `…01`, …) and a router at `0xc004…00`.
    pub fn routed() -> Self {
        let pairs = (0..TOKENS).flat_map(|i| (i + 1..TOKENS).map(move |j| (i, j)));
        Self::with_pairs(pairs, Some(contract_address(4, 0)))
    }

    fn with_pairs(pairs: impl Iterator<Item = (u8, u8)>, router: Option<Address>) -> Self {
        let tokens: Vec<Address> = (0..TOKENS).map(|i| contract_address(1, i)).collect();
        let pairs = pairs
            .enumerate()
            .map(|(index, (i, j))| Pair {
                address: contract_address(2, index as u8),
                token0: tokens[usize::from(i)],
                token1: tokens[usize::from(j)],
            })
            .collect();
        let fillers = (0..FILLERS).map(|i| contract_address(3, i)).collect();
        Self {
            tokens,
            pairs,
            fillers,
            router,
        }
    }

    /// The pair trading `sell` for `buy` and whether that sells its token0.
    pub fn pair_for(&self, sell: Address, buy: Address) -> Option<(Pair, bool)> {
        self.pairs.iter().find_map(|pair| {
            if (pair.token0, pair.token1) == (sell, buy) {
                Some((*pair, true))
            } else if (pair.token1, pair.token0) == (sell, buy) {
                Some((*pair, false))
            } else {
                None
            }
        })
    }

    /// A genesis token chosen by `rng`.
    pub fn random_token(&self, rng: &mut Rng) -> Address {
        self.tokens[rng.below(self.tokens.len() as u64) as usize]
    }

    /// Every pair's starting reserve, as a word.
    pub fn reserve() -> U256 {
        U256::from(PAIR_RESERVE)
    }
}
