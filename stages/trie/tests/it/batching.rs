//! Reads come in one batch per trie level, the cache of top account-trie nodes spares its levels
//! and never serves a stale node, and a storage trie can be listed level by level.

use std::cell::RefCell;
use std::convert::Infallible;

use alloy_primitives::Bytes;
use state_trie::{storage_trie_nodes, MemoryNodes, NodeKey, NodeSource, StateTrie};

use crate::model::{random_changes, storage_nodes_of, Model, Rng};

/// The most stored nodes on one path from a root down, over every trie of `store`: an update
/// reading level by level needs at most this many calls.
fn stored_levels(store: &MemoryNodes) -> usize {
    let nodes = store.stored();
    nodes
        .keys()
        .map(|key| {
            (0..=key.path().len())
                .filter(|&len| {
                    let prefix = key.path().slice(..len);
                    let ancestor = match key {
                        NodeKey::Account(_) => NodeKey::Account(prefix),
                        NodeKey::Storage(address, _) => NodeKey::Storage(*address, prefix),
                    };
                    nodes.contains_key(&ancestor)
                })
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// A source that remembers every key asked.
struct Recording<'a> {
    inner: &'a MemoryNodes,
    asked: RefCell<Vec<NodeKey>>,
}

impl NodeSource for Recording<'_> {
    type Error = Infallible;

    fn nodes(&self, keys: &[NodeKey]) -> Result<Vec<Option<Bytes>>, Infallible> {
        self.asked.borrow_mut().extend_from_slice(keys);
        self.inner.nodes(keys)
    }
}

#[test]
fn an_update_reads_one_batch_per_level() {
    let mut rng = Rng::new(21);
    let model = Model::random(&mut rng, 5000);
    let store = model.store();
    let levels = stored_levels(&store);
    for touches in [1, 30, 1000] {
        let changes = random_changes(&mut rng, &model, touches);
        let changed_keys: usize = changes
            .accounts
            .values()
            .map(|change| 1 + change.storage.len())
            .sum();
        store.reset_counters();
        StateTrie::new(0).update(&store, &changes).unwrap();
        let (calls, keys) = (store.calls(), store.keys_read());
        assert!(
            calls <= levels,
            "{touches} accounts: {calls} calls for a trie of {levels} levels"
        );
        assert!(
            calls >= 3,
            "{touches} accounts: {calls} calls; the account trie alone has more levels"
        );
        assert!(
            keys <= 2 * levels * changed_keys,
            "{touches} accounts: {keys} keys read for {changed_keys} changed keys"
        );
        store.reset_counters();
        StateTrie::new(0).root_after(&store, &changes).unwrap();
        assert_eq!(
            (store.calls(), store.keys_read()),
            (calls, keys),
            "the dry root reads the same"
        );
    }
}

#[test]
fn the_cache_spares_the_top_levels_and_stays_current() {
    const LEVELS: usize = 3;
    let mut rng = Rng::new(22);
    let mut model = Model::random(&mut rng, 3000);
    let mut store = model.store();
    let mut cached = StateTrie::new(LEVELS);
    cached.warm_cache(&store).unwrap();
    assert_eq!(store.calls(), LEVELS, "one call per cached level");
    let full = 1 + 16 + 256;
    assert_eq!(
        cached.cached_nodes(),
        full,
        "3,000 accounts fill the top three levels"
    );

    for round in 0..30 {
        let touches = 1 + rng.below(200) as usize;
        let changes = random_changes(&mut rng, &model, touches);
        let recording = Recording {
            inner: &store,
            asked: RefCell::new(Vec::new()),
        };
        let update = cached.update(&recording, &changes).unwrap();
        let top = recording
            .asked
            .borrow()
            .iter()
            .filter(|key| matches!(key, NodeKey::Account(path) if path.len() < LEVELS))
            .count();
        assert_eq!(top, 0, "round {round}: {top} cached nodes read again");
        assert!(cached.cached_nodes() <= full);
        // A cache holding a stale node would give another result (or a hash mismatch).
        let uncached = StateTrie::new(0).update(&store, &changes).unwrap();
        assert_eq!(update, uncached, "round {round}");
        if round % 3 == 2 {
            // Not written: the cache takes the pre-values back.
            cached.revert_cache(&update.node_changes);
        } else {
            store.apply(&update.node_changes);
            model.apply(&changes);
        }
    }
    assert_eq!(
        cached.root_after(&store, &Default::default()).unwrap(),
        model.expected_root()
    );
}

#[test]
fn a_storage_trie_is_listed_level_by_level() {
    let mut rng = Rng::new(23);
    let model = Model::random(&mut rng, 200);
    let store = model.store();
    let (address, _) = model
        .accounts
        .iter()
        .max_by_key(|(_, (_, slots))| slots.len())
        .unwrap();
    store.reset_counters();
    let listed = storage_trie_nodes(&store, *address).unwrap();
    let keys: Vec<NodeKey> = listed.iter().map(|(key, _)| *key).collect();
    assert_eq!(keys, storage_nodes_of(&store, *address));
    assert!(listed
        .iter()
        .all(|(key, value)| store.stored()[key] == *value));
    let levels = stored_levels(
        &storage_nodes_of(&store, *address)
            .into_iter()
            .map(|key| (key, store.stored()[&key].clone()))
            .collect(),
    );
    assert_eq!(store.calls(), levels, "one call per level");

    let (empty, _) = model
        .accounts
        .iter()
        .find(|(_, (_, slots))| slots.is_empty())
        .unwrap();
    assert!(storage_trie_nodes(&store, *empty).unwrap().is_empty());
}
