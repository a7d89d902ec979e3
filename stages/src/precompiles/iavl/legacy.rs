//! The legacy proof operators Moran and Planck accept, amino-encoded:
//! - `iavl:v`: cosmos/iavl v0.12.0 `IAVLValueOp` (`proof_iavl_value.go`, `proof_range.go`,
//!   `proof.go`, `proof_path.go`), a `RangeProof` for the key. Under these rules it must hold
//!   exactly one leaf and no inner node of its left path may hold both children
//!   (`singleValueOpVerifier`), so its root is the leaf hash folded through the left path;
//! - `multistore`: bnb-chain/bsc `core/vm/lightclient/v1/multistoreproof.go` and
//!   `rootmultistore.go`, the store hashes of a Cosmos multistore, no name twice
//!   (`multiStoreOpVerifier`); its root is bnb-chain/tendermint's `SimpleHashFromMap`.

use super::amino::{
    byte_slice, decode_list, decode_prefixed_list, decode_prefixed_struct, decode_struct, uvarint,
    varint, Field, BYTE_LENGTH, VARINT,
};
use super::Error;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

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
/// `IAVLValueOp` / `MultiStoreProofOp`: the proof (the key is not encoded).
const OP: [Field; 1] = [Field::Scalar(BYTE_LENGTH)];
/// `MultiStoreProof`: store infos.
const MULTI_STORE_PROOF: [Field; 1] = [Field::List];
/// `StoreInfo`: name, core.
const STORE_INFO: [Field; 2] = [Field::Scalar(BYTE_LENGTH), Field::Scalar(BYTE_LENGTH)];
/// `StoreCore`: commit ID.
const STORE_CORE: [Field; 1] = [Field::Scalar(BYTE_LENGTH)];
/// `CommitID`: version, hash.
const COMMIT_ID: [Field; 2] = [Field::Scalar(VARINT), Field::Scalar(BYTE_LENGTH)];

/// `proofInnerNode`.
#[derive(Debug, Default, Clone)]
struct InnerNode {
    height: i64,
    size: i64,
    version: i64,
    left: Vec<u8>,
    right: Vec<u8>,
}

/// `proofLeafNode`.
#[derive(Debug, Default, Clone)]
struct LeafNode {
    key: Vec<u8>,
    value_hash: Vec<u8>,
    version: i64,
}

/// A decoded `iavl:v` operator.
#[derive(Debug, Clone)]
pub(super) struct IavlValueOp {
    pub(super) key: Vec<u8>,
    left_path: Vec<InnerNode>,
    inner_paths: usize,
    leaves: Vec<LeafNode>,
}

/// A decoded `multistore` operator: its key and the stores' `(name, version, hash)`.
#[derive(Debug, Clone)]
pub(super) struct MultiStoreOp {
    pub(super) key: Vec<u8>,
    stores: Vec<(Vec<u8>, i64, Vec<u8>)>,
}

/// `Codec.UnmarshalBinaryLengthPrefixed` of an operator struct whose one field (the proof, a
/// pointer) `proof` decodes; a missing proof is an error, as the client's nil dereference is.
fn decode_op<'a>(
    data: &'a [u8],
    mut proof: impl FnMut(&'a [u8]) -> Result<usize, Error>,
) -> Result<(), Error> {
    let (len, n) = uvarint(data)?;
    if len != (data.len() - n) as u64 {
        return Err("amino: length prefix does not match the bytes");
    }
    let mut found = false;
    decode_struct(&data[n..], &OP, &mut |_, bytes| {
        found = true;
        proof(bytes)
    })?;
    if found {
        Ok(())
    } else {
        Err("proof is nil")
    }
}

impl IavlValueOp {
    /// `IAVLValueOpDecoder`, then `singleValueOpVerifier`.
    pub(super) fn decode(key: &[u8], data: &[u8]) -> Result<Self, Error> {
        let mut op = IavlValueOp {
            key: key.to_vec(),
            left_path: Vec::new(),
            inner_paths: 0,
            leaves: Vec::new(),
        };
        decode_op(data, |bytes| {
            let (mut left_path, mut inner_paths, mut leaves) = (Vec::new(), 0, Vec::new());
            let used =
                decode_prefixed_struct(bytes, &RANGE_PROOF, &mut |number, bytes| match number {
                    1 => decode_list(bytes, 1, &mut |b| inner_node(b, &mut left_path)),
                    2 => decode_list(bytes, 2, &mut |b| {
                        inner_paths += 1;
                        decode_prefixed_list(b, &mut |b| inner_node(b, &mut Vec::new()))
                    }),
                    _ => decode_list(bytes, 3, &mut |b| leaf_node(b, &mut leaves)),
                })?;
            (op.left_path, op.inner_paths, op.leaves) = (left_path, inner_paths, leaves);
            Ok(used)
        })?;
        if op.leaves.len() != 1 {
            return Err("range proof suspended");
        }
        if op
            .left_path
            .iter()
            .any(|node| !node.left.is_empty() && !node.right.is_empty())
        {
            return Err("both right and left hash exit!");
        }
        Ok(op)
    }

    /// `IAVLValueOp.Run`: the root of the one-leaf range proof, once the leaf is shown to be
    /// the operator's key with the value's hash.
    pub(super) fn run(&self, args: &[Vec<u8>]) -> Result<Vec<u8>, Error> {
        let [value] = args else {
            return Err("value size is not 1");
        };
        // `_computeRootHash`: one inner path fewer than leaves, so none here.
        if self.inner_paths != 0 {
            return Err("InnerNodes vs Leaves length mismatch");
        }
        let leaf = &self.leaves[0];
        let mut hash = leaf.hash();
        for node in self.left_path.iter().rev() {
            hash = node.hash(&hash);
        }
        if leaf.key != self.key {
            return Err("leaf key not found in proof");
        }
        if leaf.value_hash != Sha256::digest(value).as_slice() {
            return Err("leaf value hash not same");
        }
        Ok(hash)
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

/// Appends `value` as a zigzag varint (`amino.EncodeVarint`, `EncodeInt8`).
fn put_zigzag(out: &mut Vec<u8>, value: i64) {
    put_uvarint(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_uvarint(out: &mut Vec<u8>, value: u64) {
    super::super::protobuf::put_varint(out, value);
}

/// `amino.EncodeByteSlice`.
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uvarint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
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

impl MultiStoreOp {
    /// `MultiStoreProofOpDecoder`, then `multiStoreOpVerifier`.
    pub(super) fn decode(key: &[u8], data: &[u8]) -> Result<Self, Error> {
        let mut stores = Vec::new();
        decode_op(data, |bytes| {
            decode_prefixed_struct(bytes, &MULTI_STORE_PROOF, &mut |_, bytes| {
                decode_list(bytes, 1, &mut |b| store_info(b, &mut stores))
            })
        })?;
        for (i, (name, _, _)) in stores.iter().enumerate() {
            if stores[..i].iter().any(|(other, _, _)| other == name) {
                return Err("duplicated store");
            }
        }
        Ok(MultiStoreOp {
            key: key.to_vec(),
            stores,
        })
    }

    /// `MultiStoreProofOp.Run`: the multistore root, once the operator's store is shown to
    /// have the hash given.
    pub(super) fn run(&self, args: &[Vec<u8>]) -> Result<Vec<u8>, Error> {
        let [value] = args else {
            return Err("value size is not 1");
        };
        let (_, _, hash) = self
            .stores
            .iter()
            .find(|(name, _, _)| *name == self.key)
            .ok_or("key not found in multistore proof")?;
        if hash != value {
            return Err("hash mismatch for substore");
        }
        Ok(self.root())
    }

    /// `CommitInfo.Hash`: `SimpleHashFromMap` of each store's name and `StoreInfo.Hash`
    /// (SHA-256 of its length-prefixed amino `StoreCore`), the map hashing each value again.
    fn root(&self) -> Vec<u8> {
        // A map by name: a later store of the same name replaces the earlier one.
        let pairs: BTreeMap<&[u8], [u8; 32]> = self
            .stores
            .iter()
            .map(|(name, version, hash)| {
                let mut commit_id = Vec::new();
                if *version != 0 {
                    commit_id.push(0x08);
                    put_uvarint(&mut commit_id, *version as u64);
                }
                if !hash.is_empty() {
                    commit_id.push(0x12);
                    put_bytes(&mut commit_id, hash);
                }
                let mut core = Vec::new();
                if !commit_id.is_empty() {
                    core.push(0x0a);
                    put_bytes(&mut core, &commit_id);
                }
                let mut prefixed = Vec::new();
                put_bytes(&mut prefixed, &core);
                let store_hash = Sha256::digest(&prefixed);
                (name.as_slice(), Sha256::digest(store_hash).into())
            })
            .collect();
        let items: Vec<Vec<u8>> = pairs
            .iter()
            .map(|(name, value_hash)| {
                let mut item = Vec::new();
                put_bytes(&mut item, name);
                put_bytes(&mut item, value_hash);
                item
            })
            .collect();
        simple_hash(&items)
    }
}

fn store_info(data: &[u8], out: &mut Vec<(Vec<u8>, i64, Vec<u8>)>) -> Result<usize, Error> {
    let (mut name, mut version, mut hash) = (Vec::new(), 0i64, Vec::new());
    let used = decode_prefixed_struct(data, &STORE_INFO, &mut |number, bytes| {
        if number == 1 {
            let (value, n) = byte_slice(bytes)?;
            name = value.to_vec();
            return Ok(n);
        }
        decode_prefixed_struct(bytes, &STORE_CORE, &mut |_, bytes| {
            decode_prefixed_struct(bytes, &COMMIT_ID, &mut |number, bytes| {
                if number == 1 {
                    let (value, n) = uvarint(bytes)?;
                    version = value as i64;
                    Ok(n)
                } else {
                    let (value, n) = byte_slice(bytes)?;
                    hash = value.to_vec();
                    Ok(n)
                }
            })
        })
    })?;
    out.push((name, version, hash));
    Ok(used)
}

/// bnb-chain/tendermint v0.31 `SimpleHashFromByteSlices`: nothing for no items, leaves
/// `SHA256(0x00 || item)`, inner nodes `SHA256(0x01 || left || right)`, split at the largest
/// power of two below the count.
fn simple_hash(items: &[Vec<u8>]) -> Vec<u8> {
    match items {
        [] => Vec::new(),
        [item] => Sha256::new()
            .chain_update([0u8])
            .chain_update(item)
            .finalize()
            .to_vec(),
        _ => {
            let split = items.len().next_power_of_two() / 2;
            Sha256::new()
                .chain_update([1u8])
                .chain_update(simple_hash(&items[..split]))
                .chain_update(simple_hash(&items[split..]))
                .finalize()
                .to_vec()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(name: &str, hash: &str) -> (Vec<u8>, i64, Vec<u8>) {
        (name.as_bytes().to_vec(), 1, hash.as_bytes().to_vec())
    }

    fn multistore(stores: Vec<(Vec<u8>, i64, Vec<u8>)>) -> MultiStoreOp {
        MultiStoreOp {
            key: b"legit".to_vec(),
            stores,
        }
    }

    /// `MultiStoreOp` amino bytes: `MultiStoreProofOp{Proof: &MultiStoreProof{StoreInfos}}`.
    fn encode(stores: &[(Vec<u8>, i64, Vec<u8>)]) -> Vec<u8> {
        let mut infos = Vec::new();
        for (name, version, hash) in stores {
            let mut commit_id = vec![0x08];
            put_uvarint(&mut commit_id, *version as u64);
            commit_id.push(0x12);
            put_bytes(&mut commit_id, hash);
            let mut core = vec![0x0a];
            put_bytes(&mut core, &commit_id);
            let mut info = vec![0x0a];
            put_bytes(&mut info, name);
            info.push(0x12);
            put_bytes(&mut info, &core);
            infos.push(0x0a);
            put_bytes(&mut infos, &info);
        }
        let mut op = vec![0x0a];
        put_bytes(&mut op, &infos);
        let mut out = Vec::new();
        put_bytes(&mut out, &op);
        out
    }

    /// bsc `TestMultiStore`: the store named by the key must have the value as its hash; with
    /// two stores of one name the first is checked and the last counts in the root, which is
    /// then the root of the one-store proof; `multiStoreOpVerifier` refuses such a proof.
    #[test]
    fn multistore_rules() {
        let good = multistore(vec![store("legit", "legithash")]);
        let root = good.run(&[b"legithash".to_vec()]).unwrap();
        assert!(good.run(&[b"evilhash".to_vec()]).is_err());
        let bad = multistore(vec![
            store("legit", "evilhash"),
            store("legit", "legithash"),
        ]);
        assert!(bad.run(&[b"legithash".to_vec()]).is_err());
        assert_eq!(bad.run(&[b"evilhash".to_vec()]).unwrap(), root);

        let decoded = MultiStoreOp::decode(b"legit", &encode(&good.stores)).unwrap();
        assert_eq!(decoded.stores, good.stores);
        assert_eq!(
            MultiStoreOp::decode(b"legit", &encode(&bad.stores)).err(),
            Some("duplicated store")
        );
    }

    /// go-amino's struct rules: fields must ascend, an unknown later field is skipped, a wrong
    /// typ3 or a length prefix that does not cover the rest is an error.
    #[test]
    fn amino_struct_rules() {
        let stores = vec![store("acc", "h")];
        let good = encode(&stores);
        assert!(MultiStoreOp::decode(b"acc", &good).is_ok());
        // An unknown field 2 (varint 7) after the proof.
        let mut extra = good[1..].to_vec();
        extra.extend([0x10, 0x07]);
        let mut with_extra = vec![extra.len() as u8];
        with_extra.extend(&extra);
        assert_eq!(
            MultiStoreOp::decode(b"acc", &with_extra).unwrap().stores,
            stores
        );
        // The proof field as a varint.
        let mut wrong_typ3 = good.clone();
        wrong_typ3[1] = 0x08;
        assert!(MultiStoreOp::decode(b"acc", &wrong_typ3).is_err());
        // Field 1 after field 2: not ascending.
        let mut repeated = extra.clone();
        repeated.extend(&good[1..]);
        let mut out_of_order = Vec::new();
        put_bytes(&mut out_of_order, &repeated);
        assert!(MultiStoreOp::decode(b"acc", &out_of_order).is_err());
        // A length prefix one short.
        let mut short = good.clone();
        short[0] -= 1;
        assert!(MultiStoreOp::decode(b"acc", &short).is_err());
        // No proof at all: the client dereferences a nil proof.
        assert_eq!(
            MultiStoreOp::decode(b"acc", &[0x00]).err(),
            Some("proof is nil")
        );
    }
}
