//! Reading the part of several tries an update touches, level by level: every node on the path
//! of a changed key, plus the one sibling a deletion may fold into its parent's place. One call
//! to the [`NodeSource`] per level, for all tries together.

use std::collections::HashMap;
use std::ops::Range;

use alloy_primitives::B256;
use alloy_trie::nodes::{RlpNode, TrieNode};
use alloy_trie::Nibbles;
use rayon::prelude::*;

use crate::cache::TopNodes;
use crate::level::{read_level, ReadNode, Wanted};
use crate::node::{child_path, decode_node};
use crate::{NodeKey, NodeSource, TrieError, UpdateError};

/// A changed key of a trie: its 64 nibbles and whether the change removes the leaf.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChangedKey {
    /// The hashed key, unpacked.
    pub(crate) path: Nibbles,
    /// The change removes the leaf.
    pub(crate) removes: bool,
}

/// One trie to read: its root's key and its changed keys (sorted, distinct; none: read the root
/// only).
#[derive(Debug)]
pub(crate) struct RevealTarget {
    /// The key of the trie's root (its path is empty).
    pub(crate) root: NodeKey,
    /// The changed keys, ascending.
    pub(crate) keys: Vec<ChangedKey>,
}

/// A node to read next: its target, path, the hash its parent references (none for a root) and
/// the range of the target's keys that pass through it (empty for a sibling read only so a
/// deletion can fold it).
#[derive(Debug)]
struct Pending {
    target: usize,
    path: Nibbles,
    expected: Option<B256>,
    keys: Range<usize>,
}

/// The nodes read for each target, by path (same order as the targets).
pub(crate) type Revealed = Vec<HashMap<Nibbles, ReadNode>>;

/// Reads what updating `targets` needs, one level per call to `source`.
pub(crate) fn reveal<S: NodeSource>(
    source: &S,
    cache: &mut TopNodes,
    targets: &[RevealTarget],
) -> Result<Revealed, UpdateError<S::Error>> {
    let mut revealed: Revealed = targets.iter().map(|_| HashMap::new()).collect();
    // Every target's root is read, even without keys: it gives the trie's current root.
    let mut frontier: Vec<Pending> = (0..targets.len())
        .map(|target| Pending {
            target,
            path: Nibbles::new(),
            expected: None,
            keys: 0..targets[target].keys.len(),
        })
        .collect();
    while !frontier.is_empty() {
        let wanted: Vec<Wanted> = frontier
            .iter()
            .map(|p| Wanted {
                key: targets[p.target].root.with_path(p.path),
                expected: p.expected,
            })
            .collect();
        let nodes = read_level(source, cache, &wanted)?;
        let next: Vec<Vec<Pending>> = frontier
            .par_iter()
            .zip(nodes.par_iter())
            .map(|(pending, node)| {
                let mut next = Vec::new();
                if let Some(node) = node {
                    let target = &targets[pending.target];
                    let planner = Planner {
                        target: pending.target,
                        root: target.root,
                        keys: &target.keys,
                    };
                    planner.plan(&node.node, pending.path, pending.keys.clone(), &mut next)?;
                }
                Ok(next)
            })
            .collect::<Result<_, TrieError>>()?;
        for (pending, node) in frontier.iter().zip(nodes) {
            if let Some(node) = node {
                revealed[pending.target].insert(pending.path, node);
            }
        }
        frontier = next.into_iter().flatten().collect();
    }
    Ok(revealed)
}

/// Decides which children of a read node to read next.
struct Planner<'a> {
    target: usize,
    root: NodeKey,
    keys: &'a [ChangedKey],
}

impl Planner<'_> {
    /// Queues the children of `node` (at `path`) that the keys `range` pass through, and the
    /// sibling a deletion might fold: when all children but one hold a removed key, that one.
    fn plan(
        &self,
        node: &TrieNode,
        path: Nibbles,
        range: Range<usize>,
        next: &mut Vec<Pending>,
    ) -> Result<(), TrieError> {
        match node {
            TrieNode::Leaf(_) | TrieNode::EmptyRoot => Ok(()),
            TrieNode::Extension(ext) => {
                let below = path.join(&ext.key);
                let within = &self.keys[range.clone()];
                let start =
                    range.start + within.partition_point(|k| k.path.slice(..below.len()) < below);
                let end =
                    range.start + within.partition_point(|k| k.path.slice(..below.len()) <= below);
                if start < end {
                    self.follow(&ext.child, below, start..end, next)?;
                }
                Ok(())
            }
            TrieNode::Branch(branch) => {
                let depth = path.len();
                let mut groups: [Range<usize>; 16] = Default::default();
                let mut removes = [false; 16];
                let mut i = range.start;
                while i < range.end {
                    let nibble = usize::from(self.keys[i].path.get_unchecked(depth));
                    let start = i;
                    while i < range.end
                        && usize::from(self.keys[i].path.get_unchecked(depth)) == nibble
                    {
                        removes[nibble] |= self.keys[i].removes;
                        i += 1;
                    }
                    groups[nibble] = start..i;
                }
                let branch = branch.as_ref();
                let children: Vec<(u8, &RlpNode)> = branch
                    .children()
                    .filter_map(|(n, child)| child.map(|c| (n, c)))
                    .collect();
                let keeping = children
                    .iter()
                    .filter(|(n, _)| !removes[usize::from(*n)])
                    .count();
                for (nibble, child) in children {
                    let group = groups[usize::from(nibble)].clone();
                    let fold_sibling = keeping == 1 && !removes[usize::from(nibble)];
                    if !group.is_empty() || fold_sibling {
                        self.follow(child, child_path(&path, nibble), group, next)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Queues the child referenced by `reference` at `path`, or plans inside it at once when it
    /// is inlined in its parent (then nothing below it is stored on its own).
    fn follow(
        &self,
        reference: &RlpNode,
        path: Nibbles,
        range: Range<usize>,
        next: &mut Vec<Pending>,
    ) -> Result<(), TrieError> {
        match reference.as_hash() {
            Some(hash) => {
                next.push(Pending {
                    target: self.target,
                    path,
                    expected: Some(hash),
                    keys: range,
                });
                Ok(())
            }
            None => {
                let inline = decode_node(self.root.with_path(path), reference)?;
                self.plan(&inline, path, range, next)
            }
        }
    }
}
