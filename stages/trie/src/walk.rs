//! Listing every stored node of a trie (or of its top levels), level by level: one call to the
//! [`NodeSource`] per level. Used to read a storage trie whole (e.g. to delete it) and to warm the
//! cache of top account-trie nodes.

use alloy_primitives::{Address, Bytes};
use alloy_trie::nodes::TrieNode;
use alloy_trie::Nibbles;

use crate::cache::TopNodes;
use crate::level::{read_level, Wanted};
use crate::node::child_path;
use crate::{NodeKey, NodeSource, UpdateError};

/// Every stored node of the storage trie of `address`, with its value, sorted by key (none for
/// an empty trie). Reads one level per call; holds the whole trie in memory.
pub fn storage_trie_nodes<S: NodeSource>(
    source: &S,
    address: Address,
) -> Result<Vec<(NodeKey, Bytes)>, UpdateError<S::Error>> {
    let mut nodes = walk(
        source,
        &mut TopNodes::new(0),
        NodeKey::Storage(address, Nibbles::new()),
        usize::MAX,
    )?;
    nodes.sort_unstable_by_key(|a| a.0);
    Ok(nodes)
}

/// The stored nodes of the trie whose root is `root`, down to paths shorter than `levels`
/// nibbles, in level order, each checked against its parent's hash.
pub(crate) fn walk<S: NodeSource>(
    source: &S,
    cache: &mut TopNodes,
    root: NodeKey,
    levels: usize,
) -> Result<Vec<(NodeKey, Bytes)>, UpdateError<S::Error>> {
    let mut nodes = Vec::new();
    let mut level = vec![Wanted {
        key: root,
        expected: None,
    }];
    while !level.is_empty() {
        let read = read_level(source, cache, &level)?;
        let mut next = Vec::new();
        for (wanted, node) in level.iter().zip(read) {
            let Some(node) = node else { continue };
            let path = *wanted.key.path();
            // Children inlined in their parent are not stored, and hold no hashed children.
            let mut queue = |child: Nibbles, reference: &alloy_trie::nodes::RlpNode| {
                if let Some(hash) = reference.as_hash() {
                    if child.len() < levels {
                        next.push(Wanted {
                            key: wanted.key.with_path(child),
                            expected: Some(hash),
                        });
                    }
                }
            };
            match &node.node {
                TrieNode::Branch(branch) => {
                    for (nibble, reference) in branch.as_ref().children() {
                        if let Some(reference) = reference {
                            queue(child_path(&path, nibble), reference);
                        }
                    }
                }
                TrieNode::Extension(ext) => queue(path.join(&ext.key), &ext.child),
                TrieNode::Leaf(_) | TrieNode::EmptyRoot => {}
            }
            nodes.push((wanted.key, node.rlp));
        }
        level = next;
    }
    Ok(nodes)
}
