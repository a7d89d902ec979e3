//! [`TopNodes`]: the top levels of the account trie kept in memory between updates, so an update
//! does not read them again. Filled by reads, kept current by each update's node changes.

use std::collections::HashMap;

use alloy_primitives::Bytes;
use alloy_trie::Nibbles;

use crate::{NodeChange, NodeKey};

/// The account-trie nodes whose path is shorter than `levels` nibbles, as far as they were read
/// or written. An entry is exactly what the store holds at that key; a missing entry is unknown
/// (read from the source). Bound: 16^0 + … + 16^(levels−1) nodes of at most 532 bytes each.
#[derive(Debug, Default)]
pub(crate) struct TopNodes {
    levels: usize,
    nodes: HashMap<Nibbles, Bytes>,
}

impl TopNodes {
    /// An empty cache of the top `levels` levels (0: no cache).
    pub(crate) fn new(levels: usize) -> Self {
        Self {
            levels,
            nodes: HashMap::new(),
        }
    }

    /// How many levels it covers.
    pub(crate) const fn levels(&self) -> usize {
        self.levels
    }

    /// How many nodes it holds.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The path of `key` if the cache covers it.
    fn covered<'a>(&self, key: &'a NodeKey) -> Option<&'a Nibbles> {
        match key {
            NodeKey::Account(path) if path.len() < self.levels => Some(path),
            _ => None,
        }
    }

    /// The cached value of `key`.
    pub(crate) fn get(&self, key: &NodeKey) -> Option<Bytes> {
        self.covered(key)
            .and_then(|path| self.nodes.get(path))
            .cloned()
    }

    /// Remembers that the store holds `value` at `key` (ignored outside the covered levels).
    pub(crate) fn insert(&mut self, key: &NodeKey, value: Bytes) {
        if let Some(path) = self.covered(key) {
            self.nodes.insert(*path, value);
        }
    }

    /// Follows node changes written to the store: each key takes its post-value (`forward`) or
    /// its pre-value (an undo).
    pub(crate) fn apply(&mut self, changes: &[NodeChange], forward: bool) {
        for change in changes {
            let Some(path) = self.covered(&change.key) else {
                continue;
            };
            match if forward { &change.post } else { &change.pre } {
                Some(value) => self.nodes.insert(*path, value.clone()),
                None => self.nodes.remove(path),
            };
        }
    }

    /// Forgets every node.
    pub(crate) fn clear(&mut self) {
        self.nodes.clear();
    }
}
