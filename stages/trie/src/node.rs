//! The in-memory form of the part of one trie an update touches: [`Node`] (read nodes, nodes not
//! read kept as their hash, new nodes), with insert, delete and lookup of leaves that keep the
//! trie in Ethereum's normal form after every step, and [`Node::finalize`], which encodes the
//! changed nodes and lists the nodes to store.
//!
//! Also [`decode_node`], which decodes a stored (or inlined) node and checks that it can stand at
//! its path.

use alloy_primitives::{Bytes, B256};
use alloy_rlp::{Encodable, EMPTY_STRING_CODE};
use alloy_trie::nodes::{BranchNodeRef, ExtensionNodeRef, LeafNodeRef, RlpNode, TrieNode};
use alloy_trie::{Nibbles, TrieMask};
use rayon::prelude::*;

use crate::key::MAX_PATH_NIBBLES;
use crate::{NodeKey, TrieError};

/// Stored nodes listed by [`Node::finalize`]: (path, RLP).
pub(crate) type StoredNodes = Vec<(Nibbles, Bytes)>;

/// A node's encoding, known while the node is unchanged.
#[derive(Clone, Debug)]
pub(crate) struct Encoded {
    /// The node's RLP.
    pub(crate) rlp: Bytes,
    /// How its parent refers to it: the RLP itself under 32 bytes, else its hash.
    pub(crate) reference: RlpNode,
}

impl Encoded {
    fn new(rlp: &[u8]) -> Self {
        Self {
            rlp: Bytes::copy_from_slice(rlp),
            reference: RlpNode::from_rlp(rlp),
        }
    }
}

/// A node of a partly read trie. Keys are 64 nibbles, so no branch holds a value.
#[derive(Debug, Default)]
pub(crate) enum Node {
    /// No node (an empty trie, or an empty branch slot).
    #[default]
    Empty,
    /// A node not read, known by the hash its parent references (its subtree is unchanged).
    Hash(B256),
    /// A leaf.
    Leaf(Box<Leaf>),
    /// An extension.
    Extension(Box<Extension>),
    /// A branch.
    Branch(Box<Branch>),
}

/// A leaf: the rest of its key and its value.
#[derive(Debug)]
pub(crate) struct Leaf {
    key: Nibbles,
    value: Vec<u8>,
    /// `None` once the leaf changed (or is new).
    encoded: Option<Encoded>,
}

/// An extension: the shared nibbles and the branch below them.
#[derive(Debug)]
pub(crate) struct Extension {
    key: Nibbles,
    child: Node,
    /// `None` once something below changed (or the node is new).
    encoded: Option<Encoded>,
}

/// A branch: one child slot per nibble.
#[derive(Debug)]
pub(crate) struct Branch {
    children: [Node; 16],
    /// `None` once something below changed (or the node is new).
    encoded: Option<Encoded>,
}

/// Decodes a node stored (or inlined) at `key` and checks that it fits its path: leaves end at 64
/// nibbles, extensions are not empty and stop above 64, branches have two children or more,
/// nothing follows the node's RLP.
pub(crate) fn decode_node(key: NodeKey, rlp: &[u8]) -> Result<TrieNode, TrieError> {
    let malformed = |reason| TrieError::MalformedNode { key, reason };
    let mut buf = rlp;
    let node = alloy_rlp::Decodable::decode(&mut buf)
        .map_err(|source| TrieError::UndecodableNode { key, source })?;
    if !buf.is_empty() {
        return Err(malformed("bytes after the node's RLP"));
    }
    let depth = key.path().len();
    match &node {
        TrieNode::EmptyRoot => return Err(malformed("an empty node is never stored")),
        TrieNode::Leaf(leaf) if depth + leaf.key.len() != MAX_PATH_NIBBLES => {
            return Err(malformed("a leaf whose key does not end at 64 nibbles"));
        }
        TrieNode::Extension(ext) if ext.key.is_empty() => {
            return Err(malformed("an extension without nibbles"));
        }
        TrieNode::Extension(ext) if depth + ext.key.len() >= MAX_PATH_NIBBLES => {
            return Err(malformed("an extension reaching 64 nibbles"));
        }
        TrieNode::Branch(branch) if branch.state_mask.count_ones() < 2 => {
            return Err(malformed("a branch with fewer than two children"));
        }
        TrieNode::Branch(_) if depth >= MAX_PATH_NIBBLES => {
            return Err(malformed("a branch at 64 nibbles"));
        }
        _ => {}
    }
    Ok(node)
}

/// The path one nibble below `path`.
pub(crate) fn child_path(path: &Nibbles, nibble: u8) -> Nibbles {
    let mut child = *path;
    child.push(nibble);
    child
}

impl Node {
    fn leaf(key: Nibbles, value: Vec<u8>) -> Self {
        Self::Leaf(Box::new(Leaf {
            key,
            value,
            encoded: None,
        }))
    }

    /// `node` below `prefix`: an extension, or `node` itself when `prefix` is empty.
    fn below(prefix: Nibbles, node: Self) -> Self {
        if prefix.is_empty() {
            node
        } else {
            Self::Extension(Box::new(Extension {
                key: prefix,
                child: node,
                encoded: None,
            }))
        }
    }

    /// A new leaf of key `rest` (from here) and `value` beside an existing node whose key `key`
    /// shares `common` nibbles with it: a branch where they part, holding `old` (what followed
    /// `key[common]`) and the leaf, below an extension of the shared nibbles.
    fn split(key: &Nibbles, old: Self, rest: &Nibbles, common: usize, value: Vec<u8>) -> Self {
        let mut children: [Self; 16] = Default::default();
        children[usize::from(key.get_unchecked(common))] = old;
        children[usize::from(rest.get_unchecked(common))] =
            Self::leaf(rest.slice(common + 1..), value);
        let branch = Self::Branch(Box::new(Branch {
            children,
            encoded: None,
        }));
        Self::below(rest.slice(..common), branch)
    }

    /// The read node with its encoding `encoded`; its children come from `child` (given the
    /// child's path and the reference its parent holds).
    pub(crate) fn read(
        node: TrieNode,
        encoded: Encoded,
        path: &Nibbles,
        mut child: impl FnMut(Nibbles, &RlpNode) -> Result<Self, TrieError>,
    ) -> Result<Self, TrieError> {
        Ok(match node {
            TrieNode::Leaf(leaf) => Self::Leaf(Box::new(Leaf {
                key: leaf.key,
                value: leaf.value,
                encoded: Some(encoded),
            })),
            TrieNode::Extension(ext) => {
                let child = child(path.join(&ext.key), &ext.child)?;
                Self::Extension(Box::new(Extension {
                    key: ext.key,
                    child,
                    encoded: Some(encoded),
                }))
            }
            TrieNode::Branch(branch) => {
                let mut children: [Self; 16] = Default::default();
                for (nibble, reference) in branch.as_ref().children() {
                    if let Some(reference) = reference {
                        children[usize::from(nibble)] = child(child_path(path, nibble), reference)?;
                    }
                }
                Self::Branch(Box::new(Branch {
                    children,
                    encoded: Some(encoded),
                }))
            }
            // `decode_node` refuses empty nodes.
            TrieNode::EmptyRoot => Self::Empty,
        })
    }

    /// A child node inlined in its parent's RLP, read from that RLP.
    pub(crate) fn inline(
        key: NodeKey,
        reference: &RlpNode,
        child: impl FnMut(Nibbles, &RlpNode) -> Result<Self, TrieError>,
    ) -> Result<Self, TrieError> {
        let node = decode_node(key, reference)?;
        let encoded = Encoded {
            rlp: Bytes::copy_from_slice(reference),
            reference: reference.clone(),
        };
        Self::read(node, encoded, key.path(), child)
    }

    /// Sets the leaf of `key` (64 nibbles) to `value`, this node standing `depth` nibbles deep
    /// in the trie named by `trie`. Returns whether anything changed.
    pub(crate) fn insert(
        &mut self,
        trie: &NodeKey,
        depth: usize,
        key: &Nibbles,
        value: Vec<u8>,
    ) -> Result<bool, TrieError> {
        let rest = key.slice(depth..);
        let replacement = match self {
            Self::Empty => Self::leaf(rest, value),
            Self::Hash(_) => {
                return Err(TrieError::NotRead {
                    key: trie.with_path(key.slice(..depth)),
                })
            }
            Self::Leaf(leaf) => {
                if leaf.key == rest {
                    if leaf.value == value {
                        return Ok(false);
                    }
                    leaf.value = value;
                    leaf.encoded = None;
                    return Ok(true);
                }
                let common = leaf.key.common_prefix_length(&rest);
                let old = Self::leaf(
                    leaf.key.slice(common + 1..),
                    std::mem::take(&mut leaf.value),
                );
                Self::split(&leaf.key, old, &rest, common, value)
            }
            Self::Extension(ext) => {
                let common = ext.key.common_prefix_length(&rest);
                if common == ext.key.len() {
                    let changed = ext.child.insert(trie, depth + common, key, value)?;
                    if changed {
                        ext.encoded = None;
                    }
                    return Ok(changed);
                }
                let child = std::mem::replace(&mut ext.child, Self::Empty);
                let old = Self::below(ext.key.slice(common + 1..), child);
                Self::split(&ext.key, old, &rest, common, value)
            }
            Self::Branch(branch) => {
                let slot = &mut branch.children[usize::from(key.get_unchecked(depth))];
                let changed = slot.insert(trie, depth + 1, key, value)?;
                if changed {
                    branch.encoded = None;
                }
                return Ok(changed);
            }
        };
        *self = replacement;
        Ok(true)
    }

    /// Removes the leaf of `key` if present, this node standing `depth` nibbles deep; a branch
    /// left with one child folds into its parent's place (merging extensions and leaves), so the
    /// trie stays in normal form. Returns whether anything changed.
    pub(crate) fn delete(
        &mut self,
        trie: &NodeKey,
        depth: usize,
        key: &Nibbles,
    ) -> Result<bool, TrieError> {
        let replacement = match self {
            Self::Empty => return Ok(false),
            Self::Hash(_) => {
                return Err(TrieError::NotRead {
                    key: trie.with_path(key.slice(..depth)),
                })
            }
            Self::Leaf(leaf) => {
                if leaf.key != key.slice(depth..) {
                    return Ok(false);
                }
                Self::Empty
            }
            Self::Extension(ext) => {
                if !key.slice(depth..).starts_with(&ext.key) {
                    return Ok(false);
                }
                let below = depth + ext.key.len();
                if !ext.child.delete(trie, below, key)? {
                    return Ok(false);
                }
                ext.encoded = None;
                match std::mem::replace(&mut ext.child, Self::Empty) {
                    child @ Self::Branch(_) => {
                        ext.child = child;
                        return Ok(true);
                    }
                    child => Self::prepend(ext.key, child, || trie.with_path(key.slice(..below)))?,
                }
            }
            Self::Branch(branch) => {
                let nibble = key.get_unchecked(depth);
                if !branch.children[usize::from(nibble)].delete(trie, depth + 1, key)? {
                    return Ok(false);
                }
                branch.encoded = None;
                let mut left = (0u8..)
                    .zip(branch.children.iter())
                    .filter(|(_, child)| !matches!(child, Self::Empty))
                    .map(|(nibble, _)| nibble);
                match (left.next(), left.next()) {
                    (_, Some(_)) => return Ok(true),
                    (None, _) => Self::Empty,
                    (Some(only), None) => {
                        let child =
                            std::mem::replace(&mut branch.children[usize::from(only)], Self::Empty);
                        let path = child_path(&key.slice(..depth), only);
                        Self::prepend(Nibbles::from_nibbles_unchecked([only]), child, || {
                            trie.with_path(path)
                        })?
                    }
                }
            }
        };
        *self = replacement;
        Ok(true)
    }

    /// `child` (the only node below `prefix`) moved up by `prefix`: a leaf or an extension takes
    /// the prefix into its key, a branch gets an extension above it. `child_key` names the
    /// child for the error when it was not read.
    fn prepend(
        prefix: Nibbles,
        child: Self,
        child_key: impl FnOnce() -> NodeKey,
    ) -> Result<Self, TrieError> {
        Ok(match child {
            Self::Empty => Self::Empty,
            Self::Hash(_) => return Err(TrieError::NotRead { key: child_key() }),
            Self::Leaf(leaf) => Self::leaf(prefix.join(&leaf.key), leaf.value),
            Self::Extension(ext) => Self::below(prefix.join(&ext.key), ext.child),
            branch @ Self::Branch(_) => Self::below(prefix, branch),
        })
    }

    /// The value of the leaf of `key`, this node standing `depth` nibbles deep.
    pub(crate) fn get(
        &self,
        trie: &NodeKey,
        depth: usize,
        key: &Nibbles,
    ) -> Result<Option<&[u8]>, TrieError> {
        match self {
            Self::Empty => Ok(None),
            Self::Hash(_) => Err(TrieError::NotRead {
                key: trie.with_path(key.slice(..depth)),
            }),
            Self::Leaf(leaf) => {
                Ok((leaf.key == key.slice(depth..)).then_some(leaf.value.as_slice()))
            }
            Self::Extension(ext) => {
                if key.slice(depth..).starts_with(&ext.key) {
                    ext.child.get(trie, depth + ext.key.len(), key)
                } else {
                    Ok(None)
                }
            }
            Self::Branch(branch) => {
                branch.children[usize::from(key.get_unchecked(depth))].get(trie, depth + 1, key)
            }
        }
    }

    /// Encodes every changed node below and including this one (at `path`) and returns how its
    /// parent refers to it. With `stored`, also lists every node in memory that the store keeps
    /// (the root, and every node of 32 bytes or more; smaller ones live inlined in their parent)
    /// as (path, RLP); without, unchanged subtrees are not visited. Branches less than
    /// `parallel_levels` deep encode their children on the rayon pool.
    pub(crate) fn finalize(
        &mut self,
        path: Nibbles,
        mut stored: Option<&mut StoredNodes>,
        buf: &mut Vec<u8>,
        parallel_levels: usize,
    ) -> RlpNode {
        let encoded = match self {
            Self::Empty => return RlpNode::from_rlp(&[EMPTY_STRING_CODE]),
            Self::Hash(hash) => return RlpNode::word_rlp(hash),
            Self::Leaf(leaf) => {
                let Leaf {
                    key,
                    value,
                    encoded,
                } = &mut **leaf;
                encoded.get_or_insert_with(|| encode(buf, &LeafNodeRef::new(key, value)))
            }
            Self::Extension(ext) => {
                let Extension {
                    key,
                    child,
                    encoded,
                } = &mut **ext;
                if let (Some(encoded), None) = (encoded.as_ref(), stored.as_ref()) {
                    return encoded.reference.clone();
                }
                let child =
                    child.finalize(path.join(key), stored.as_deref_mut(), buf, parallel_levels);
                encoded.get_or_insert_with(|| encode(buf, &ExtensionNodeRef::new(key, &child)))
            }
            Self::Branch(branch) => {
                let Branch { children, encoded } = &mut **branch;
                if let (Some(encoded), None) = (encoded.as_ref(), stored.as_ref()) {
                    return encoded.reference.clone();
                }
                let (stack, mask) = if path.len() < parallel_levels {
                    finalize_children_parallel(
                        children,
                        &path,
                        stored.as_deref_mut(),
                        parallel_levels,
                    )
                } else {
                    let mut stack = Vec::with_capacity(16);
                    let mut mask = TrieMask::default();
                    for (nibble, child) in (0u8..).zip(children.iter_mut()) {
                        if !matches!(child, Self::Empty) {
                            let child_path = child_path(&path, nibble);
                            stack.push(child.finalize(
                                child_path,
                                stored.as_deref_mut(),
                                buf,
                                parallel_levels,
                            ));
                            mask.set_bit(nibble);
                        }
                    }
                    (stack, mask)
                };
                encoded.get_or_insert_with(|| encode(buf, &BranchNodeRef::new(&stack, mask)))
            }
        };
        if let Some(stored) = stored {
            if path.is_empty() || encoded.rlp.len() >= 32 {
                stored.push((path, encoded.rlp.clone()));
            }
        }
        encoded.reference.clone()
    }
}

/// [`Node::finalize`] for the children of one branch, each on the rayon pool.
fn finalize_children_parallel(
    children: &mut [Node; 16],
    path: &Nibbles,
    stored: Option<&mut StoredNodes>,
    parallel_levels: usize,
) -> (Vec<RlpNode>, TrieMask) {
    let listing = stored.is_some();
    let done: Vec<(u8, RlpNode, StoredNodes)> = children
        .par_iter_mut()
        .enumerate()
        .filter(|(_, child)| !matches!(child, Node::Empty))
        .map(|(nibble, child)| {
            let nibble = nibble as u8;
            let mut listed = Vec::new();
            let mut buf = Vec::new();
            let reference = child.finalize(
                child_path(path, nibble),
                listing.then_some(&mut listed),
                &mut buf,
                parallel_levels,
            );
            (nibble, reference, listed)
        })
        .collect();
    let mut stack = Vec::with_capacity(done.len());
    let mut mask = TrieMask::default();
    let mut stored = stored;
    for (nibble, reference, listed) in done {
        stack.push(reference);
        mask.set_bit(nibble);
        if let Some(stored) = stored.as_deref_mut() {
            stored.extend(listed);
        }
    }
    (stack, mask)
}

/// The encoding of `node`, written through the scratch buffer `buf`.
fn encode(buf: &mut Vec<u8>, node: &impl Encodable) -> Encoded {
    buf.clear();
    node.encode(buf);
    Encoded::new(buf)
}
