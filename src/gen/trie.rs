//! A Merkle-Patricia trie over 32-byte hashed keys that recomputes only what changed: it caches
//! the hashes of the nodes in its top levels (by key prefix) and, after changes, rehashes only
//! the subtries under a changed prefix and the branches above them. How many levels are cached
//! follows the size (about one leaf per deepest prefix); small tries are rebuilt whole with
//! alloy-trie's `HashBuilder`.

use alloy_primitives::{keccak256, B256};
use alloy_trie::{HashBuilder, Nibbles, EMPTY_ROOT_HASH};
use std::collections::BTreeMap;

/// The most prefix levels cached (16^4 prefixes at the deepest).
const MAX_DEPTH: usize = 4;
/// Leaves per deepest prefix the depth aims for.
const LEAVES_PER_PREFIX: usize = 1;

/// A trie of hashed keys to RLP-encoded values with cached node hashes.
#[derive(Debug, Clone, Default)]
pub struct Trie {
    leaves: BTreeMap<B256, Vec<u8>>,
    /// `cache[k - 1][p]`: the hash of the node under the k-nibble prefix `p` (`Some(None)` when
    /// no key has it), `None` when stale. Levels 1..=depth.
    cache: Vec<Vec<Option<Option<B256>>>>,
}

/// The hash of the trie over `leaves` with the first `skip` nibbles of each key dropped: the
/// node under a common prefix of that length.
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

/// The first `k` nibbles of `key` as a number.
fn prefix(key: &B256, k: usize) -> usize {
    (0..k).fold(0, |acc, i| {
        let byte = key[i / 2];
        let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
        acc << 4 | usize::from(nibble)
    })
}

/// The smallest and largest key with the k-nibble prefix `p`.
fn prefix_bounds(p: usize, k: usize) -> (B256, B256) {
    let mut low = B256::ZERO;
    let mut high = B256::repeat_byte(0xff);
    for i in 0..k {
        let nibble = ((p >> (4 * (k - 1 - i))) & 0x0f) as u8;
        let (keep, shift) = if i % 2 == 0 { (0x0f, 4) } else { (0xf0, 0) };
        low[i / 2] = (low[i / 2] & keep) | (nibble << shift);
        high[i / 2] = (high[i / 2] & keep) | (nibble << shift);
    }
    (low, high)
}

impl Trie {
    /// Set `key` to the RLP `value`.
    pub fn insert(&mut self, key: B256, value: Vec<u8>) {
        self.invalidate(&key);
        self.leaves.insert(key, value);
    }

    /// The RLP value at `key`.
    pub fn get(&self, key: &B256) -> Option<&[u8]> {
        self.leaves.get(key).map(Vec::as_slice)
    }

    /// Remove `key`.
    pub fn remove(&mut self, key: &B256) {
        self.invalidate(key);
        self.leaves.remove(key);
    }

    /// Remove every key.
    pub fn clear(&mut self) {
        self.leaves.clear();
        self.cache.clear();
    }

    fn invalidate(&mut self, key: &B256) {
        for (level, hashes) in self.cache.iter_mut().enumerate() {
            hashes[prefix(key, level + 1)] = None;
        }
    }

    /// The leaves under the k-nibble prefix `p`.
    fn under(&self, p: usize, k: usize) -> impl Iterator<Item = (&B256, &Vec<u8>)> + '_ {
        let (low, high) = prefix_bounds(p, k);
        self.leaves.range(low..=high)
    }

    /// The levels worth caching for the current size.
    fn wanted_depth(&self) -> usize {
        let mut depth = 0;
        while depth < MAX_DEPTH && self.leaves.len() >= LEAVES_PER_PREFIX << (4 * (depth + 1)) {
            depth += 1;
        }
        depth
    }

    /// The hash of the node under the k-nibble prefix `p` (k >= 1), `None` when no key has it.
    /// The node is a branch when two or more of its children are non-empty; otherwise it is an
    /// extension or a leaf and is hashed from its leaves.
    fn node(&mut self, p: usize, k: usize) -> Option<B256> {
        if let Some(cached) = self.cache[k - 1][p] {
            return cached;
        }
        let hash = if k == self.cache.len() {
            let mut leaves = self.under(p, k).peekable();
            leaves.peek().is_some().then(|| hash_below(leaves, k))
        } else {
            let mut children = [None; 16];
            for (nibble, child) in children.iter_mut().enumerate() {
                *child = self.node(p << 4 | nibble, k + 1);
            }
            match children.iter().flatten().count() {
                0 => None,
                1 => Some(hash_below(self.under(p, k), k)),
                _ => Some(branch_hash(&children)),
            }
        };
        self.cache[k - 1][p] = Some(hash);
        hash
    }

    /// The root hash.
    pub fn root(&mut self) -> B256 {
        if self.leaves.is_empty() {
            self.cache.clear();
            return EMPTY_ROOT_HASH;
        }
        let depth = self.wanted_depth();
        if depth != self.cache.len() {
            self.cache = (1..=depth).map(|k| vec![None; 1 << (4 * k)]).collect();
        }
        if depth == 0 {
            return hash_below(self.leaves.iter(), 0);
        }
        let mut children = [None; 16];
        for (nibble, child) in children.iter_mut().enumerate() {
            *child = self.node(nibble, 1);
        }
        match children.iter().flatten().count() {
            0 | 1 => hash_below(self.leaves.iter(), 0),
            _ => branch_hash(&children),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// alloy-trie's root of the same leaves, built whole.
    fn reference(trie: &Trie) -> B256 {
        hash_below(trie.leaves.iter(), 0)
    }

    #[test]
    fn cached_root_equals_a_full_rebuild_through_inserts_and_removals() {
        let mut trie = Trie::default();
        let key = |i: u64| keccak256(i.to_be_bytes());
        for i in 0..20_000u64 {
            trie.insert(key(i), alloy_rlp::encode(i + 1));
        }
        assert_eq!(trie.root(), reference(&trie));
        assert_eq!(trie.cache.len(), 3, "three levels cached at 20,000 leaves");
        for i in (0..20_000u64).step_by(7) {
            trie.remove(&key(i));
            trie.insert(key(i + 10_000), alloy_rlp::encode(i));
        }
        assert_eq!(trie.root(), reference(&trie));
        // Down below the caching threshold and back.
        for i in 0..19_500u64 {
            trie.remove(&key(i));
        }
        assert_eq!(trie.root(), reference(&trie));
        trie.insert(key(5), alloy_rlp::encode(5u64));
        assert_eq!(trie.root(), reference(&trie));
    }
}
