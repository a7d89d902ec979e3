//! EIP-7610: a contract creation (CREATE, CREATE2 or a create transaction) collides with an
//! account that has non-empty storage, as it does with one that has code or a nonce. revm 43
//! checks only code and nonce, so the storage part is added here.
//!
//! # Which accounts can have storage but neither code nor nonce
//!
//! Storage is written only by code running at the account's own address. From Spurious Dragon
//! (EIP-161) on, every account created by a CREATE starts with nonce 1, so an account with
//! storage, no code and nonce 0 can only come from the genesis allocation. (Before EIP-161 a
//! creation whose init code stored something and returned empty code left such an account:
//! Ethereum mainnet has 28 of them from 2015-16. Such pre-EIP-161 accounts are not covered here.)
//! So the candidates are known at `init`: [`StorageOnlyAccounts::from_genesis`], kept in the
//! chain record and carried by the chain spec; no store scan is ever needed.
//!
//! # Why one remembered slot tells whether the account still has storage
//!
//! For each candidate one non-zero genesis slot (the *witness*) is remembered. While the
//! account keeps nonce 0 and no code, nothing can run at its address, so its storage can change
//! in one way only: it is wiped whole when the account is deleted (an EIP-161 touch of an
//! account with no balance, code or nonce removes it with its storage; it cannot self-destruct
//! without code). Any other change needs code at the address, i.e. an EIP-7702 delegation, whose
//! authorisation raises the nonce for good, and from then on revm's own nonce check makes every
//! creation there collide. Hence, for an account with nonce 0 and no code, "has storage" is
//! exactly "its witness slot is non-zero", which one read of the current state answers.
//!
//! # How the check runs
//!
//! [`CollisionCheck`] is a revm inspector whose `create` hook (called for the first frame of a
//! create transaction as well as for CREATE and CREATE2) reproduces what revm does on a
//! collision: after the same earlier checks in the same order (call depth, the caller's
//! balance for the value, nonce overflow), the caller's nonce is raised, the target is loaded
//! (so it is warm), and the frame ends with `CreateCollision` without returning its gas (all gas
//! given to the creation is consumed). Whenever the storage rule does not decide, the hook
//! returns `None` and revm proceeds as usual. The inspector is only switched on for chains with
//! candidates, so other chains run revm's plain, non-inspecting path.

use crate::genesis::non_zero_storage;
use alloy_genesis::Genesis;
use alloy_primitives::{Bytes, KECCAK256_EMPTY};
pub use primitives::storage_only::StorageOnlyAccounts;
use revm::context::{ContextTr, JournalTr};
use revm::context_interface::journaled_state::account::JournaledAccountTr;
use revm::interpreter::{CreateInputs, CreateOutcome, Gas, InstructionResult, InterpreterResult};
use revm::primitives::constants::CALL_STACK_LIMIT;
use revm::{Database, Inspector};

/// The candidates of a genesis allocation (see the module docs).
pub fn storage_only_accounts(genesis: &Genesis) -> StorageOnlyAccounts {
    let mut accounts = StorageOnlyAccounts::default();
    for (address, account) in &genesis.alloc {
        let has_code = account.code.as_ref().is_some_and(|code| !code.is_empty());
        accounts.note(
            *address,
            !has_code && account.nonce.unwrap_or_default() == 0,
            non_zero_storage(account.storage.as_ref()),
        );
    }
    accounts
}

/// The revm inspector that makes creations collide with candidates that still have storage.
/// A state read failing inside the hook cannot be returned from it; it is kept in
/// [`CollisionCheck::take_error`] for the caller to fail the block with.
#[derive(Debug)]
pub struct CollisionCheck<'a, E> {
    accounts: &'a StorageOnlyAccounts,
    error: Option<E>,
}

impl<'a, E> CollisionCheck<'a, E> {
    /// A check against `accounts`.
    pub fn new(accounts: &'a StorageOnlyAccounts) -> Self {
        Self {
            accounts,
            error: None,
        }
    }

    /// The first state read that failed in the hook since the last call, if any.
    pub fn take_error(&mut self) -> Option<E> {
        self.error.take()
    }
}

impl<CTX> Inspector<CTX> for CollisionCheck<'_, <CTX::Db as Database>::Error>
where
    CTX: ContextTr,
{
    fn create(&mut self, context: &mut CTX, inputs: &mut CreateInputs) -> Option<CreateOutcome> {
        match collides(self.accounts, context, inputs) {
            Ok(false) => None,
            Ok(true) => Some(CreateOutcome {
                result: InterpreterResult {
                    result: InstructionResult::CreateCollision,
                    gas: Gas::new_with_regular_gas_and_reservoir(
                        inputs.gas_limit(),
                        inputs.reservoir(),
                    ),
                    output: Bytes::new(),
                },
                address: None,
                charged_create_state_gas: inputs.charged_create_state_gas(),
            }),
            Err(error) => {
                self.error.get_or_insert(error);
                None
            }
        }
    }
}

/// Whether the creation described by `inputs` collides by the storage rule; if so the
/// caller's nonce has been raised and the target loaded, as revm does before its own
/// collision check. Any check revm makes first that would fail (depth, balance, nonce
/// overflow) leaves the creation to revm untouched.
fn collides<CTX: ContextTr>(
    accounts: &StorageOnlyAccounts,
    context: &mut CTX,
    inputs: &CreateInputs,
) -> Result<bool, <CTX::Db as Database>::Error> {
    if accounts.is_empty() {
        return Ok(false);
    }
    // While a frame runs at depth d the journal holds d checkpoints, so the new frame's depth
    // is the journal's depth now.
    if context.journal().depth() > CALL_STACK_LIMIT as usize {
        return Ok(false);
    }
    let caller = context.journal_mut().load_account(inputs.caller())?;
    let (balance, nonce) = (caller.data.info.balance, caller.data.info.nonce);
    if balance < inputs.value() || nonce == u64::MAX {
        return Ok(false);
    }
    let target = inputs.created_address(nonce);
    let Some(witness) = accounts.witness(&target) else {
        return Ok(false);
    };
    let account = context.journal_mut().load_account(target)?;
    if account.data.info.code_hash != KECCAK256_EMPTY || account.data.info.nonce != 0 {
        // revm's own check collides.
        return Ok(false);
    }
    // Read below the journal, so a slot that turns out empty is not warmed for the creation
    // that follows. Nothing in this transaction can have changed the slot (see module docs).
    if context.db_mut().storage(target, witness.into())?.is_zero() {
        return Ok(false);
    }
    context
        .journal_mut()
        .load_account_mut(inputs.caller())?
        .bump_nonce();
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{address, B256, U256};
    use primitives::contract::{decode_json, encode_json, ChainRecord};

    fn record(accounts: StorageOnlyAccounts) -> ChainRecord {
        ChainRecord {
            name: "custom".to_string(),
            chain_id: 7,
            genesis_hash: B256::repeat_byte(1),
            config: serde_json::json!({"chainId": 7}),
            storage_only_accounts: accounts,
        }
    }

    #[test]
    fn candidates_are_codeless_nonce_zero_accounts_with_a_non_zero_slot() {
        let genesis: Genesis = serde_json::from_str(
            r#"{"config":{"chainId":7},"alloc":{
            "0x1000000000000000000000000000000000000001":{"balance":"0x0",
              "storage":{"0x05":"0x00","0x07":"0x2a"}},
            "0x1000000000000000000000000000000000000002":{"balance":"0x1","nonce":"0x1",
              "storage":{"0x07":"0x2a"}},
            "0x1000000000000000000000000000000000000003":{"balance":"0x0","code":"0x00",
              "storage":{"0x07":"0x2a"}},
            "0x1000000000000000000000000000000000000004":{"balance":"0x0",
              "storage":{"0x07":"0x00"}},
            "0x1000000000000000000000000000000000000005":{"balance":"0x5"}}}"#,
        )
        .unwrap();
        let accounts = storage_only_accounts(&genesis);
        assert_eq!(accounts.len(), 1);
        assert_eq!(
            accounts.witness(&address!("1000000000000000000000000000000000000001")),
            Some(B256::from(U256::from(7)))
        );
    }

    #[test]
    fn chain_record_keeps_candidates_and_reads_records_without_them() {
        let mut accounts = StorageOnlyAccounts::default();
        let target = address!("5FbDB2315678afecb367f032d93F642f64180aa3");
        accounts.note(target, true, [(B256::with_last_byte(1), U256::from(0x2a))]);
        let with = record(accounts.clone());
        let text = encode_json(&with);
        let json: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(
            json["storageOnlyAccounts"],
            serde_json::json!({
                "0x5fbdb2315678afecb367f032d93f642f64180aa3":
                    "0x0000000000000000000000000000000000000000000000000000000000000001"
            })
        );
        assert_eq!(
            decode_json::<ChainRecord>("idx:chain", &text).unwrap(),
            with
        );

        // No candidates: the record is written exactly as before the field existed, and such
        // a record reads back with none.
        let without = encode_json(&record(StorageOnlyAccounts::default()));
        let json: serde_json::Value = serde_json::from_slice(&without).unwrap();
        assert!(json.get("storageOnlyAccounts").is_none(), "{json}");
        let old = br#"{"name":"custom","chainId":7,"genesisHash":"0x0101010101010101010101010101010101010101010101010101010101010101","config":{"chainId":7}}"#;
        let read: ChainRecord = decode_json("idx:chain", old).unwrap();
        assert!(read.storage_only_accounts.is_empty());
    }
}
