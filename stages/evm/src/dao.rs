//! The DAO fork's irregular state change (EIP-779): at the fork block, before its first
//! transaction, the balance of every account of the DAO and its children moves to the refund
//! contract. go-ethereum applies it there (`core/state_processor.go`, `ApplyDAOHardFork`), and
//! the tests expect it there; alloy-evm applies it after the block's transactions, which
//! differs when one of them reads or pays a DAO account. So the chain spec hides the fork from
//! alloy-evm ([`crate::chain::ChainSpec::dao_fork_block`] keeps it) and it is applied here.
//!
//! The fork predates EIP-161: an account it leaves empty stays in the state. The change goes
//! straight into revm's cache, as revm's own DAO helpers do, because a commit from outside a
//! transaction would delete such accounts (revm applies EIP-161 to those).

use crate::chain::ChainSpec;
use alloy_evm::eth::dao_fork::{DAO_HARDFORK_ACCOUNTS, DAO_HARDFORK_BENEFICIARY};
use revm::database::State;
use revm::Database;

/// At `spec`'s DAO fork block `number`, move the DAO balances in `state` to the refund
/// contract; at any other block, nothing.
pub fn apply<DB: Database>(
    spec: &ChainSpec,
    number: u64,
    state: &mut State<DB>,
) -> Result<(), DB::Error> {
    if spec.dao_fork_block() != Some(number) {
        return Ok(());
    }
    let mut drained = 0u128;
    let mut transitions = Vec::with_capacity(DAO_HARDFORK_ACCOUNTS.len() + 1);
    for address in DAO_HARDFORK_ACCOUNTS {
        let (balance, transition) = state.load_cache_account(address)?.drain_balance();
        drained += balance;
        transitions.push((address, transition.map_storage(|_| None)));
    }
    if let Some(transition) = state
        .load_cache_account(DAO_HARDFORK_BENEFICIARY)?
        .increment_balance(drained)
    {
        transitions.push((DAO_HARDFORK_BENEFICIARY, transition.map_storage(|_| None)));
    }
    // Balance changes only: no storage travels with them.
    state.apply_transition(transitions);
    Ok(())
}
