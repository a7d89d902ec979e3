//! Where the generator's contracts live and how they start: four ERC-20 tokens, three pairs
//! trading neighbouring tokens, two storage fillers.

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
        let tokens: Vec<Address> = (0..TOKENS).map(|i| contract_address(1, i)).collect();
        let pairs = (0..TOKENS - 1)
            .map(|i| Pair {
                address: contract_address(2, i),
                token0: tokens[usize::from(i)],
                token1: tokens[usize::from(i) + 1],
            })
            .collect();
        let fillers = (0..FILLERS).map(|i| contract_address(3, i)).collect();
        Self {
            tokens,
            pairs,
            fillers,
        }
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
