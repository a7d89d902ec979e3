//! [`PartialTrie`]: one trie as far as an update read it, changed leaf by leaf, then encoded into
//! its new root and the node changes (with pre-values) that turn the stored trie into the new
//! one.

use std::cmp::Ordering;
use std::collections::HashMap;

use alloy_primitives::{keccak256, B256};
use alloy_trie::nodes::RlpNode;
use alloy_trie::{Nibbles, EMPTY_ROOT_HASH};

use crate::level::ReadNode;
use crate::node::{Encoded, Node, StoredNodes};
use crate::{NodeChange, NodeKey, TrieError};

/// One trie in memory: the nodes read, the rest as hashes.
#[derive(Debug)]
pub(crate) struct PartialTrie {
    /// The key of its root (names the trie).
    root_key: NodeKey,
    root: Node,
    /// The root hash before any change.
    old_root: B256,
    /// The nodes read (the store's values), sorted by path.
    read: StoredNodes,
}

impl PartialTrie {
    /// The trie named by `root_key` from the nodes read for it (none: the trie is empty).
    pub(crate) fn new(
        root_key: NodeKey,
        mut nodes: HashMap<Nibbles, ReadNode>,
    ) -> Result<Self, TrieError> {
        let mut read: StoredNodes = nodes
            .iter()
            .map(|(path, node)| (*path, node.rlp.clone()))
            .collect();
        read.sort_unstable_by_key(|a| a.0);
        let (root, old_root) = match nodes.remove(&Nibbles::new()) {
            None => (Node::Empty, EMPTY_ROOT_HASH),
            Some(node) => {
                let hash = node.hash();
                (build(root_key, Nibbles::new(), node, &mut nodes)?, hash)
            }
        };
        Ok(Self {
            root_key,
            root,
            old_root,
            read,
        })
    }

    /// The root hash before any change.
    pub(crate) const fn old_root(&self) -> B256 {
        self.old_root
    }

    /// Sets the leaf of `key` (64 nibbles).
    pub(crate) fn insert(&mut self, key: &Nibbles, value: Vec<u8>) -> Result<(), TrieError> {
        self.root.insert(&self.root_key, 0, key, value).map(drop)
    }

    /// Removes the leaf of `key` if present.
    pub(crate) fn delete(&mut self, key: &Nibbles) -> Result<(), TrieError> {
        self.root.delete(&self.root_key, 0, key).map(drop)
    }

    /// The value of the leaf of `key`.
    pub(crate) fn get(&self, key: &Nibbles) -> Result<Option<&[u8]>, TrieError> {
        self.root.get(&self.root_key, 0, key)
    }

    /// Encodes the changed trie: its new root hash and, with `list_changes`, the node changes
    /// sorted by key (without, none). Branches less than `parallel_levels` deep encode their
    /// children on the rayon pool.
    pub(crate) fn finish(
        mut self,
        list_changes: bool,
        parallel_levels: usize,
    ) -> (B256, Vec<NodeChange>) {
        let mut stored = Vec::new();
        let root = match self.root {
            Node::Empty => EMPTY_ROOT_HASH,
            _ => {
                let listing = list_changes.then_some(&mut stored);
                let reference =
                    self.root
                        .finalize(Nibbles::new(), listing, &mut Vec::new(), parallel_levels);
                reference.as_hash().unwrap_or_else(|| keccak256(&reference))
            }
        };
        if !list_changes {
            return (root, Vec::new());
        }
        stored.sort_unstable_by_key(|a| a.0);
        (root, diff(&self.root_key, self.read, stored))
    }
}

/// The node read at `path` with the nodes read below it (taken from `nodes`).
fn build(
    trie: NodeKey,
    path: Nibbles,
    read: ReadNode,
    nodes: &mut HashMap<Nibbles, ReadNode>,
) -> Result<Node, TrieError> {
    let encoded = Encoded {
        rlp: read.rlp,
        reference: read.reference,
    };
    Node::read(read.node, encoded, &path, |path, reference| {
        child(trie, path, reference, nodes)
    })
}

/// The child at `path` its parent references by `reference`: read, inlined, or only its hash.
fn child(
    trie: NodeKey,
    path: Nibbles,
    reference: &RlpNode,
    nodes: &mut HashMap<Nibbles, ReadNode>,
) -> Result<Node, TrieError> {
    match reference.as_hash() {
        Some(hash) => match nodes.remove(&path) {
            Some(read) => build(trie, path, read, nodes),
            None => Ok(Node::Hash(hash)),
        },
        None => Node::inline(trie.with_path(path), reference, |path, reference| {
            child(trie, path, reference, nodes)
        }),
    }
}

/// The changes from `old` (the nodes read) to `new` (the nodes to store among those in memory),
/// both sorted by path. A node in memory but not stored (inlined) is absent from both; a node not
/// read is unchanged and absent from both.
fn diff(trie: &NodeKey, old: StoredNodes, new: StoredNodes) -> Vec<NodeChange> {
    let mut changes = Vec::new();
    let mut old = old.into_iter().peekable();
    let mut new = new.into_iter().peekable();
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((o, _)), Some((n, _))) => o.cmp(n),
        };
        let (path, pre, post) = match (
            old.next_if(|_| order.is_le()),
            new.next_if(|_| order.is_ge()),
        ) {
            (Some((path, pre)), post) => (path, Some(pre), post.map(|(_, post)| post)),
            (None, Some((path, post))) => (path, None, Some(post)),
            (None, None) => break,
        };
        if pre != post {
            changes.push(NodeChange {
                key: trie.with_path(path),
                pre,
                post,
            });
        }
    }
    changes
}
