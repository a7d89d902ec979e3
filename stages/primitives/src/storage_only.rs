//! EIP-7610 candidates as the chain record keeps them: the genesis accounts with storage but
//! no code and nonce 0, each with one witness slot (the evm crate's `collision` module says why
//! one slot suffices and runs the check).

use alloy_primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The genesis accounts with storage but no code and nonce 0, each with one of its non-zero
/// storage slots (the witness, see the module docs). Serialised as a JSON object from address
/// to slot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StorageOnlyAccounts(BTreeMap<Address, B256>);

impl StorageOnlyAccounts {
    /// Remember `address` if it is a candidate: `codeless_nonce_zero` (it has no code and
    /// nonce 0) and a non-zero slot among `storage`.
    pub fn note(
        &mut self,
        address: Address,
        codeless_nonce_zero: bool,
        storage: impl IntoIterator<Item = (B256, U256)>,
    ) {
        if !codeless_nonce_zero {
            return;
        }
        if let Some((slot, _)) = storage.into_iter().find(|(_, value)| !value.is_zero()) {
            self.0.insert(address, slot);
        }
    }

    /// True when there are no candidates (the usual case).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The witness slot of `address`, if it is a candidate.
    pub fn witness(&self, address: &Address) -> Option<B256> {
        self.0.get(address).copied()
    }
}
