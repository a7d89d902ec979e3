//! Random states and random update sequences: every root against alloy-trie's, every node set
//! against a from-scratch build of the same state, every update undone by its pre-values.

use std::collections::BTreeMap;

use alloy_trie::EMPTY_ROOT_HASH;
use state_trie::{MemoryNodes, StateChanges, StateTrie};

use crate::model::{expected_storage_root, random_changes, Model, Rng};

#[test]
fn random_states_build_to_alloy_roots() {
    let mut rng = Rng::new(7);
    for size in [0, 1, 2, 3, 10, 100, 700] {
        let model = Model::random(&mut rng, size);
        let built = model.built();
        assert_eq!(built.state_root, model.expected_root(), "{size} accounts");
        for (address, (_, slots)) in &model.accounts {
            assert_eq!(
                built.storage_roots[address],
                expected_storage_root(slots),
                "{address}"
            );
        }
    }
}

/// Applies `changes` to `store` through `trie` and checks the update against the model: roots,
/// storage roots, the node changes' order and pre-values, the node set against a rebuild, and
/// the undo.
fn check_update(
    trie: &mut StateTrie,
    store: &mut MemoryNodes,
    model: &mut Model,
    changes: &StateChanges,
    what: &str,
) {
    let dry = trie.root_after(store, changes).unwrap();
    let update = trie.update(store, changes).unwrap();
    model.apply(changes);
    let expected = model.expected_root();
    assert_eq!(update.state_root, expected, "{what}: state root");
    assert_eq!(dry, expected, "{what}: dry root");

    let touched: Vec<_> = changes
        .accounts
        .iter()
        .filter(|(_, change)| {
            change.account != state_trie::AccountUpdate::Unchanged || !change.storage.is_empty()
        })
        .map(|(address, _)| *address)
        .collect();
    assert_eq!(
        update.storage_roots.keys().copied().collect::<Vec<_>>(),
        touched,
        "{what}: accounts touched"
    );
    for (address, root) in &update.storage_roots {
        let expected = model
            .accounts
            .get(address)
            .map_or(EMPTY_ROOT_HASH, |(_, slots)| expected_storage_root(slots));
        assert_eq!(*root, expected, "{what}: storage root of {address}");
    }

    assert!(
        update
            .node_changes
            .windows(2)
            .all(|pair| pair[0].key < pair[1].key),
        "{what}: changes sorted, distinct"
    );
    for change in &update.node_changes {
        assert_eq!(
            store.stored().get(&change.key),
            change.pre.as_ref(),
            "{what}: pre-value of {}",
            change.key
        );
        assert_ne!(
            change.pre, change.post,
            "{what}: {} listed without a change",
            change.key
        );
    }

    let before = store.stored().clone();
    store.apply(&update.node_changes);
    let rebuilt: BTreeMap<_, _> = model.built().nodes.into_iter().collect();
    assert_eq!(
        store.stored(),
        &rebuilt,
        "{what}: nodes differ from a rebuild of the same state"
    );

    let mut undone: MemoryNodes = store.stored().clone().into_iter().collect();
    undone.revert(&update.node_changes);
    assert_eq!(undone.stored(), &before, "{what}: undo by pre-values");
}

/// `rounds` random change sets of up to `max_touches` accounts each, from a random state of
/// `accounts` accounts, each checked by [`check_update`].
fn random_rounds(
    seed: u64,
    accounts: usize,
    cached_levels: usize,
    rounds: usize,
    max_touches: u64,
) {
    let mut rng = Rng::new(seed);
    let mut model = Model::random(&mut rng, accounts);
    let mut store = model.store();
    let mut trie = StateTrie::new(cached_levels);
    for round in 0..rounds {
        let touches = 1 + rng.below(max_touches) as usize;
        let changes = random_changes(&mut rng, &model, touches);
        let what = format!("seed {seed} round {round}");
        check_update(&mut trie, &mut store, &mut model, &changes, &what);
    }
}

#[test]
fn random_update_sequences_match_alloy_and_a_rebuild() {
    for seed in 1..=3 {
        random_rounds(seed, 300, 3, 40, 60);
    }
}

#[test]
fn tiny_states_fold_and_unfold_at_the_root() {
    // With a handful of accounts, deletions fold the root branch into an extension or a leaf
    // and insertions split it again.
    random_rounds(11, 4, 2, 300, 3);
}

#[test]
fn a_state_grows_from_empty_and_shrinks_to_empty() {
    let mut rng = Rng::new(5);
    let full = Model::random(&mut rng, 200);
    let mut model = Model::default();
    let mut store = MemoryNodes::new();
    let mut trie = StateTrie::default();
    check_update(
        &mut trie,
        &mut store,
        &mut model,
        &full.as_changes(),
        "grow",
    );
    assert_eq!(model.accounts, full.accounts);

    let mut remove_all = StateChanges::new();
    for (address, (_, slots)) in &full.accounts {
        remove_all.delete_account(*address);
        for slot in slots.keys() {
            remove_all.set_slot(*address, *slot, alloy_primitives::U256::ZERO);
        }
    }
    check_update(&mut trie, &mut store, &mut model, &remove_all, "shrink");
    assert!(store.stored().is_empty());
    assert_eq!(
        trie.root_after(&store, &StateChanges::new()).unwrap(),
        EMPTY_ROOT_HASH
    );
}

#[test]
fn an_empty_change_set_reads_the_root_only_and_keeps_it() {
    let mut rng = Rng::new(9);
    let model = Model::random(&mut rng, 50);
    let store = model.store();
    let update = StateTrie::new(0)
        .update(&store, &StateChanges::new())
        .unwrap();
    assert_eq!(update.state_root, model.expected_root());
    assert!(update.node_changes.is_empty() && update.storage_roots.is_empty());
    assert_eq!(
        (store.calls(), store.keys_read()),
        (1, 1),
        "the account trie's root only"
    );
}
