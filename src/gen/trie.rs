//! A Merkle-Patricia trie over 32-byte hashed keys that recomputes only what changed: once it
//! holds enough leaves it caches the hash of each of its 256 subtries (the keys sharing a first
//! byte) and rebuilds only those touched since the last root; the two branch levels above them
//! are encoded here. Small tries are rebuilt whole with alloy-trie's `HashBuilder`.

use alloy_primitives::{keccak256, B256};
use alloy_trie::{HashBuilder, Nibbles, EMPTY_ROOT_HASH};
use std::collections::BTreeMap;

/// From this many leaves on, subtrie hashes are cached: with the keys uniformly hashed, every
/// first nibble and almost every first byte then has leaves, so the top two levels are branches.
const CACHE_FROM: usize = 1024;

/// A trie of hashed keys to RLP-encoded values with cached subtrie hashes.
#[derive(Debug, Clone, Default)]
pub struct Trie {
    leaves: BTreeMap<B256, Vec<u8>>,
    /// Per first byte: `None` when stale, else the subtrie's hash (`Some(None)` when empty).
    /// Empty while the trie is small.
    subtries: Vec<Option<Option<B256>>>,
}

/// The hash of the trie over `leaves` with the first `skip` nibbles of each key dropped (the
/// node below a common prefix of that length).
fn hash_below<'a>(leaves: impl Iterator<Item = (&'a B256, &'a Vec<u8>)>, skip: usize) -> B256 {
    let mut builder = HashBuilder::default();
    for (key, value) in leaves {
        builder.add_leaf(Nibbles::unpack(key).slice(skip..), value);
    }
    builder.root()
}

/// keccak256 of a branch node whose children are all hashed (or empty) and without value.
fn branch_hash(children: &[Option<B256>; 16]) -> B256 {
    let payload_length = children
        .iter()
        .map(|child| if child.is_some() { 33 } else { 1 })
        .sum::<usize>()
        + 1;
    let mut out = Vec::with_capacity(payload_length + 3);
    alloy_rlp::Header {
        list: true,
        payload_length,
    }
    .encode(&mut out);
    for child in children {
        match child {
            Some(hash) => {
                out.push(alloy_rlp::EMPTY_STRING_CODE + 32);
                out.extend_from_slice(hash.as_slice());
            }
            None => out.push(alloy_rlp::EMPTY_STRING_CODE),
        }
    }
    out.push(alloy_rlp::EMPTY_STRING_CODE);
    keccak256(out)
}

impl Trie {
    /// Set `key` to the RLP `value`.
    pub fn insert(&mut self, key: B256, value: Vec<u8>) {
        self.invalidate(&key);
        self.leaves.insert(key, value);
    }

    /// Remove `key`.
    pub fn remove(&mut self, key: &B256) {
        self.invalidate(key);
        self.leaves.remove(key);
    }

    /// Remove every key.
    pub fn clear(&mut self) {
        self.leaves.clear();
        self.subtries.clear();
    }

    fn invalidate(&mut self, key: &B256) {
        if let Some(cached) = self.subtries.get_mut(usize::from(key[0])) {
            *cached = None;
        }
    }

    /// The leaves whose first byte lies in `first..=last`.
    fn range(&self, first: u8, last: u8) -> impl Iterator<Item = (&B256, &Vec<u8>)> + '_ {
        let mut low = B256::ZERO;
        low[0] = first;
        let mut high = B256::repeat_byte(0xff);
        high[0] = last;
        self.leaves.range(low..=high)
    }

    /// The root hash.
    pub fn root(&mut self) -> B256 {
        if self.leaves.is_empty() {
            self.subtries.clear();
            return EMPTY_ROOT_HASH;
        }
        if self.leaves.len() < CACHE_FROM {
            self.subtries.clear();
            return hash_below(self.range(0, 0xff), 0);
        }
        if self.subtries.is_empty() {
            self.subtries = vec![None; 256];
        }
        for byte in 0..=255u8 {
            if self.subtries[usize::from(byte)].is_none() {
                let mut leaves = self.range(byte, byte).peekable();
                let hash = leaves.peek().is_some().then(|| hash_below(leaves, 2));
                self.subtries[usize::from(byte)] = Some(hash);
            }
        }
        let mut top = [None; 16];
        for (high, slot) in top.iter_mut().enumerate() {
            let mut children = [None; 16];
            for (low, child) in children.iter_mut().enumerate() {
                *child = self.subtries[high << 4 | low].flatten();
            }
            // A nibble with one non-empty child is an extension or leaf, not a branch.
            *slot = match children.iter().flatten().count() {
                0 => None,
                1 => {
                    let first = (high as u8) << 4;
                    Some(hash_below(self.range(first, first | 0x0f), 1))
                }
                _ => Some(branch_hash(&children)),
            };
        }
        match top.iter().flatten().count() {
            0 | 1 => hash_below(self.range(0, 0xff), 0),
            _ => branch_hash(&top),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// alloy-trie's root of the same leaves, built whole.
    fn reference(trie: &Trie) -> B256 {
        hash_below(trie.range(0, 0xff), 0)
    }

    #[test]
    fn cached_root_equals_a_full_rebuild_through_inserts_and_removals() {
        let mut trie = Trie::default();
        let key = |i: u64| keccak256(i.to_be_bytes());
        for i in 0..3000u64 {
            trie.insert(key(i), alloy_rlp::encode(i + 1));
        }
        assert_eq!(trie.root(), reference(&trie));
        for i in (0..3000u64).step_by(7) {
            trie.remove(&key(i));
            trie.insert(key(i + 10_000), alloy_rlp::encode(i));
        }
        assert_eq!(trie.root(), reference(&trie));
        // Down below the caching threshold and back.
        for i in 0..2500u64 {
            trie.remove(&key(i));
        }
        assert_eq!(trie.root(), reference(&trie));
        trie.insert(key(5), alloy_rlp::encode(5u64));
        assert_eq!(trie.root(), reference(&trie));
    }
}
