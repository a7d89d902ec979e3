//! bnb-chain/tendermint v0.31's simple Merkle tree (`crypto/merkle/simple_tree.go`,
//! `hash.go`): leaves hashed as `SHA256(0x00 || item)`, inner nodes as
//! `SHA256(0x01 || left || right)`, split at the largest power of two below the count.

use sha2::{Digest, Sha256};

/// `leafHash`.
pub(super) fn leaf_hash(item: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(item)
        .finalize()
        .into()
}

/// `innerHash`.
pub(super) fn inner_hash(left: &[u8], right: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// `getSplitPoint`: the largest power of two below `count` (at least 2).
pub(super) fn split_point(count: usize) -> usize {
    count.next_power_of_two() / 2
}

/// `SimpleHashFromByteSlices`: empty (nil) for no items.
pub(super) fn simple_hash(items: &[Vec<u8>]) -> Vec<u8> {
    match items {
        [] => Vec::new(),
        [item] => leaf_hash(item).to_vec(),
        _ => {
            let split = split_point(items.len());
            inner_hash(&simple_hash(&items[..split]), &simple_hash(&items[split..])).to_vec()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_points_are_the_largest_power_of_two_below() {
        for (count, split) in [(2, 1), (3, 2), (4, 2), (5, 4), (8, 4), (9, 8), (100, 64)] {
            assert_eq!(split_point(count), split, "{count}");
        }
    }
}
