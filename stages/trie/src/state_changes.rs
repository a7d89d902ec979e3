//! The input of an update: what changed in the state, per account (its fields, or its deletion)
//! and per storage slot, with keys as the chain spells them (addresses, slots); the crate hashes
//! them.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, U256};

/// The fields of an account the account trie stores besides its storage root (which the crate
/// computes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccountFields {
    /// The account's nonce.
    pub nonce: u64,
    /// The account's balance in wei.
    pub balance: U256,
    /// keccak256 of the account's code (`KECCAK_EMPTY` without code).
    pub code_hash: B256,
}

/// What happens to an account's leaf in the account trie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccountUpdate {
    /// The fields stay; only the storage root may change (when slots changed).
    #[default]
    Unchanged,
    /// The account exists with these fields (created or modified).
    Set(AccountFields),
    /// The account is removed from the trie. Its storage trie must end up empty: the caller
    /// passes every slot the account had as set to zero (see [`StateChanges::delete_account`]).
    Deleted,
}

/// One account's changes: its leaf and its slots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountChange {
    /// The account's leaf.
    pub account: AccountUpdate,
    /// Slot (unhashed) → new value; zero removes the slot.
    pub storage: BTreeMap<B256, U256>,
}

/// A set of changes of the state, the input of an update: per account, its new fields or its
/// deletion, and its slots' new values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateChanges {
    /// Address → the account's changes.
    pub accounts: BTreeMap<Address, AccountChange>,
}

impl StateChanges {
    /// An empty change set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the account's fields (creates the account if it does not exist).
    pub fn set_account(&mut self, address: Address, fields: AccountFields) {
        self.accounts.entry(address).or_default().account = AccountUpdate::Set(fields);
    }

    /// Deletes the account. Contract: the caller also passes every slot the account holds in
    /// the store as set to zero ([`Self::set_slot`] with `U256::ZERO`), so its storage trie's
    /// nodes are removed with it; an update refuses a deleted account whose storage trie would
    /// stay non-empty ([`crate::TrieError::StorageNotCleared`]). [`crate::storage_trie_nodes`]
    /// lists a storage trie's nodes if the caller needs them.
    pub fn delete_account(&mut self, address: Address) {
        self.accounts.entry(address).or_default().account = AccountUpdate::Deleted;
    }

    /// Sets a slot of the account's storage; zero removes it.
    pub fn set_slot(&mut self, address: Address, slot: B256, value: U256) {
        self.accounts
            .entry(address)
            .or_default()
            .storage
            .insert(slot, value);
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.accounts
            .values()
            .all(|change| change.account == AccountUpdate::Unchanged && change.storage.is_empty())
    }
}
