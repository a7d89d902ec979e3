//! The legacy (amino-encoded) proof operators of the client's original proof runtime
//! (`lightclient/v1` `DefaultProofRuntime`), which Moran and Planck keep:
//! - `iavl:v`: cosmos/iavl v0.12.0 `IAVLValueOp` (`proof_iavl_value.go`): a `RangeProof`
//!   whose root is verified, then the key's leaf must hold the value's hash;
//! - `iavl:a`: `IAVLAbsenceOp` (`proof_iavl_absence.go`): a `RangeProof` (or none) showing the
//!   key is absent; it takes no value (an absence proof is asked for by an empty value);
//! - `simple:v`: bnb-chain/tendermint v0.31 `SimpleValueOp` (`crypto/merkle/
//!   proof_simple_value.go`, `simple_proof.go`): a simple Merkle proof of the key and the
//!   value's hash;
//! - `multistore`: bnb-chain/bsc `core/vm/lightclient/v1/multistoreproof.go` and
//!   `rootmultistore.go`, the store hashes of a Cosmos multistore; its root is
//!   bnb-chain/tendermint's `SimpleHashFromMap`.
//!
//! Moran's verifiers (`contracts_lightclient.go`) narrow these: an `iavl:v` proof must hold
//! exactly one leaf and no inner node of its left path both children
//! ([`IavlValueOp::check_single_value`]), a multistore proof no store name twice
//! ([`MultiStoreOp::check_unique_names`]); `iavl:a` and `simple:v` are refused.

use super::super::amino::{
    byte_slice, decode_list, decode_prefixed_struct, decode_struct, length_prefixed_body,
    put_bytes, put_uvarint, uvarint, Field, BYTE_LENGTH, VARINT,
};
use super::super::merkle::{inner_hash, leaf_hash, simple_hash, split_point};
use super::range_proof::RangeProof;
use super::Error;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};

/// `IAVLValueOp` / `IAVLAbsenceOp` / `SimpleValueOp` / `MultiStoreProofOp`: the proof, a
/// pointer (the key is not encoded).
const OP: [Field; 1] = [Field::Scalar(BYTE_LENGTH)];
/// `SimpleProof`: total, index, leaf hash, aunts.
const SIMPLE_PROOF: [Field; 4] = [
    Field::Scalar(VARINT),
    Field::Scalar(VARINT),
    Field::Scalar(BYTE_LENGTH),
    Field::List,
];
/// `MultiStoreProof`: store infos.
const MULTI_STORE_PROOF: [Field; 1] = [Field::List];
/// `StoreInfo`: name, core.
const STORE_INFO: [Field; 2] = [Field::Scalar(BYTE_LENGTH), Field::Scalar(BYTE_LENGTH)];
/// `StoreCore`: commit ID.
const STORE_CORE: [Field; 1] = [Field::Scalar(BYTE_LENGTH)];
/// `CommitID`: version, hash.
const COMMIT_ID: [Field; 2] = [Field::Scalar(VARINT), Field::Scalar(BYTE_LENGTH)];

/// A decoded `iavl:v` operator.
#[derive(Debug, Clone)]
pub(super) struct IavlValueOp {
    pub(super) key: Vec<u8>,
    proof: RangeProof,
}

/// A decoded `iavl:a` operator (its proof may be nil).
#[derive(Debug, Clone)]
pub(super) struct IavlAbsenceOp {
    pub(super) key: Vec<u8>,
    proof: Option<RangeProof>,
}

/// A decoded `simple:v` operator: its key and `SimpleProof`.
#[derive(Debug, Clone)]
pub(super) struct SimpleValueOp {
    pub(super) key: Vec<u8>,
    total: i64,
    index: i64,
    leaf_hash: Vec<u8>,
    aunts: Vec<Vec<u8>>,
}

/// A decoded `multistore` operator: its key and the stores' `(name, version, hash)`.
#[derive(Debug, Clone)]
pub(super) struct MultiStoreOp {
    pub(super) key: Vec<u8>,
    stores: Vec<(Vec<u8>, i64, Vec<u8>)>,
}

/// `Codec.UnmarshalBinaryLengthPrefixed` of an operator struct whose one field (the proof, a
/// pointer) `proof` decodes; gives whether the proof was there (not nil).
fn decode_op<'a>(
    data: &'a [u8],
    mut proof: impl FnMut(&'a [u8]) -> Result<usize, Error>,
) -> Result<bool, Error> {
    let mut found = false;
    decode_struct(length_prefixed_body(data)?, &OP, &mut |_, bytes| {
        found = true;
        proof(bytes)
    })?;
    Ok(found)
}

/// The one argument of an operator that takes the value (or root) below it.
fn single_arg(args: &[Vec<u8>]) -> Result<&[u8], Error> {
    match args {
        [value] => Ok(value),
        _ => Err("value size is not 1"),
    }
}

/// The range proof an `iavl:v` or `iavl:a` operator's data wraps (`None` when nil).
fn decode_range_proof(data: &[u8]) -> Result<Option<RangeProof>, Error> {
    let mut proof = None;
    decode_op(data, |bytes| {
        let (decoded, used) = RangeProof::decode(bytes)?;
        proof = Some(decoded);
        Ok(used)
    })?;
    Ok(proof)
}

impl IavlValueOp {
    /// `IAVLValueOpDecoder`. A nil proof is an error (its `Run` dereferences it).
    pub(super) fn decode(key: &[u8], data: &[u8]) -> Result<Self, Error> {
        Ok(IavlValueOp {
            key: key.to_vec(),
            proof: decode_range_proof(data)?.ok_or("proof is nil")?,
        })
    }

    /// `singleValueOpVerifier` (Moran on): one leaf, and no inner node of the left path
    /// holding both children.
    pub(super) fn check_single_value(&self) -> Result<(), Error> {
        if self.proof.leaf_count() != 1 {
            return Err("range proof suspended");
        }
        if self
            .proof
            .left_path
            .iter()
            .any(|node| !node.left.is_empty() && !node.right.is_empty())
        {
            return Err("both right and left hash exit!");
        }
        Ok(())
    }

    /// `IAVLValueOp.Run`: the range proof's root, once the key's leaf is shown to hold the
    /// value's hash.
    pub(super) fn run(&self, args: &[Vec<u8>]) -> Result<Vec<u8>, Error> {
        let value = single_arg(args)?;
        let root = self.proof.root()?;
        self.proof.verify_item(&self.key, value)?;
        Ok(root.hash)
    }
}

impl IavlAbsenceOp {
    /// `IAVLAbsenceOpDecoder`.
    pub(super) fn decode(key: &[u8], data: &[u8]) -> Result<Self, Error> {
        Ok(IavlAbsenceOp {
            key: key.to_vec(),
            proof: decode_range_proof(data)?,
        })
    }

    /// `IAVLAbsenceOp.Run`: no argument; without a proof the root is empty (nil), else the
    /// range proof's root once the key is shown absent.
    pub(super) fn run(&self, args: &[Vec<u8>]) -> Result<Vec<u8>, Error> {
        if !args.is_empty() {
            return Err("absence proof: expected 0 args");
        }
        let Some(proof) = &self.proof else {
            return Ok(Vec::new());
        };
        let root = proof.root()?;
        proof.verify_absence(&self.key, &root)?;
        Ok(root.hash)
    }
}

impl SimpleValueOp {
    /// `SimpleValueOpDecoder`. A nil proof is an error (its `Run` dereferences it).
    pub(super) fn decode(key: &[u8], data: &[u8]) -> Result<Self, Error> {
        let mut op = SimpleValueOp {
            key: key.to_vec(),
            total: 0,
            index: 0,
            leaf_hash: Vec::new(),
            aunts: Vec::new(),
        };
        let found = decode_op(data, |bytes| {
            decode_prefixed_struct(bytes, &SIMPLE_PROOF, &mut |number, bytes| match number {
                1 | 2 => {
                    let (value, n) = uvarint(bytes)?;
                    if number == 1 {
                        op.total = value as i64;
                    } else {
                        op.index = value as i64;
                    }
                    Ok(n)
                }
                3 => {
                    let (hash, n) = byte_slice(bytes)?;
                    op.leaf_hash = hash.to_vec();
                    Ok(n)
                }
                _ => decode_list(bytes, 4, &mut |b| {
                    let (aunt, n) = byte_slice(b)?;
                    op.aunts.push(aunt.to_vec());
                    Ok(n)
                }),
            })
        })?;
        if found {
            Ok(op)
        } else {
            Err("proof is nil")
        }
    }

    /// `SimpleValueOp.Run`: the leaf `SHA256(0 || key || SHA256(value))` (each length-prefixed)
    /// must be the proof's, whose root it gives (empty when the proof's shape is wrong).
    pub(super) fn run(&self, args: &[Vec<u8>]) -> Result<Vec<u8>, Error> {
        let value = single_arg(args)?;
        let mut pair = Vec::new();
        put_bytes(&mut pair, &self.key);
        put_bytes(&mut pair, &Sha256::digest(value));
        if leaf_hash(&pair).as_slice() != self.leaf_hash {
            return Err("leaf hash mismatch");
        }
        Ok(
            hash_from_aunts(self.index, self.total, &self.leaf_hash, &self.aunts)
                .unwrap_or_default(),
        )
    }
}

/// `computeHashFromAunts`: the root over `total` leaves of the leaf at `index`, given its
/// aunts from the leaf's sibling up; `None` (nil) when they do not fit.
fn hash_from_aunts(index: i64, total: i64, leaf: &[u8], aunts: &[Vec<u8>]) -> Option<Vec<u8>> {
    if index >= total || index < 0 || total <= 0 {
        return None;
    }
    if total == 1 {
        return (aunts.is_empty() && !leaf.is_empty()).then(|| leaf.to_vec());
    }
    let (last, below) = aunts.split_last()?;
    let left = split_point(total as usize) as i64;
    if index < left {
        let hash = hash_from_aunts(index, left, leaf, below)?;
        Some(inner_hash(&hash, last).to_vec())
    } else {
        let hash = hash_from_aunts(index - left, total - left, leaf, below)?;
        Some(inner_hash(last, &hash).to_vec())
    }
}

impl MultiStoreOp {
    /// `MultiStoreProofOpDecoder`. A nil proof is an error (its `Run` dereferences it).
    pub(super) fn decode(key: &[u8], data: &[u8]) -> Result<Self, Error> {
        let mut stores = Vec::new();
        let found = decode_op(data, |bytes| {
            decode_prefixed_struct(bytes, &MULTI_STORE_PROOF, &mut |_, bytes| {
                decode_list(bytes, 1, &mut |b| store_info(b, &mut stores))
            })
        })?;
        if !found {
            return Err("proof is nil");
        }
        Ok(MultiStoreOp {
            key: key.to_vec(),
            stores,
        })
    }

    /// `multiStoreOpVerifier` (Moran on): no store name twice (a set of names, as the
    /// client's map, so that many stores take linear time).
    pub(super) fn check_unique_names(&self) -> Result<(), Error> {
        let mut names = HashSet::with_capacity(self.stores.len());
        if self.stores.iter().all(|(name, _, _)| names.insert(name)) {
            Ok(())
        } else {
            Err("duplicated store")
        }
    }

    /// `MultiStoreProofOp.Run`: the multistore root, once the operator's store is shown to
    /// have the hash given.
    pub(super) fn run(&self, args: &[Vec<u8>]) -> Result<Vec<u8>, Error> {
        let value = single_arg(args)?;
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
            MultiStoreOp::decode(b"legit", &encode(&bad.stores))
                .unwrap()
                .check_unique_names(),
            Err("duplicated store")
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

    /// 100,000 stores of distinct names pass `multiStoreOpVerifier`; one more repeating the
    /// first is refused. (The check is a set lookup per name, as the client's map.)
    #[test]
    fn a_duplicate_among_many_store_names_is_refused() {
        let mut stores: Vec<_> = (0..100_000u32)
            .map(|i| (i.to_be_bytes().to_vec(), 1, Vec::new()))
            .collect();
        assert_eq!(multistore(stores.clone()).check_unique_names(), Ok(()));
        stores.push(stores[0].clone());
        assert_eq!(
            multistore(stores).check_unique_names(),
            Err("duplicated store")
        );
    }
}
