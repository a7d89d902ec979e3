//! The system side of Parlia (bnb-chain/bsc `consensus/parlia/parlia.go`,
//! `core/systemcontracts/const.go`): which transactions are system transactions, and the
//! balance the engine moves from the system address to the coinbase before paying rewards.

use alloy_consensus::Transaction;
use alloy_primitives::{address, Address, U256};

/// Where transaction fees collect (`consensus.SystemAddress`); also the caller of the EIP-2935
/// block-hash call.
pub const SYSTEM_ADDRESS: Address = address!("fffffffffffffffffffffffffffffffffffffffe");
/// `ValidatorContract` (BSCValidatorSet).
pub const VALIDATOR_CONTRACT: Address = address!("0000000000000000000000000000000000001000");
/// `SlashContract`.
pub const SLASH_CONTRACT: Address = address!("0000000000000000000000000000000000001001");
/// `SystemRewardContract`.
pub const SYSTEM_REWARD_CONTRACT: Address = address!("0000000000000000000000000000000000001002");

/// The 14 contracts a system transaction may call (`systemContracts` in `parlia.go`).
pub const SYSTEM_CONTRACTS: [Address; 14] = [
    VALIDATOR_CONTRACT,
    SLASH_CONTRACT,
    SYSTEM_REWARD_CONTRACT,
    address!("0000000000000000000000000000000000001003"), // LightClient
    address!("0000000000000000000000000000000000001006"), // RelayerHub
    address!("0000000000000000000000000000000000001007"), // GovHub
    address!("0000000000000000000000000000000000001004"), // TokenHub
    address!("0000000000000000000000000000000000001005"), // RelayerIncentivize
    address!("0000000000000000000000000000000000002000"), // CrossChain
    address!("0000000000000000000000000000000000002002"), // StakeHub
    address!("0000000000000000000000000000000000002004"), // Governor
    address!("0000000000000000000000000000000000002005"), // GovToken
    address!("0000000000000000000000000000000000002006"), // Timelock
    address!("0000000000000000000000000000000000003000"), // TokenRecoverPortal
];

/// Selector of `deposit(address)` on the ValidatorContract (`distributeToValidator`).
pub const DEPOSIT_SELECTOR: [u8; 4] = [0xf3, 0x40, 0xfa, 0x01];

/// `systemRewardPercent`: before Kepler, 1/2^4 of the collected fees go to the system reward
/// contract.
const SYSTEM_REWARD_SHIFT: usize = 4;

/// `IsSystemTransaction`: a call to a system contract, at gas price zero, sent by the block's
/// coinbase.
pub fn is_system_transaction(tx: &impl Transaction, sender: Address, coinbase: Address) -> bool {
    tx.to().is_some_and(|to| SYSTEM_CONTRACTS.contains(&to))
        && tx.gas_price().unwrap_or_else(|| tx.max_fee_per_gas()) == 0
        && sender == coinbase
}

/// The reward the engine pays with a system transaction: the part of the system address's
/// balance it moves to the coinbase just before the call (`distributeIncoming`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewardMove {
    /// `deposit(coinbase)` to the ValidatorContract: the whole balance.
    Deposit,
    /// Before Kepler, `distributeToSystem`: a plain payment to the SystemRewardContract of
    /// balance >> 4.
    DistributeToSystem,
}

impl RewardMove {
    /// Which move precedes the system transaction `tx`, if any. `kepler` tells whether Kepler
    /// is active at the block.
    pub fn for_tx(tx: &impl Transaction, kepler: bool) -> Option<Self> {
        let to = tx.to()?;
        if to == VALIDATOR_CONTRACT && tx.input().starts_with(&DEPOSIT_SELECTOR) {
            Some(Self::Deposit)
        } else if to == SYSTEM_REWARD_CONTRACT && !kepler && tx.input().is_empty() {
            Some(Self::DistributeToSystem)
        } else {
            None
        }
    }

    /// The amount moved out of a system-address balance of `balance`.
    pub fn amount(self, balance: U256) -> U256 {
        match self {
            Self::Deposit => balance,
            Self::DistributeToSystem => balance >> SYSTEM_REWARD_SHIFT,
        }
    }
}
