//! cosmos/iavl v0.12.0's `RangeProof` (`proof_range.go`, `proof.go`, `proof_path.go`), as
//! the `iavl:v` and `iavl:a` proof operators carry it: decoded from amino, its root computed
//! from the leftmost leaf's path and the inner paths of the leaves after it, then an item or
//! an absence checked against its leaves.

use super::super::amino::{
    byte_slice, decode_list, decode_prefixed_list, decode_prefixed_struct, put_bytes, put_zigzag,
    uvarint, varint, Field, BYTE_LENGTH, VARINT,
};
use super::super::go_sort::search;
use super::Error;
use sha2::{Digest, Sha256};

/// `proofInnerNode`: height, size, version, left and right child hashes.
const INNER_NODE: [Field; 5] = [
    Field::Scalar(VARINT),
    Field::Scalar(VARINT),
    Field::Scalar(VARINT),
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(BYTE_LENGTH),
];
/// `proofLeafNode`: key, value hash, version.
const LEAF_NODE: [Field; 3] = [
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(VARINT),
];
/// `RangeProof`: left path, inner node paths, leaves.
const RANGE_PROOF: [Field; 3] = [Field::List, Field::List, Field::List];

/// `proofInnerNode`.
#[derive(Debug, Default, Clone)]
pub(super) struct InnerNode {
    height: i64,
    size: i64,
    version: i64,
    pub(super) left: Vec<u8>,
    pub(super) right: Vec<u8>,
}

/// `proofLeafNode`.
#[derive(Debug, Default, Clone)]
struct LeafNode {
    key: Vec<u8>,
    value_hash: Vec<u8>,
    version: i64,
}

/// `RangeProof`: the path to the leftmost leaf, the inner path to each later leaf, the leaves.
#[derive(Debug, Clone, Default)]
pub(super) struct RangeProof {
    pub(super) left_path: Vec<InnerNode>,
    inner_nodes: Vec<Vec<InnerNode>>,
    leaves: Vec<LeafNode>,
}

/// The root a range proof gives, and whether its last leaf is the tree's last (`treeEnd`).
pub(super) struct Root {
    pub(super) hash: Vec<u8>,
    tree_end: bool,
}

impl RangeProof {
    /// Decodes a length-prefixed `RangeProof`, giving it and the bytes it is counted as taking.
    pub(super) fn decode(data: &[u8]) -> Result<(Self, usize), Error> {
        let mut proof = RangeProof::default();
        let used = decode_prefixed_struct(data, &RANGE_PROOF, &mut |number, bytes| match number {
            1 => decode_list(bytes, 1, &mut |b| inner_node(b, &mut proof.left_path)),
            2 => decode_list(bytes, 2, &mut |b| {
                let mut path = Vec::new();
                let used = decode_prefixed_list(b, &mut |b| inner_node(b, &mut path))?;
                proof.inner_nodes.push(path);
                Ok(used)
            }),
            _ => decode_list(bytes, 3, &mut |b| leaf_node(b, &mut proof.leaves)),
        })?;
        Ok((proof, used))
    }

    /// The number of leaves.
    pub(super) fn leaf_count(&self) -> usize {
        self.leaves.len()
    }

    /// `_computeRootHash`: folds each leaf up its path; where the path to the leftmost leaf
    /// (or an inner path) has a right child, the next leaves must hash up to it.
    pub(super) fn root(&self) -> Result<Root, Error> {
        if self.leaves.is_empty() {
            return Err("range proof: no leaves");
        }
        if self.inner_nodes.len() + 1 != self.leaves.len() {
            return Err("range proof: InnerNodes vs Leaves length mismatch");
        }
        let mut walk = Walk {
            leaves: &self.leaves,
            inners: &self.inner_nodes,
        };
        let (hash, tree_end, done) = walk.compute(&self.left_path, true)?;
        if !done {
            return Err("range proof: left over leaves");
        }
        Ok(Root { hash, tree_end })
    }

    /// `VerifyItem`: the leaf found by binary search on `key` is `key`'s, with the hash of
    /// `value`.
    pub(super) fn verify_item(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        let leaves = &self.leaves;
        let i = search(leaves.len(), |i| key <= leaves[i].key.as_slice());
        let leaf = leaves
            .get(i)
            .filter(|leaf| leaf.key == key)
            .ok_or("leaf key not found in proof")?;
        if leaf.value_hash != Sha256::digest(value).as_slice() {
            return Err("leaf value hash not same");
        }
        Ok(())
    }

    /// `VerifyAbsence`: `key` falls before the first leaf on the tree's left edge, or between
    /// two leaves, or after the last leaf on the tree's right edge.
    pub(super) fn verify_absence(&self, key: &[u8], root: &Root) -> Result<(), Error> {
        let first = &self.leaves[0].key;
        match key.cmp(first.as_slice()) {
            std::cmp::Ordering::Less => {
                return if self.left_path.iter().all(|n| n.left.is_empty()) {
                    Ok(())
                } else {
                    Err("absence not proved by left path")
                };
            }
            std::cmp::Ordering::Equal => return Err("absence disproved via first item"),
            std::cmp::Ordering::Greater => {}
        }
        if self.left_path.is_empty() || self.left_path.iter().all(|n| n.right.is_empty()) {
            return Ok(());
        }
        for leaf in &self.leaves[1..] {
            match key.cmp(leaf.key.as_slice()) {
                std::cmp::Ordering::Less => return Ok(()),
                std::cmp::Ordering::Equal => return Err("absence disproved via a later item"),
                std::cmp::Ordering::Greater => {}
            }
        }
        if root.tree_end {
            Ok(())
        } else {
            Err("absence not proved by right leaf")
        }
    }
}

/// The leaves and inner paths not yet used by `_computeRootHash`'s `COMPUTEHASH`.
struct Walk<'a> {
    leaves: &'a [LeafNode],
    inners: &'a [Vec<InnerNode>],
}

/// What a finished `COMPUTEHASH` call gives: its root, whether its last leaf is the tree's
/// last, and whether all leaves were used.
type Computed = (Vec<u8>, bool, bool);

/// A `COMPUTEHASH` call waiting on the calls it makes for the right children of its path.
struct Call<'a> {
    path: &'a [InnerNode],
    /// The index of the first node of `path` with a right child (`path.len()` if none).
    first_right: usize,
    rightmost: bool,
    /// The root its leaf gives along `path`.
    hash: Vec<u8>,
    /// The node whose right child is being (or was last) derived, counting down from the
    /// root's end of `path`.
    depth: usize,
}

impl<'a> Walk<'a> {
    /// `COMPUTEHASH`: the next leaf's root along `path`; for each right child on the path, from
    /// the leaf up, the following leaves (under the next inner path) must hash to it. The
    /// client recurses once per leaf; the calls waiting here are kept on a heap stack, so that
    /// a proof of many leaves cannot exhaust the thread's stack.
    fn compute(&mut self, path: &'a [InnerNode], rightmost: bool) -> Result<Computed, Error> {
        let mut waiting: Vec<Call<'a>> = Vec::new();
        let mut finished = self.enter(path, rightmost, &mut waiting)?;
        loop {
            let Some(call) = waiting.last_mut() else {
                return finished.ok_or("range proof: no call finished");
            };
            if let Some((derived, tree_end, done)) = finished.take() {
                // The result of the call made for `call.path[call.depth]`'s right child.
                if derived != call.path[call.depth].right {
                    return Err("range proof: intermediate root hash doesn't match");
                }
                if done {
                    let hash = std::mem::take(&mut call.hash);
                    waiting.pop();
                    finished = Some((hash, tree_end, true));
                }
                continue;
            }
            match (0..call.depth)
                .rev()
                .find(|&d| !call.path[d].right.is_empty())
            {
                Some(depth) => {
                    call.depth = depth;
                    let (inner, rest) = self
                        .inners
                        .split_first()
                        .ok_or("range proof: too few inner paths")?;
                    self.inners = rest;
                    // `rightmost && rpath.isRightmost()`, `rpath` being the nodes above.
                    let rightmost = call.rightmost && call.first_right >= depth;
                    finished = self.enter(inner, rightmost, &mut waiting)?;
                }
                None => {
                    let hash = std::mem::take(&mut call.hash);
                    waiting.pop();
                    finished = Some((hash, false, false));
                }
            }
        }
    }

    /// The start of a `COMPUTEHASH` call: takes the next leaf and hashes it up `path`. Gives
    /// the call's result if that was the last leaf, else leaves the call waiting.
    fn enter(
        &mut self,
        path: &'a [InnerNode],
        rightmost: bool,
        waiting: &mut Vec<Call<'a>>,
    ) -> Result<Option<Computed>, Error> {
        let (leaf, rest) = self
            .leaves
            .split_first()
            .ok_or("range proof: too few leaves")?;
        self.leaves = rest;
        let hash = path
            .iter()
            .rev()
            .fold(leaf.hash(), |hash, node| node.hash(&hash));
        let first_right = path
            .iter()
            .position(|n| !n.right.is_empty())
            .unwrap_or(path.len());
        if self.leaves.is_empty() {
            return Ok(Some((hash, rightmost && first_right == path.len(), true)));
        }
        waiting.push(Call {
            path,
            first_right,
            rightmost,
            hash,
            depth: path.len(),
        });
        Ok(None)
    }
}

fn inner_node(data: &[u8], out: &mut Vec<InnerNode>) -> Result<usize, Error> {
    let mut node = InnerNode::default();
    let used = decode_prefixed_struct(data, &INNER_NODE, &mut |number, bytes| match number {
        1 => {
            let (height, n) = varint(bytes)?;
            if !(-128..=127).contains(&height) {
                return Err("amino: int8 out of range");
            }
            node.height = height;
            Ok(n)
        }
        2 | 3 => {
            let (value, n) = uvarint(bytes)?;
            if number == 2 {
                node.size = value as i64;
            } else {
                node.version = value as i64;
            }
            Ok(n)
        }
        _ => {
            let (hash, n) = byte_slice(bytes)?;
            if number == 4 {
                node.left = hash.to_vec();
            } else {
                node.right = hash.to_vec();
            }
            Ok(n)
        }
    })?;
    out.push(node);
    Ok(used)
}

fn leaf_node(data: &[u8], out: &mut Vec<LeafNode>) -> Result<usize, Error> {
    let mut leaf = LeafNode::default();
    let used = decode_prefixed_struct(data, &LEAF_NODE, &mut |number, bytes| {
        if number == 3 {
            let (version, n) = uvarint(bytes)?;
            leaf.version = version as i64;
            return Ok(n);
        }
        let (value, n) = byte_slice(bytes)?;
        if number == 1 {
            leaf.key = value.to_vec();
        } else {
            leaf.value_hash = value.to_vec();
        }
        Ok(n)
    })?;
    out.push(leaf);
    Ok(used)
}

impl LeafNode {
    /// `proofLeafNode.Hash`: height 0, size 1, version, key, value hash.
    fn hash(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        put_zigzag(&mut buf, 0);
        put_zigzag(&mut buf, 1);
        put_zigzag(&mut buf, self.version);
        put_bytes(&mut buf, &self.key);
        put_bytes(&mut buf, &self.value_hash);
        Sha256::digest(&buf).to_vec()
    }
}

impl InnerNode {
    /// `proofInnerNode.Hash`: the child goes left unless the node holds a left hash.
    fn hash(&self, child: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        put_zigzag(&mut buf, self.height);
        put_zigzag(&mut buf, self.size);
        put_zigzag(&mut buf, self.version);
        if self.left.is_empty() {
            put_bytes(&mut buf, child);
            put_bytes(&mut buf, &self.right);
        } else {
            put_bytes(&mut buf, &self.left);
            put_bytes(&mut buf, child);
        }
        Sha256::digest(&buf).to_vec()
    }
}
