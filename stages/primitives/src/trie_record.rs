//! The merkle stage's record of one change of the tries (DESIGN §2, crash rule): every trie
//! node a batch of blocks (or the unwind of a block) changes, with its value before and after,
//! written as ONE value (`trie:pending`) before any node changes and removed after the
//! checkpoint moved, in the same ordered write. A restart that finds it applies its
//! post-values again and moves the checkpoint, so the tries never stay half-changed. Encoded as
//! a version byte followed by RLP.

use alloy_primitives::{Address, Bytes, B256};
use alloy_rlp::{Decodable, Encodable, RlpDecodable, RlpEncodable};

/// The encoding version written first in every trie record.
pub const TRIE_RECORD_VERSION: u8 = 1;

/// Where a trie node lives: the account trie, or one account's storage trie, and the node's
/// path from that trie's root (one nibble per byte).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrieNodeId {
    /// The account whose storage trie holds the node; `None` for the account trie.
    pub account: Option<Address>,
    /// The path's nibbles, one per byte (each below 16).
    pub path: Vec<u8>,
}

/// One trie node's change in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrieNodeChange {
    /// The node.
    pub node: TrieNodeId,
    /// Its stored value before the batch (`None`: absent).
    pub pre: Option<Bytes>,
    /// Its stored value after the batch (`None`: removed).
    pub post: Option<Bytes>,
}

/// A change of the tries from the state after block `from` to the state after block `to`
/// (`to > from` for blocks verified, `to = from - 1` for an unwound block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrieRecord {
    /// The merkle checkpoint before the change.
    pub from: u64,
    /// The merkle checkpoint after it.
    pub to: u64,
    /// The state root after it.
    pub state_root: B256,
    /// The node changes, sorted by node.
    pub nodes: Vec<TrieNodeChange>,
}

/// A trie record that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum TrieRecordDecodeError {
    /// Written by a newer or unknown encoder.
    #[error("unsupported trie record version {0}")]
    Version(u8),
    /// Not valid RLP for a trie record.
    #[error("corrupt trie record: {0}")]
    Rlp(#[from] alloy_rlp::Error),
    /// A path holds a byte that is not a nibble.
    #[error("corrupt trie record: path nibble {0} is not below 16")]
    Nibble(u8),
}

const HAS_ACCOUNT: u8 = 1;
const HAS_PRE: u8 = 2;
const HAS_POST: u8 = 4;

#[derive(RlpEncodable, RlpDecodable)]
struct NodeChangeRlp {
    flags: u8,
    account: Address,
    path: Bytes,
    pre: Bytes,
    post: Bytes,
}

#[derive(RlpEncodable, RlpDecodable)]
struct TrieRecordRlp {
    from: u64,
    to: u64,
    state_root: B256,
    nodes: Vec<NodeChangeRlp>,
}

impl TrieRecord {
    /// The stored bytes: version byte, then RLP.
    pub fn encode(&self) -> Vec<u8> {
        let flag = |set: bool, bit: u8| u8::from(set) * bit;
        let rlp = TrieRecordRlp {
            from: self.from,
            to: self.to,
            state_root: self.state_root,
            nodes: self
                .nodes
                .iter()
                .map(|change| NodeChangeRlp {
                    flags: flag(change.node.account.is_some(), HAS_ACCOUNT)
                        | flag(change.pre.is_some(), HAS_PRE)
                        | flag(change.post.is_some(), HAS_POST),
                    account: change.node.account.unwrap_or_default(),
                    path: change.node.path.clone().into(),
                    pre: change.pre.clone().unwrap_or_default(),
                    post: change.post.clone().unwrap_or_default(),
                })
                .collect(),
        };
        let mut out = Vec::with_capacity(rlp.length() + 1);
        out.push(TRIE_RECORD_VERSION);
        rlp.encode(&mut out);
        out
    }

    /// Parse stored bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, TrieRecordDecodeError> {
        let (&version, mut rest) = bytes.split_first().ok_or(alloy_rlp::Error::InputTooShort)?;
        if version != TRIE_RECORD_VERSION {
            return Err(TrieRecordDecodeError::Version(version));
        }
        let rlp = TrieRecordRlp::decode(&mut rest)?;
        if !rest.is_empty() {
            return Err(alloy_rlp::Error::UnexpectedLength.into());
        }
        let nodes = rlp
            .nodes
            .into_iter()
            .map(|change| {
                if let Some(&bad) = change.path.iter().find(|&&nibble| nibble >= 16) {
                    return Err(TrieRecordDecodeError::Nibble(bad));
                }
                let has = |bit: u8| change.flags & bit != 0;
                Ok(TrieNodeChange {
                    node: TrieNodeId {
                        account: has(HAS_ACCOUNT).then_some(change.account),
                        path: change.path.to_vec(),
                    },
                    pre: has(HAS_PRE).then_some(change.pre),
                    post: has(HAS_POST).then_some(change.post),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            from: rlp.from,
            to: rlp.to,
            state_root: rlp.state_root,
            nodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::address;

    #[test]
    fn a_trie_record_round_trips_and_damage_is_an_error() {
        let record = TrieRecord {
            from: 6,
            to: 9,
            state_root: B256::repeat_byte(3),
            nodes: vec![
                TrieNodeChange {
                    node: TrieNodeId {
                        account: None,
                        path: vec![],
                    },
                    pre: Some(Bytes::from_static(b"old root")),
                    post: Some(Bytes::from_static(b"new root")),
                },
                TrieNodeChange {
                    node: TrieNodeId {
                        account: Some(address!("00000000000000000000000000000000000000aa")),
                        path: vec![0, 15, 3],
                    },
                    pre: None,
                    post: Some(Bytes::new()),
                },
            ],
        };
        let bytes = record.encode();
        assert_eq!(TrieRecord::decode(&bytes).expect("decodes"), record);
        assert!(matches!(
            TrieRecord::decode(&bytes[..bytes.len() - 1]),
            Err(TrieRecordDecodeError::Rlp(_))
        ));
        let mut newer = bytes.clone();
        newer[0] = 9;
        assert!(matches!(
            TrieRecord::decode(&newer),
            Err(TrieRecordDecodeError::Version(9))
        ));
    }
}
