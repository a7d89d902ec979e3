//! An independent check of the state tries in a store (`trie:acc:{path}`,
//! `trie:stor:{Addr}:{path}`): starting from a state root the test knows, every node is
//! followed by hash (decoded with alloy-trie's node codec, not the executor's trie code), every
//! hash-referenced node must be stored under its path and hash to its reference, and every
//! stored trie key must be reached. Storage tries are followed from the account leaves.

use alloy_primitives::{keccak256, Address, B256};
use alloy_rlp::Decodable;
use alloy_trie::nodes::{RlpNode, TrieNode};
use alloy_trie::{TrieAccount, EMPTY_ROOT_HASH};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The prefix of every trie key.
const TRIE_KEYS: &str = "trie:";

/// The store's keys that are not trie nodes.
pub fn non_trie_keys(store: &BTreeMap<String, Vec<u8>>) -> BTreeSet<String> {
    store
        .keys()
        .filter(|key| !key.starts_with(TRIE_KEYS))
        .cloned()
        .collect()
}

/// The tries in `store` are exactly those of the state with root `state_root` (whose accounts
/// include every account with storage among `accounts`).
pub fn assert_tries_hold(
    store: &BTreeMap<String, Vec<u8>>,
    state_root: B256,
    accounts: impl IntoIterator<Item = Address>,
) {
    let by_hash: HashMap<B256, Address> = accounts
        .into_iter()
        .map(|address| (keccak256(address), address))
        .collect();
    let mut walk = Walk {
        store,
        visited: BTreeSet::new(),
    };
    let leaves = walk.trie("trie:acc:", state_root);
    for (path, value) in leaves {
        let account = TrieAccount::decode(&mut value.as_slice()).expect("an account leaf");
        if account.storage_root == EMPTY_ROOT_HASH {
            continue;
        }
        let hashed = B256::from_slice(&pack(&path));
        let address = by_hash
            .get(&hashed)
            .unwrap_or_else(|| panic!("account leaf {hashed:#x} is none of the known accounts"));
        walk.trie(
            &format!("trie:stor:{}:", address.to_checksum(None)),
            account.storage_root,
        );
    }
    let stored: BTreeSet<&String> = store.keys().filter(|k| k.starts_with(TRIE_KEYS)).collect();
    let reached: BTreeSet<&String> = walk.visited.iter().collect();
    let unreached: Vec<_> = stored.difference(&reached).take(5).collect();
    assert!(
        unreached.is_empty(),
        "stored trie nodes no root reaches: {unreached:?}"
    );
}

/// A walk over the stored tries, remembering the keys it read.
struct Walk<'a> {
    store: &'a BTreeMap<String, Vec<u8>>,
    visited: BTreeSet<String>,
}

impl Walk<'_> {
    /// Every leaf (full path in nibbles, value) of the trie under `prefix` with root `root`.
    fn trie(&mut self, prefix: &str, root: B256) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut leaves = Vec::new();
        if root != EMPTY_ROOT_HASH {
            let node = self.stored(prefix, &[], root);
            self.node(prefix, Vec::new(), &node, &mut leaves);
        }
        leaves
    }

    /// The node stored under `prefix` + `path`, which must hash to `hash`.
    fn stored(&mut self, prefix: &str, path: &[u8], hash: B256) -> Vec<u8> {
        let key = format!("{prefix}{}", hex_path(path));
        let value = self
            .store
            .get(&key)
            .unwrap_or_else(|| panic!("{key} is missing (referenced as {hash:#x})"))
            .clone();
        assert_eq!(
            keccak256(&value),
            hash,
            "{key} does not hash to its reference"
        );
        self.visited.insert(key);
        value
    }

    /// Follow the node `bytes` at `path`, collecting leaves.
    fn node(
        &mut self,
        prefix: &str,
        path: Vec<u8>,
        bytes: &[u8],
        leaves: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) {
        match TrieNode::decode(&mut &bytes[..]).expect("a trie node") {
            TrieNode::Branch(branch) => {
                let mut children = branch.stack.iter();
                for nibble in 0..16u8 {
                    if branch.state_mask.is_bit_set(nibble) {
                        let child = children.next().expect("a child per mask bit");
                        let mut child_path = path.clone();
                        child_path.push(nibble);
                        self.child(prefix, child_path, child, leaves);
                    }
                }
            }
            TrieNode::Extension(extension) => {
                let mut child_path = path;
                child_path.extend(extension.key.to_vec());
                self.child(prefix, child_path, &extension.child, leaves);
            }
            TrieNode::Leaf(leaf) => {
                let mut full = path;
                full.extend(leaf.key.to_vec());
                leaves.push((full, leaf.value));
            }
            TrieNode::EmptyRoot => {}
        }
    }

    /// Follow a child reference: by hash (a stored node) or inline.
    fn child(
        &mut self,
        prefix: &str,
        path: Vec<u8>,
        child: &RlpNode,
        leaves: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) {
        match child.as_hash() {
            Some(hash) => {
                let node = self.stored(prefix, &path, hash);
                self.node(prefix, path, &node, leaves);
            }
            None => self.node(prefix, path, child.as_ref(), leaves),
        }
    }
}

/// A path as the keys spell it: one lowercase hex digit per nibble.
fn hex_path(path: &[u8]) -> String {
    path.iter().map(|n| format!("{n:x}")).collect()
}

/// 64 nibbles packed into 32 bytes.
fn pack(nibbles: &[u8]) -> Vec<u8> {
    nibbles
        .chunks(2)
        .map(|pair| (pair[0] << 4) | pair[1])
        .collect()
}
