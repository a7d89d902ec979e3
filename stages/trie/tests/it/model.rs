//! A state model in plain maps, random states and change sets over it, and the expected roots
//! from alloy-trie's own root functions (independent of the crate's trie code).

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_trie::root::{state_root_unhashed, storage_root_unhashed};
use alloy_trie::{TrieAccount, KECCAK_EMPTY};
use state_trie::{
    build_state, AccountFields, AccountUpdate, BuiltState, MemoryNodes, NodeKey, StateChanges,
};

/// Deterministic randomness: keccak256 of the seed and a counter, so every run sees the same
/// states.
pub struct Rng {
    seed: u64,
    drawn: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self { seed, drawn: 0 }
    }

    pub fn b256(&mut self) -> B256 {
        self.drawn += 1;
        keccak256([self.seed.to_be_bytes(), self.drawn.to_be_bytes()].concat())
    }

    pub fn next_u64(&mut self) -> u64 {
        u64::from_be_bytes(self.b256()[..8].try_into().expect("8 bytes"))
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with `percent` % probability.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn address(&mut self) -> Address {
        Address::from_slice(&self.b256()[..20])
    }

    /// A non-zero value, small (one byte) or large.
    pub fn value(&mut self) -> U256 {
        if self.chance(50) {
            U256::from(self.below(255) + 1)
        } else {
            U256::from_be_bytes(self.b256().0) | U256::from(1)
        }
    }

    pub fn fields(&mut self) -> AccountFields {
        AccountFields {
            nonce: self.below(1000),
            balance: U256::from(self.next_u64()) * U256::from(self.next_u64()),
            code_hash: if self.chance(70) {
                KECCAK_EMPTY
            } else {
                self.b256()
            },
        }
    }
}

pub type Slots = BTreeMap<B256, U256>;

/// A state: address → (fields, slots).
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub accounts: BTreeMap<Address, (AccountFields, Slots)>,
}

impl Model {
    /// `accounts` random accounts; about a third with storage, a few with many slots.
    pub fn random(rng: &mut Rng, accounts: usize) -> Self {
        let mut model = Self::default();
        for _ in 0..accounts {
            let slots = match rng.below(100) {
                0..=59 => 0,
                60..=94 => rng.below(20) + 1,
                _ => rng.below(400) + 50,
            };
            let slots = (0..slots).map(|_| (rng.b256(), rng.value())).collect();
            model.accounts.insert(rng.address(), (rng.fields(), slots));
        }
        model
    }

    /// Applies `changes` as the crate documents them.
    pub fn apply(&mut self, changes: &StateChanges) {
        for (address, change) in &changes.accounts {
            let fields = match change.account {
                AccountUpdate::Deleted => {
                    self.accounts.remove(address);
                    continue;
                }
                AccountUpdate::Set(fields) => fields,
                AccountUpdate::Unchanged => match self.accounts.get(address) {
                    Some((fields, _)) => *fields,
                    None => continue,
                },
            };
            let entry = self.accounts.entry(*address).or_default();
            entry.0 = fields;
            for (slot, value) in &change.storage {
                if value.is_zero() {
                    entry.1.remove(slot);
                } else {
                    entry.1.insert(*slot, *value);
                }
            }
        }
    }

    /// The state root by alloy-trie's root functions.
    pub fn expected_root(&self) -> B256 {
        state_root_unhashed(self.accounts.iter().map(|(address, (fields, slots))| {
            let account = TrieAccount::new(
                fields.nonce,
                fields.balance,
                expected_storage_root(slots),
                fields.code_hash,
            );
            (*address, account)
        }))
    }

    /// The tries built from scratch by the crate's builder.
    pub fn built(&self) -> BuiltState {
        build_state(self.accounts.iter().map(|(address, (fields, slots))| {
            (
                *address,
                *fields,
                slots
                    .iter()
                    .map(|(slot, value)| (*slot, *value))
                    .collect::<Vec<_>>(),
            )
        }))
        .expect("distinct addresses and slots")
    }

    /// A store holding the tries built from scratch.
    pub fn store(&self) -> MemoryNodes {
        self.built().nodes.into_iter().collect()
    }

    /// The change set creating this whole state from an empty one.
    pub fn as_changes(&self) -> StateChanges {
        let mut changes = StateChanges::new();
        for (address, (fields, slots)) in &self.accounts {
            changes.set_account(*address, *fields);
            for (slot, value) in slots {
                changes.set_slot(*address, *slot, *value);
            }
        }
        changes
    }

    fn nth(&self, index: u64) -> Option<(&Address, &(AccountFields, Slots))> {
        let len = self.accounts.len() as u64;
        (len > 0)
            .then(|| self.accounts.iter().nth((index % len) as usize))
            .flatten()
    }
}

/// A storage root by alloy-trie.
pub fn expected_storage_root(slots: &Slots) -> B256 {
    storage_root_unhashed(slots.iter().map(|(slot, value)| (*slot, *value)))
}

/// A random change set touching about `touches` accounts of `model` (each at most once): field
/// changes, new accounts, deleted accounts (with all their slots zero), destroyed and recreated
/// accounts, slot inserts, changes and removals, storage emptied, and changes that change
/// nothing (a slot set to its value, an absent slot or account removed).
pub fn random_changes(rng: &mut Rng, model: &Model, touches: usize) -> StateChanges {
    let mut changes = StateChanges::new();
    let mut touched = BTreeSet::new();
    for _ in 0..touches {
        let kind = rng.below(100);
        let existing = model
            .nth(rng.next_u64())
            .map(|(address, state)| (*address, state.clone()));
        let Some((address, (fields, slots))) = existing.filter(|_| kind < 80) else {
            let address = rng.address();
            if kind < 95 {
                changes.set_account(address, rng.fields());
                for _ in 0..rng.below(25) {
                    changes.set_slot(address, rng.b256(), rng.value());
                }
            } else {
                changes.delete_account(address);
            }
            continue;
        };
        if !touched.insert(address) {
            continue;
        }
        match kind {
            0..=29 => {
                changes.set_account(address, rng.fields());
                if rng.chance(50) {
                    change_slots(rng, &mut changes, address, &slots);
                }
            }
            30..=49 => {
                if slots.is_empty() {
                    changes.set_slot(address, rng.b256(), rng.value());
                } else {
                    change_slots(rng, &mut changes, address, &slots);
                }
            }
            50..=64 => {
                changes.delete_account(address);
                for slot in slots.keys() {
                    changes.set_slot(address, *slot, U256::ZERO);
                }
            }
            65..=71 => {
                // Destroyed and created again: old slots gone, some new ones.
                changes.set_account(address, rng.fields());
                for slot in slots.keys() {
                    changes.set_slot(address, *slot, U256::ZERO);
                }
                for _ in 0..rng.below(5) {
                    changes.set_slot(address, rng.b256(), rng.value());
                }
            }
            72..=75 => {
                for slot in slots.keys() {
                    changes.set_slot(address, *slot, U256::ZERO);
                }
                changes.set_slot(address, rng.b256(), U256::ZERO);
            }
            _ => {
                changes.set_account(address, fields);
                if let Some((slot, value)) = slots.iter().next() {
                    changes.set_slot(address, *slot, *value);
                }
                changes.set_slot(address, rng.b256(), U256::ZERO);
            }
        }
    }
    changes
}

/// Inserts, changes and removes a few slots of an account holding `slots`.
fn change_slots(rng: &mut Rng, changes: &mut StateChanges, address: Address, slots: &Slots) {
    for _ in 0..rng.below(8) + 1 {
        let existing = (!slots.is_empty())
            .then(|| slots.keys().nth(rng.below(slots.len() as u64) as usize))
            .flatten();
        match (rng.below(3), existing) {
            (0, Some(slot)) => changes.set_slot(address, *slot, rng.value()),
            (1, Some(slot)) => changes.set_slot(address, *slot, U256::ZERO),
            _ => changes.set_slot(address, rng.b256(), rng.value()),
        }
    }
}

/// The stored nodes of one storage trie.
pub fn storage_nodes_of(store: &MemoryNodes, address: Address) -> Vec<NodeKey> {
    store
        .stored()
        .keys()
        .filter(|key| key.address() == Some(address))
        .copied()
        .collect()
}
