//! Reading one level of trie nodes: [`read_level`] takes the nodes wanted at one depth (across
//! any number of tries), answers what it can from the cache of top nodes, asks the
//! [`NodeSource`] for the rest in one call, checks every node against the hash its parent
//! references and decodes it.

use alloy_primitives::{keccak256, Bytes, B256};
use alloy_trie::nodes::{RlpNode, TrieNode};
use rayon::prelude::*;

use crate::cache::TopNodes;
use crate::node::decode_node;
use crate::{NodeKey, NodeSource, TrieError, UpdateError};

/// A node to read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wanted {
    /// Its key.
    pub(crate) key: NodeKey,
    /// The hash its parent references; `None` for a trie's root (absent when the trie is empty).
    pub(crate) expected: Option<B256>,
}

/// A node as read: its RLP, how its parent refers to it, and its decoded form.
#[derive(Clone, Debug)]
pub(crate) struct ReadNode {
    /// The stored value.
    pub(crate) rlp: Bytes,
    /// Its reference from its parent (its hash, or its RLP for a root under 32 bytes).
    pub(crate) reference: RlpNode,
    /// The decoded node.
    pub(crate) node: TrieNode,
}

impl ReadNode {
    /// The hash of the node (for a root: the trie's root hash).
    pub(crate) fn hash(&self) -> B256 {
        self.reference
            .as_hash()
            .unwrap_or_else(|| keccak256(&self.rlp))
    }
}

/// Reads `wanted` (one level): from `cache` where it has them, the rest in one call to `source`;
/// read nodes of the levels the cache covers enter it once checked. `None` for an absent root.
pub(crate) fn read_level<S: NodeSource>(
    source: &S,
    cache: &mut TopNodes,
    wanted: &[Wanted],
) -> Result<Vec<Option<ReadNode>>, UpdateError<S::Error>> {
    let mut values: Vec<Option<Bytes>> = wanted.iter().map(|w| cache.get(&w.key)).collect();
    let missing: Vec<usize> = (0..wanted.len()).filter(|&i| values[i].is_none()).collect();
    if !missing.is_empty() {
        let keys: Vec<NodeKey> = missing.iter().map(|&i| wanted[i].key).collect();
        let read = source.nodes(&keys).map_err(UpdateError::Source)?;
        if read.len() != keys.len() {
            return Err(TrieError::WrongValueCount {
                asked: keys.len(),
                got: read.len(),
            }
            .into());
        }
        for (i, value) in missing.iter().zip(read) {
            values[*i] = value;
        }
    }
    let nodes = values
        .into_par_iter()
        .zip(wanted.par_iter())
        .map(|(value, wanted)| check(value, wanted))
        .collect::<Result<Vec<_>, _>>()?;
    for i in missing {
        if let Some(node) = &nodes[i] {
            cache.insert(&wanted[i].key, node.rlp.clone());
        }
    }
    Ok(nodes)
}

/// Checks a value read for `wanted` and decodes it.
fn check(value: Option<Bytes>, wanted: &Wanted) -> Result<Option<ReadNode>, TrieError> {
    let key = wanted.key;
    let Some(rlp) = value else {
        return match wanted.expected {
            Some(hash) => Err(TrieError::MissingNode { key, hash }),
            None => Ok(None),
        };
    };
    let reference = match wanted.expected {
        Some(expected) => {
            if keccak256(&rlp) != expected {
                return Err(TrieError::NodeHashMismatch { key, expected });
            }
            RlpNode::word_rlp(&expected)
        }
        None => RlpNode::from_rlp(&rlp),
    };
    let node = decode_node(key, &rlp)?;
    Ok(Some(ReadNode {
        rlp,
        reference,
        node,
    }))
}
