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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::TestNetwork;
    use alloy_primitives::U256;
    use revm::database::states::bundle_state::BundleRetention;
    use revm::database::{CacheDB, EmptyDB};
    use revm::state::AccountInfo;

    /// The balances after `apply` at block `number` of `HomesteadToDaoAt5`, for two DAO
    /// accounts holding 7 and 5 wei and the refund contract: `None` for an account that does
    /// not exist.
    fn after(number: u64) -> [Option<U256>; 3] {
        let spec = TestNetwork::parse("HomesteadToDaoAt5")
            .expect("known network")
            .chain_spec(1, &Default::default());
        let mut db = CacheDB::new(EmptyDB::default());
        for (address, balance) in [
            (DAO_HARDFORK_ACCOUNTS[0], 7u64),
            (DAO_HARDFORK_ACCOUNTS[1], 5),
        ] {
            db.insert_account_info(
                address,
                AccountInfo {
                    balance: U256::from(balance),
                    ..AccountInfo::default()
                },
            );
        }
        let mut state = State::builder()
            .with_database(db)
            .with_bundle_update()
            .build();
        apply(&spec, number, &mut state).expect("in-memory state");
        state.merge_transitions(BundleRetention::Reverts);
        [
            DAO_HARDFORK_ACCOUNTS[0],
            DAO_HARDFORK_ACCOUNTS[1],
            DAO_HARDFORK_BENEFICIARY,
        ]
        .map(|address| {
            state
                .basic(address)
                .expect("in-memory state")
                .map(|info| info.balance)
        })
    }

    #[test]
    fn the_fork_block_moves_dao_balances_and_keeps_the_emptied_accounts() {
        assert_eq!(
            after(5),
            [Some(U256::ZERO), Some(U256::ZERO), Some(U256::from(12))]
        );
    }

    #[test]
    fn other_blocks_leave_the_balances() {
        assert_eq!(after(4), [Some(U256::from(7)), Some(U256::from(5)), None]);
        assert_eq!(after(6), [Some(U256::from(7)), Some(U256::from(5)), None]);
    }
}
