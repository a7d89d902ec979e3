//! Change sets that break the contract and stores that are not a valid trie give typed errors
//! naming the account or node; the source's own errors pass through.

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_trie::{Nibbles, EMPTY_ROOT_HASH};
use state_trie::{
    MemoryNodes, NodeKey, NodeSource, StateChanges, StateTrie, TrieError, UpdateError,
};

use crate::model::{expected_storage_root, Model, Rng};

fn trie_error<E: std::fmt::Debug>(
    result: Result<impl std::fmt::Debug, UpdateError<E>>,
) -> TrieError {
    match result {
        Err(UpdateError::Trie(error)) => error,
        other => panic!("expected a trie error, got {other:?}"),
    }
}

/// A state of 100 accounts and the address of one with storage.
fn state_with_storage() -> (Model, MemoryNodes, Address) {
    let mut rng = Rng::new(31);
    let model = Model::random(&mut rng, 100);
    let store = model.store();
    let address = *model
        .accounts
        .iter()
        .find(|(_, (_, slots))| slots.len() > 3)
        .unwrap()
        .0;
    (model, store, address)
}

#[test]
fn a_deleted_account_must_zero_every_slot() {
    let (model, store, address) = state_with_storage();
    let slots = &model.accounts[&address].1;
    let mut changes = StateChanges::new();
    changes.delete_account(address);
    let error = trie_error(StateTrie::new(0).update(&store, &changes));
    assert_eq!(
        error,
        TrieError::StorageNotCleared {
            address,
            storage_root: expected_storage_root(slots)
        }
    );

    // All but one slot zeroed: still refused.
    for slot in slots.keys().skip(1) {
        changes.set_slot(address, *slot, U256::ZERO);
    }
    let error = trie_error(StateTrie::new(0).update(&store, &changes));
    assert!(
        matches!(error, TrieError::StorageNotCleared { address: a, .. } if a == address),
        "{error}"
    );
    assert!(error.to_string().contains(&address.to_string()), "{error}");
}

#[test]
fn slots_of_an_absent_account_are_refused_unless_zero() {
    let (_, store, _) = state_with_storage();
    let address = Address::repeat_byte(0xee);
    let mut changes = StateChanges::new();
    changes.set_slot(address, B256::ZERO, U256::from(1));
    assert_eq!(
        trie_error(StateTrie::new(0).update(&store, &changes)),
        TrieError::StorageWithoutAccount { address }
    );

    // Only zeros for an absent account change nothing.
    let mut zeros = StateChanges::new();
    zeros.set_slot(address, B256::ZERO, U256::ZERO);
    let update = StateTrie::new(0).update(&store, &zeros).unwrap();
    assert!(update.node_changes.is_empty());
    assert_eq!(update.storage_roots[&address], EMPTY_ROOT_HASH);
}

/// The key of the account's leaf in `store`.
fn leaf_key(store: &MemoryNodes, address: Address) -> NodeKey {
    let hashed = Nibbles::unpack(keccak256(address));
    (0..=64)
        .rev()
        .map(|len| NodeKey::Account(hashed.slice(..len)))
        .find(|key| store.stored().contains_key(key))
        .unwrap()
}

fn touch(address: Address) -> StateChanges {
    let mut changes = StateChanges::new();
    changes.set_account(address, Default::default());
    changes
}

#[test]
fn a_missing_node_is_named() {
    let (_, mut store, address) = state_with_storage();
    let leaf = leaf_key(&store, address);
    let value = store.stored()[&leaf].clone();
    let mut without: MemoryNodes = store
        .stored()
        .clone()
        .into_iter()
        .filter(|(key, _)| *key != leaf)
        .collect();
    let error = trie_error(StateTrie::new(0).update(&without, &touch(address)));
    assert_eq!(
        error,
        TrieError::MissingNode {
            key: leaf,
            hash: keccak256(&value)
        }
    );

    without.insert(leaf, Bytes::from_static(b"\xc2\x80\x80"));
    let error = trie_error(StateTrie::new(0).update(&without, &touch(address)));
    assert_eq!(
        error,
        TrieError::NodeHashMismatch {
            key: leaf,
            expected: keccak256(&value)
        }
    );

    store.insert(
        NodeKey::Account(Nibbles::new()),
        Bytes::from_static(b"\x01\x02"),
    );
    let error = trie_error(StateTrie::new(0).update(&store, &touch(address)));
    assert!(
        matches!(error, TrieError::UndecodableNode { key: NodeKey::Account(path), .. } if path.is_empty()),
        "{error}"
    );
}

#[test]
fn a_storage_trie_that_disagrees_with_its_account_is_refused() {
    let (model, store, address) = state_with_storage();
    let root_key = NodeKey::Storage(address, Nibbles::new());
    let without: MemoryNodes = store
        .stored()
        .clone()
        .into_iter()
        .filter(|(key, _)| *key != root_key)
        .collect();
    let mut changes = StateChanges::new();
    changes.set_slot(address, B256::repeat_byte(1), U256::from(1));
    let error = trie_error(StateTrie::new(0).update(&without, &changes));
    let in_leaf = expected_storage_root(&model.accounts[&address].1);
    assert_eq!(
        error,
        TrieError::StorageRootMismatch {
            address,
            in_leaf,
            in_trie: EMPTY_ROOT_HASH
        }
    );
}

#[derive(Debug, thiserror::Error)]
#[error("store unreachable")]
struct Unreachable;

/// A source that fails, or answers with one value too few.
struct Faulty {
    fail: bool,
}

impl NodeSource for Faulty {
    type Error = Unreachable;

    fn nodes(&self, keys: &[NodeKey]) -> Result<Vec<Option<Bytes>>, Unreachable> {
        if self.fail {
            Err(Unreachable)
        } else {
            Ok(vec![None; keys.len().saturating_sub(1)])
        }
    }
}

#[test]
fn source_errors_pass_through_and_short_answers_are_refused() {
    let changes = touch(Address::ZERO);
    let error = StateTrie::new(0)
        .update(&Faulty { fail: true }, &changes)
        .unwrap_err();
    assert!(matches!(error, UpdateError::Source(Unreachable)), "{error}");
    let error = trie_error(StateTrie::new(0).update(&Faulty { fail: false }, &changes));
    assert_eq!(error, TrieError::WrongValueCount { asked: 1, got: 0 });
}
