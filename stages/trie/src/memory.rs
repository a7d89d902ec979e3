//! [`MemoryNodes`]: a [`NodeSource`] over a map in memory, for tests and small tools; it counts
//! the calls and keys asked, and applies or undoes an update's node changes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};

use alloy_primitives::Bytes;

use crate::{NodeChange, NodeKey, NodeSource};

/// Stored trie nodes in memory.
#[derive(Debug, Default)]
pub struct MemoryNodes {
    nodes: BTreeMap<NodeKey, Bytes>,
    calls: AtomicUsize,
    keys_read: AtomicUsize,
}

impl MemoryNodes {
    /// No nodes.
    pub fn new() -> Self {
        Self::default()
    }

    /// The nodes stored.
    pub const fn stored(&self) -> &BTreeMap<NodeKey, Bytes> {
        &self.nodes
    }

    /// Stores `value` at `key`.
    pub fn insert(&mut self, key: NodeKey, value: Bytes) {
        self.nodes.insert(key, value);
    }

    /// Writes the post-values of `changes`.
    pub fn apply(&mut self, changes: &[NodeChange]) {
        for change in changes {
            self.set(change.key, change.post.clone());
        }
    }

    /// Writes the pre-values of `changes` (undoes [`Self::apply`]).
    pub fn revert(&mut self, changes: &[NodeChange]) {
        for change in changes {
            self.set(change.key, change.pre.clone());
        }
    }

    fn set(&mut self, key: NodeKey, value: Option<Bytes>) {
        match value {
            Some(value) => self.nodes.insert(key, value),
            None => self.nodes.remove(&key),
        };
    }

    /// How many times [`NodeSource::nodes`] was called.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// How many keys were asked in all.
    pub fn keys_read(&self) -> usize {
        self.keys_read.load(Ordering::Relaxed)
    }

    /// Sets both counters back to zero.
    pub fn reset_counters(&self) {
        self.calls.store(0, Ordering::Relaxed);
        self.keys_read.store(0, Ordering::Relaxed);
    }
}

impl FromIterator<(NodeKey, Bytes)> for MemoryNodes {
    fn from_iter<I: IntoIterator<Item = (NodeKey, Bytes)>>(nodes: I) -> Self {
        Self {
            nodes: nodes.into_iter().collect(),
            ..Self::default()
        }
    }
}

impl NodeSource for MemoryNodes {
    type Error = Infallible;

    fn nodes(&self, keys: &[NodeKey]) -> Result<Vec<Option<Bytes>>, Infallible> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.keys_read.fetch_add(keys.len(), Ordering::Relaxed);
        Ok(keys
            .iter()
            .map(|key| self.nodes.get(key).cloned())
            .collect())
    }
}
