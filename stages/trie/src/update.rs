//! [`StateTrie`]: incremental updates of the stored account and storage tries from a
//! [`StateChanges`], giving the new state root, the storage roots of the accounts touched and
//! the node changes with their pre-values ([`TrieUpdate`]); the same computation without the
//! node changes gives a dry root ([`StateTrie::root_after`]). Keeps the top levels of the account
//! trie in memory between updates.

use std::collections::{BTreeMap, HashMap};

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_rlp::Decodable;
use alloy_trie::{Nibbles, TrieAccount, EMPTY_ROOT_HASH};
use rayon::prelude::*;

use crate::cache::TopNodes;
use crate::level::ReadNode;
use crate::partial::PartialTrie;
use crate::reveal::{reveal, ChangedKey, RevealTarget};
use crate::walk::walk;
use crate::{
    AccountChange, AccountUpdate, NodeKey, NodeSource, StateChanges, TrieError, UpdateError,
};

/// Default number of account-trie levels kept in memory: paths of up to 4 nibbles, at most
/// 69,905 nodes (≈ 37 MB of branch nodes when the trie is full there, as on a mainnet-sized
/// state), which spares an update five of the seven or eight levels it reads on such a state.
pub const DEFAULT_CACHED_LEVELS: usize = 5;

/// Tries with at least this many changed keys encode the children of their top branches on the
/// rayon pool; smaller ones are quicker on one thread than the pool's hand-off.
const PARALLEL_MIN_KEYS: usize = 256;

/// How many levels of branches split their children across the pool (16 then 256 tasks).
const PARALLEL_LEVELS: usize = 2;

/// One stored node's change: its key, the value before (`None`: absent) and after (`None`:
/// removed). Applying the post-values turns the stored trie into the new one; applying the
/// pre-values undoes that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeChange {
    /// The node's key.
    pub key: NodeKey,
    /// The stored value before the update.
    pub pre: Option<Bytes>,
    /// The stored value after the update.
    pub post: Option<Bytes>,
}

/// The result of an update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrieUpdate {
    /// The state root after the update.
    pub state_root: B256,
    /// The storage root after the update of every account the change set touches (the empty
    /// root for a deleted account).
    pub storage_roots: BTreeMap<Address, B256>,
    /// The stored nodes that change, sorted by key, each once.
    pub node_changes: Vec<NodeChange>,
}

/// Updates the stored state tries. Holds the cache of the top levels of the account trie: every
/// node it holds is the store's current value, as long as the caller writes each update's node
/// changes (or tells the cache otherwise: [`Self::revert_cache`], [`Self::clear_cache`]).
#[derive(Debug)]
pub struct StateTrie {
    cache: TopNodes,
}

impl Default for StateTrie {
    fn default() -> Self {
        Self::new(DEFAULT_CACHED_LEVELS)
    }
}

/// One account of a change set, keys hashed.
struct Prepared<'a> {
    address: Address,
    hashed: Nibbles,
    change: &'a AccountChange,
    /// Its slots, hashed and sorted, with their new values.
    slots: Vec<(Nibbles, U256)>,
}

/// A storage trie after its update.
struct StorageOutcome {
    old_root: B256,
    new_root: B256,
    changes: Vec<NodeChange>,
}

impl StateTrie {
    /// An updater keeping the account-trie nodes of paths shorter than `cached_levels` nibbles
    /// in memory (0: none). At most 16^0 + … + 16^(cached_levels−1) nodes of up to 532 bytes.
    pub fn new(cached_levels: usize) -> Self {
        Self {
            cache: TopNodes::new(cached_levels),
        }
    }

    /// How many top levels of the account trie it keeps.
    pub const fn cached_levels(&self) -> usize {
        self.cache.levels()
    }

    /// How many nodes the cache holds now.
    pub fn cached_nodes(&self) -> usize {
        self.cache.len()
    }

    /// Computes the update of the stored tries by `changes`: the new state root, every touched
    /// account's storage root and the node changes (with pre-values) the caller writes. Reads
    /// level by level, one `source` call per level for all tries; storage tries are updated on
    /// the rayon pool. The cache takes the node changes as if written: if the caller does not
    /// write them, it must call [`Self::revert_cache`] (or [`Self::clear_cache`]).
    pub fn update<S: NodeSource>(
        &mut self,
        source: &S,
        changes: &StateChanges,
    ) -> Result<TrieUpdate, UpdateError<S::Error>> {
        let update = self.compute(source, changes, true)?;
        self.cache.apply(&update.node_changes, true);
        Ok(update)
    }

    /// The state root the stored state would have with `changes` applied, without listing node
    /// changes or touching the cache's contents (besides remembering nodes read). The same
    /// computation as [`Self::update`].
    pub fn root_after<S: NodeSource>(
        &mut self,
        source: &S,
        changes: &StateChanges,
    ) -> Result<B256, UpdateError<S::Error>> {
        Ok(self.compute(source, changes, false)?.state_root)
    }

    /// Reads the top levels of the account trie into the cache (one call per level), so the
    /// first update does not pay for them.
    pub fn warm_cache<S: NodeSource>(&mut self, source: &S) -> Result<(), UpdateError<S::Error>> {
        let levels = self.cache.levels();
        if levels > 0 {
            walk(
                source,
                &mut self.cache,
                NodeKey::Account(Nibbles::new()),
                levels,
            )?;
        }
        Ok(())
    }

    /// Tells the cache that `changes` were undone in the store (each key back at its
    /// pre-value), e.g. after an unwind or when an update's changes are not written.
    pub fn revert_cache(&mut self, changes: &[NodeChange]) {
        self.cache.apply(changes, false);
    }

    /// Empties the cache (e.g. when the store's tries were changed by other means).
    pub fn clear_cache(&mut self) {
        self.cache.clear();
    }

    fn compute<S: NodeSource>(
        &mut self,
        source: &S,
        changes: &StateChanges,
        list_changes: bool,
    ) -> Result<TrieUpdate, UpdateError<S::Error>> {
        let accounts = prepare(changes);
        let account_keys = accounts.iter().map(|a| ChangedKey {
            path: a.hashed,
            removes: a.change.account == AccountUpdate::Deleted,
        });
        let mut targets = vec![RevealTarget {
            root: NodeKey::Account(Nibbles::new()),
            keys: account_keys.collect(),
        }];
        let with_storage = accounts.iter().filter(|a| !a.slots.is_empty());
        targets.extend(with_storage.map(Prepared::storage_target));
        let mut revealed = reveal(source, &mut self.cache, &targets)?.into_iter();
        let account_nodes = revealed.next().unwrap_or_default();

        // The storage tries first (on the pool): the account leaves hold their roots.
        let storage_inputs: Vec<(&Prepared<'_>, Option<HashMap<Nibbles, ReadNode>>)> = accounts
            .iter()
            .map(|a| (a, (!a.slots.is_empty()).then(|| revealed.next()).flatten()))
            .collect();
        let storage: Vec<Option<StorageOutcome>> = storage_inputs
            .into_par_iter()
            .map(|(account, nodes)| {
                let update = |nodes| update_storage(account, nodes, list_changes);
                nodes.map(update).transpose()
            })
            .collect::<Result<_, TrieError>>()?;

        let mut trie = PartialTrie::new(NodeKey::Account(Nibbles::new()), account_nodes)?;
        let mut storage_roots = BTreeMap::new();
        let mut storage_changes = Vec::new();
        for (account, outcome) in accounts.iter().zip(storage) {
            let roots = outcome.map(|outcome| {
                storage_changes.push((account.address, outcome.changes));
                (outcome.old_root, outcome.new_root)
            });
            let storage_root = account.update_leaf(&mut trie, roots)?;
            storage_roots.insert(account.address, storage_root);
        }
        let (state_root, mut node_changes) =
            trie.finish(list_changes, parallel_levels(accounts.len()));
        storage_changes.sort_unstable_by_key(|a| a.0);
        node_changes.extend(storage_changes.into_iter().flat_map(|(_, changes)| changes));
        Ok(TrieUpdate {
            state_root,
            storage_roots,
            node_changes,
        })
    }
}

/// The accounts `changes` touches, keys hashed, sorted by hashed address.
fn prepare(changes: &StateChanges) -> Vec<Prepared<'_>> {
    let mut accounts: Vec<Prepared<'_>> = changes
        .accounts
        .par_iter()
        .filter(|(_, change)| {
            change.account != AccountUpdate::Unchanged || !change.storage.is_empty()
        })
        .map(|(address, change)| {
            let mut slots: Vec<(Nibbles, U256)> = change
                .storage
                .iter()
                .map(|(slot, value)| (Nibbles::unpack(keccak256(slot)), *value))
                .collect();
            slots.sort_unstable_by_key(|a| a.0);
            Prepared {
                address: *address,
                hashed: Nibbles::unpack(keccak256(address)),
                change,
                slots,
            }
        })
        .collect();
    accounts.sort_unstable_by_key(|a| a.hashed);
    accounts
}

impl Prepared<'_> {
    /// What to read of the account's storage trie.
    fn storage_target(&self) -> RevealTarget {
        let keys = self.slots.iter().map(|(path, value)| ChangedKey {
            path: *path,
            removes: value.is_zero(),
        });
        RevealTarget {
            root: NodeKey::Storage(self.address, Nibbles::new()),
            keys: keys.collect(),
        }
    }

    /// Writes the account's new leaf into the account trie, given its storage trie's roots
    /// before and after the update (`None`: its storage did not change); returns its storage
    /// root. Checks the stored storage trie against the leaf, and the deletion contract.
    fn update_leaf(
        &self,
        trie: &mut PartialTrie,
        storage: Option<(B256, B256)>,
    ) -> Result<B256, TrieError> {
        let address = self.address;
        let old = match trie.get(&self.hashed)? {
            Some(mut leaf) => Some(
                TrieAccount::decode(&mut leaf)
                    .map_err(|source| TrieError::MalformedAccount { address, source })?,
            ),
            None => None,
        };
        let in_leaf = old.map_or(EMPTY_ROOT_HASH, |old| old.storage_root);
        let storage_root = match storage {
            Some((in_trie, _)) if in_trie != in_leaf => {
                return Err(TrieError::StorageRootMismatch {
                    address,
                    in_leaf,
                    in_trie,
                });
            }
            Some((_, new_root)) => new_root,
            None => in_leaf,
        };
        let leaf = match (self.change.account, old) {
            (AccountUpdate::Deleted, _) if storage_root != EMPTY_ROOT_HASH => {
                return Err(TrieError::StorageNotCleared {
                    address,
                    storage_root,
                });
            }
            (AccountUpdate::Deleted, _) => None,
            (AccountUpdate::Set(fields), _) => Some(TrieAccount::new(
                fields.nonce,
                fields.balance,
                storage_root,
                fields.code_hash,
            )),
            (AccountUpdate::Unchanged, Some(old)) => Some(TrieAccount {
                storage_root,
                ..old
            }),
            // Only zeros for an absent account (e.g. created and destroyed within the change
            // set's span): nothing to store.
            (AccountUpdate::Unchanged, None) if storage_root == EMPTY_ROOT_HASH => {
                return Ok(storage_root);
            }
            (AccountUpdate::Unchanged, None) => {
                return Err(TrieError::StorageWithoutAccount { address });
            }
        };
        match leaf {
            Some(leaf) => trie.insert(&self.hashed, alloy_rlp::encode(leaf))?,
            None => trie.delete(&self.hashed)?,
        }
        Ok(storage_root)
    }
}

/// Updates one account's storage trie with its slots.
fn update_storage(
    account: &Prepared<'_>,
    nodes: HashMap<Nibbles, ReadNode>,
    list_changes: bool,
) -> Result<StorageOutcome, TrieError> {
    let mut trie = PartialTrie::new(NodeKey::Storage(account.address, Nibbles::new()), nodes)?;
    let old_root = trie.old_root();
    for (key, value) in &account.slots {
        if value.is_zero() {
            trie.delete(key)?;
        } else {
            trie.insert(key, alloy_rlp::encode(value))?;
        }
    }
    let (new_root, changes) = trie.finish(list_changes, parallel_levels(account.slots.len()));
    Ok(StorageOutcome {
        old_root,
        new_root,
        changes,
    })
}

/// How many levels of a trie with `changed_keys` changed keys encode in parallel.
const fn parallel_levels(changed_keys: usize) -> usize {
    if changed_keys >= PARALLEL_MIN_KEYS {
        PARALLEL_LEVELS
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use alloy_trie::root::storage_root;

    use super::*;
    use crate::builder::tests::crowded_key;
    use crate::{MemoryNodes, StorageTrieBuilder};

    /// A number picked by `seed` and `i`.
    fn pick(seed: u64, i: u64) -> u64 {
        let hash = keccak256([seed.to_be_bytes(), i.to_be_bytes()].concat());
        u64::from_be_bytes(hash[..8].try_into().unwrap())
    }

    /// Updates the storage trie of `address` in `store` by slots given as hashed keys (so keys
    /// can be crowded enough for inlined nodes, which keccak keys never are).
    fn update_hashed(
        store: &MemoryNodes,
        address: Address,
        slots: &BTreeMap<B256, U256>,
        list_changes: bool,
    ) -> StorageOutcome {
        let change = AccountChange::default();
        let prepared = Prepared {
            address,
            hashed: Nibbles::unpack(keccak256(address)),
            change: &change,
            slots: slots
                .iter()
                .map(|(key, value)| (Nibbles::unpack(key), *value))
                .collect(),
        };
        let target = prepared.storage_target();
        let mut revealed = reveal(store, &mut TopNodes::new(0), &[target]).unwrap();
        update_storage(&prepared, revealed.pop().unwrap(), list_changes).unwrap()
    }

    fn rebuilt(address: Address, slots: &BTreeMap<B256, U256>) -> BTreeMap<NodeKey, Bytes> {
        let mut builder = StorageTrieBuilder::new(address);
        for (key, value) in slots {
            builder.add_slot(*key, *value).unwrap();
        }
        builder.finish().1.into_iter().collect()
    }

    #[test]
    fn crowded_trie_with_inlined_nodes_updates_like_a_rebuild() {
        let address = Address::repeat_byte(0x42);
        let mut slots: BTreeMap<B256, U256> = BTreeMap::new();
        let mut store = MemoryNodes::new();
        let mut root = EMPTY_ROOT_HASH;
        let mut inlined_seen = false;
        for round in 0..400u64 {
            let mut changes = BTreeMap::new();
            let crowded = slots.len() > 40;
            for j in 0..1 + pick(round, 0) % 12 {
                let r = pick(round, j + 1);
                let key = match slots.keys().nth((r % 997) as usize % slots.len().max(1)) {
                    Some(existing) if r.is_multiple_of(2) => *existing,
                    _ => crowded_key(round, j),
                };
                let remove = if crowded { r % 10 < 7 } else { r % 10 < 2 };
                changes.insert(
                    key,
                    if remove {
                        U256::ZERO
                    } else {
                        U256::from(r % 300 + 1)
                    },
                );
            }
            if round % 50 == 49 {
                // Empty the trie now and then: every slot removed.
                changes = slots.keys().map(|key| (*key, U256::ZERO)).collect();
            }
            let dry = update_hashed(&store, address, &changes, false);
            let outcome = update_hashed(&store, address, &changes, true);
            assert_eq!(outcome.old_root, root, "round {round}");
            for (key, value) in &changes {
                if value.is_zero() {
                    slots.remove(key);
                } else {
                    slots.insert(*key, *value);
                }
            }
            root = storage_root(slots.iter().map(|(key, value)| (*key, *value)));
            assert_eq!(outcome.new_root, root, "round {round}");
            assert_eq!(dry.new_root, root, "round {round}: dry root");
            assert!(dry.changes.is_empty());
            let before = store.stored().clone();
            store.apply(&outcome.changes);
            let expected = rebuilt(address, &slots);
            assert_eq!(
                store.stored(),
                &expected,
                "round {round}: nodes differ from a rebuild"
            );
            inlined_seen |= expected.values().any(|rlp| has_inlined_child(rlp));
            store.revert(&outcome.changes);
            assert_eq!(store.stored(), &before, "round {round}: undo");
            store.apply(&outcome.changes);
        }
        assert!(inlined_seen, "the crowded keys produced no inlined node");
    }

    /// Whether a stored branch or extension holds a child inlined (not a 33-byte hash).
    fn has_inlined_child(rlp: &[u8]) -> bool {
        match crate::node::decode_node(NodeKey::Account(Nibbles::new()), rlp) {
            Ok(alloy_trie::nodes::TrieNode::Branch(branch)) => {
                branch.stack.iter().any(|c| c.as_hash().is_none())
            }
            Ok(alloy_trie::nodes::TrieNode::Extension(ext)) => ext.child.as_hash().is_none(),
            _ => false,
        }
    }
}
