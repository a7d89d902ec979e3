//! ICS23 commitment proof operators (`ics23:iavl`, `ics23:simple`), after bnb-chain/bsc
//! `core/vm/lightclient/v1/ics23_proof.go` (`CommitmentOp`) on bnb-chain/ics23 v0.1.0
//! (`proof.go`, `ops.go`, `compress.go`, `proofs.pb.go`).
//!
//! The operator's data is a protobuf `CommitmentProof`. It is decoded in full as gogoproto does
//! (a malformed non-existence, batch or compressed proof is an error even when a later field
//! replaces it), but only an existence proof can run: its root is computed, then the proof must
//! fit the operator's spec (`IavlSpec` or `TendermintSpec`), name the operator's key and prove
//! the value given. The root goes on to the next operator.

use super::super::protobuf::{Reader, Value};
use super::Error;
use sha2::{Digest, Sha256};

/// `HashOp_SHA256`, the only hash either spec accepts.
const SHA256: i32 = 1;
/// `HashOp_NO_HASH`.
const NO_HASH: i32 = 0;
/// `LengthOp_VAR_PROTO`.
const VAR_PROTO: i32 = 1;

/// Which of the two specs an operator's proof must fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Spec {
    /// `ics23.IavlSpec`: inner prefixes of 4 to 12 bytes (plus one 33-byte child), and the IAVL
    /// height/size/version checks of `ops.go` (`z`).
    Iavl,
    /// `ics23.TendermintSpec`: inner prefixes of exactly 1 byte (plus one 32-byte child).
    Tendermint,
}

impl Spec {
    /// `(MinPrefixLength, MaxPrefixLength, ChildSize)` of the spec's `InnerSpec`.
    fn inner(self) -> (usize, usize, usize) {
        match self {
            Spec::Iavl => (4, 12, 33),
            Spec::Tendermint => (1, 1, 32),
        }
    }
}

/// `ics23.LeafOp`.
#[derive(Debug, Default, Clone)]
struct LeafOp {
    hash: i32,
    prehash_key: i32,
    prehash_value: i32,
    length: i32,
    prefix: Vec<u8>,
}

/// `ics23.InnerOp`.
#[derive(Debug, Default, Clone)]
struct InnerOp {
    hash: i32,
    prefix: Vec<u8>,
    suffix: Vec<u8>,
}

/// `ics23.ExistenceProof`.
#[derive(Debug, Default, Clone)]
struct ExistenceProof {
    key: Vec<u8>,
    value: Vec<u8>,
    leaf: Option<LeafOp>,
    path: Vec<InnerOp>,
}

/// A decoded `CommitmentOp`: the spec its type names, its key and, when the proof's last `proof`
/// field was an existence proof, that proof.
#[derive(Debug, Clone)]
pub(super) struct CommitmentOp {
    pub(super) spec: Spec,
    pub(super) key: Vec<u8>,
    exist: Option<ExistenceProof>,
}

impl CommitmentOp {
    /// `CommitmentOpDecoder`: the proof op's data decoded as a `CommitmentProof`.
    pub(super) fn decode(spec: Spec, key: &[u8], data: &[u8]) -> Result<Self, Error> {
        Ok(CommitmentOp {
            spec,
            key: key.to_vec(),
            exist: decode_commitment_proof(data)?,
        })
    }

    /// `CommitmentOp.Run`: proves `args == [value]` under the operator's key and returns the root.
    pub(super) fn run(&self, args: &[Vec<u8>]) -> Result<Vec<u8>, Error> {
        let exist = self
            .exist
            .as_ref()
            .ok_or("ics23: only exist proof supported")?;
        let root = exist.calculate(None)?;
        let [value] = args else {
            return Err("ics23: args must be length 1");
        };
        // `VerifyMembership`: the proof must be for the operator's key, fit the spec, hold
        // the value and lead to the root just computed.
        if exist.key != self.key {
            return Err("ics23: proof is not for the operator's key");
        }
        exist.check_against_spec(self.spec)?;
        if exist.value != *value {
            return Err("ics23: provided value doesn't match proof");
        }
        if exist.calculate(Some(self.spec))? != root {
            return Err("ics23: calculated root doesn't match");
        }
        Ok(root)
    }
}

impl ExistenceProof {
    /// `ExistenceProof.calculate`: the leaf hash, then each inner step; with a spec, a step
    /// whose result is longer than a child of 32 bytes or more is refused.
    fn calculate(&self, spec: Option<Spec>) -> Result<Vec<u8>, Error> {
        let leaf = self
            .leaf
            .as_ref()
            .ok_or("ics23: existence proof needs defined LeafOp")?;
        let mut res = leaf.apply(&self.key, &self.value)?;
        for step in &self.path {
            res = step.apply(&res)?;
            if let Some(spec) = spec {
                let (_, _, child_size) = spec.inner();
                if res.len() > child_size && child_size >= 32 {
                    return Err("ics23: inner step result too long");
                }
            }
        }
        Ok(res)
    }

    /// `ExistenceProof.CheckAgainstSpec` (neither spec limits the depth).
    fn check_against_spec(&self, spec: Spec) -> Result<(), Error> {
        let leaf = self
            .leaf
            .as_ref()
            .ok_or("ics23: existence proof needs defined LeafOp")?;
        leaf.check_against_spec(spec)?;
        for (layer, inner) in self.path.iter().enumerate() {
            inner.check_against_spec(spec, layer + 1)?;
        }
        Ok(())
    }
}

impl LeafOp {
    /// `LeafOp.Apply`.
    fn apply(&self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, Error> {
        if key.is_empty() {
            return Err("ics23: leaf op needs key");
        }
        if value.is_empty() {
            return Err("ics23: leaf op needs value");
        }
        let mut data = self.prefix.clone();
        data.extend(prepare_leaf_data(self.prehash_key, self.length, key)?);
        data.extend(prepare_leaf_data(self.prehash_value, self.length, value)?);
        do_hash(self.hash, &data)
    }

    /// `LeafOp.CheckAgainstSpec`: both specs' leaves are `SHA256(0x00.. || key || len ||
    /// SHA256(value))` with varint lengths.
    fn check_against_spec(&self, spec: Spec) -> Result<(), Error> {
        if spec == Spec::Iavl {
            iavl_prefix_check(&self.prefix, self.hash, 0)?;
        }
        if self.hash != SHA256
            || self.prehash_key != NO_HASH
            || self.prehash_value != SHA256
            || self.length != VAR_PROTO
        {
            return Err("ics23: leaf op does not fit the spec");
        }
        if self.prefix.first() != Some(&0) {
            return Err("ics23: leaf prefix doesn't start with 00");
        }
        Ok(())
    }
}

impl InnerOp {
    /// `InnerOp.Apply`.
    fn apply(&self, child: &[u8]) -> Result<Vec<u8>, Error> {
        if child.is_empty() {
            return Err("ics23: inner op needs child value");
        }
        let mut preimage = self.prefix.clone();
        preimage.extend_from_slice(child);
        preimage.extend_from_slice(&self.suffix);
        do_hash(self.hash, &preimage)
    }

    /// `InnerOp.CheckAgainstSpec` at `layer` (1 for the step above the leaf).
    fn check_against_spec(&self, spec: Spec, layer: usize) -> Result<(), Error> {
        if self.hash != SHA256 {
            return Err("ics23: unexpected inner HashOp");
        }
        if spec == Spec::Iavl {
            iavl_prefix_check(&self.prefix, self.hash, layer)?;
        }
        if self.prefix.first() == Some(&0) {
            return Err("ics23: inner prefix starts with the leaf prefix");
        }
        let (min_prefix, max_prefix, child_size) = spec.inner();
        if self.prefix.len() < min_prefix {
            return Err("ics23: inner op prefix too short");
        }
        // Two children: at most one child may precede the hashed one.
        if self.prefix.len() > max_prefix + child_size {
            return Err("ics23: inner op prefix too long");
        }
        if !self.suffix.len().is_multiple_of(child_size) {
            return Err("ics23: inner op suffix malformed");
        }
        Ok(())
    }
}

/// `ops.go` `z`, applied under `IavlSpec` to a leaf (`layer` 0) or an inner step: the prefix is
/// a height byte of at least `layer`, then two non-negative zigzag varints (size, version), then
/// nothing for a leaf, or for an inner step 1 or 34 more bytes and a SHA-256 hash op.
fn iavl_prefix_check(prefix: &[u8], hash: i32, layer: usize) -> Result<(), Error> {
    let (&height, mut rest) = prefix.split_first().ok_or("ics23: wrong prefix in op")?;
    for _ in 0..2 {
        let (value, len) = go_read_uvarint(rest)?;
        rest = &rest[len..];
        // Zigzag decoding (`binary.ReadVarint`); the value must not be negative.
        if value & 1 == 1 {
            return Err("ics23: wrong value in IAVL op");
        }
    }
    if usize::from(height) < layer {
        return Err("ics23: wrong height in IAVL op");
    }
    let ok = if layer == 0 {
        rest.is_empty()
    } else {
        (rest.len() == 1 || rest.len() == 34) && hash == SHA256
    };
    if ok {
        Ok(())
    } else {
        Err("ics23: invalid op")
    }
}

/// Go's `binary.ReadUvarint` over a byte slice: the value and the bytes it took. At most 10
/// bytes, the 10th at most 1; running out of bytes is an error.
fn go_read_uvarint(data: &[u8]) -> Result<(u64, usize), Error> {
    let mut value = 0u64;
    for (i, &byte) in data.iter().enumerate().take(10) {
        if byte < 0x80 {
            if i == 9 && byte > 1 {
                return Err("ics23: varint overflows a 64-bit integer");
            }
            return Ok((value | u64::from(byte) << (7 * i), i + 1));
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
    }
    if data.len() >= 10 {
        Err("ics23: varint overflows a 64-bit integer")
    } else {
        Err("ics23: unexpected end of varint")
    }
}

/// `prepareLeafData`: the optional prehash, then the length op.
fn prepare_leaf_data(hash: i32, length: i32, data: &[u8]) -> Result<Vec<u8>, Error> {
    let hashed = if hash == NO_HASH {
        data.to_vec()
    } else {
        do_hash(hash, data)?
    };
    match length {
        0 => Ok(hashed),
        VAR_PROTO => {
            let mut out = Vec::with_capacity(hashed.len() + 2);
            super::super::protobuf::put_varint(&mut out, hashed.len() as u64);
            out.extend(hashed);
            Ok(out)
        }
        2 if hashed.len() == 32 => Ok(hashed),
        3 if hashed.len() == 64 => Ok(hashed),
        2 | 3 => Err("ics23: data has the wrong length"),
        4 => {
            let mut out = (hashed.len() as u32).to_le_bytes().to_vec();
            out.extend(hashed);
            Ok(out)
        }
        _ => Err("ics23: unsupported length op"),
    }
}

/// `doHash`. Only SHA-256 can lead to a proof that verifies (both specs require it at every
/// step); the other hash ops the client knows fail the spec check later, so they are refused
/// here at once, which ends the same way.
fn do_hash(hash: i32, preimage: &[u8]) -> Result<Vec<u8>, Error> {
    if hash == SHA256 {
        Ok(Sha256::digest(preimage).to_vec())
    } else {
        Err("ics23: hash op other than SHA-256")
    }
}

/// `CommitmentProof.Unmarshal`: the existence proof if the last `proof` field is one.
fn decode_commitment_proof(data: &[u8]) -> Result<Option<ExistenceProof>, Error> {
    let mut exist = None;
    let mut reader = Reader::new(data);
    while let Some((field, value)) = reader.next_field()? {
        let wrong = "ics23: wrong wire type in CommitmentProof";
        match field {
            1 => exist = Some(decode_existence_proof(value.bytes(wrong)?)?),
            2 => {
                check_non_existence_proof(value.bytes(wrong)?)?;
                exist = None;
            }
            3 => {
                check_batch_proof(value.bytes(wrong)?)?;
                exist = None;
            }
            4 => {
                check_compressed_batch_proof(value.bytes(wrong)?)?;
                exist = None;
            }
            _ => {}
        }
    }
    Ok(exist)
}

fn decode_existence_proof(data: &[u8]) -> Result<ExistenceProof, Error> {
    let mut proof = ExistenceProof::default();
    let mut reader = Reader::new(data);
    while let Some((field, value)) = reader.next_field()? {
        let wrong = "ics23: wrong wire type in ExistenceProof";
        match field {
            1 => proof.key = value.bytes(wrong)?.to_vec(),
            2 => proof.value = value.bytes(wrong)?.to_vec(),
            // A repeated message field merges into the one before, as gogoproto does.
            3 => decode_leaf_op(
                proof.leaf.get_or_insert_with(LeafOp::default),
                value.bytes(wrong)?,
            )?,
            4 => proof.path.push(decode_inner_op(value.bytes(wrong)?)?),
            _ => {}
        }
    }
    Ok(proof)
}

fn decode_leaf_op(leaf: &mut LeafOp, data: &[u8]) -> Result<(), Error> {
    let mut reader = Reader::new(data);
    while let Some((field, value)) = reader.next_field()? {
        let wrong = "ics23: wrong wire type in LeafOp";
        match field {
            1 => leaf.hash = value.varint32(wrong)? as i32,
            2 => leaf.prehash_key = value.varint32(wrong)? as i32,
            3 => leaf.prehash_value = value.varint32(wrong)? as i32,
            4 => leaf.length = value.varint32(wrong)? as i32,
            5 => leaf.prefix = value.bytes(wrong)?.to_vec(),
            _ => {}
        }
    }
    Ok(())
}

fn decode_inner_op(data: &[u8]) -> Result<InnerOp, Error> {
    let mut inner = InnerOp::default();
    let mut reader = Reader::new(data);
    while let Some((field, value)) = reader.next_field()? {
        let wrong = "ics23: wrong wire type in InnerOp";
        match field {
            1 => inner.hash = value.varint32(wrong)? as i32,
            2 => inner.prefix = value.bytes(wrong)?.to_vec(),
            3 => inner.suffix = value.bytes(wrong)?.to_vec(),
            _ => {}
        }
    }
    Ok(inner)
}

/// Checks that a field's contents decode.
type Check = fn(&[u8]) -> Result<(), Error>;

/// Checks a message whose fields `fields` lists as `(number, check)`: each known field must
/// be length-delimited and pass its check; unknown fields are skipped.
fn check_message(data: &[u8], fields: &[(i32, Check)]) -> Result<(), Error> {
    let mut reader = Reader::new(data);
    while let Some((field, value)) = reader.next_field()? {
        if let Some((_, check)) = fields.iter().find(|(number, _)| *number == field) {
            check(value.bytes("ics23: wrong wire type in a proof message")?)?;
        }
    }
    Ok(())
}

fn any_bytes(_: &[u8]) -> Result<(), Error> {
    Ok(())
}

fn check_existence_proof(data: &[u8]) -> Result<(), Error> {
    decode_existence_proof(data).map(drop)
}

fn check_leaf_op(data: &[u8]) -> Result<(), Error> {
    decode_leaf_op(&mut LeafOp::default(), data)
}

fn check_inner_op(data: &[u8]) -> Result<(), Error> {
    decode_inner_op(data).map(drop)
}

/// `NonExistenceProof`: key, left and right existence proofs.
fn check_non_existence_proof(data: &[u8]) -> Result<(), Error> {
    check_message(
        data,
        &[
            (1, any_bytes),
            (2, check_existence_proof),
            (3, check_existence_proof),
        ],
    )
}

/// `BatchProof`: entries, each a `BatchEntry` (an existence or a non-existence proof).
fn check_batch_proof(data: &[u8]) -> Result<(), Error> {
    check_message(data, &[(1, check_batch_entry)])
}

fn check_batch_entry(data: &[u8]) -> Result<(), Error> {
    check_message(
        data,
        &[(1, check_existence_proof), (2, check_non_existence_proof)],
    )
}

/// `CompressedBatchProof`: entries and the lookup table of inner ops.
fn check_compressed_batch_proof(data: &[u8]) -> Result<(), Error> {
    check_message(
        data,
        &[(1, check_compressed_batch_entry), (2, check_inner_op)],
    )
}

fn check_compressed_batch_entry(data: &[u8]) -> Result<(), Error> {
    check_message(
        data,
        &[
            (1, check_compressed_existence_proof),
            (2, check_compressed_non_existence_proof),
        ],
    )
}

fn check_compressed_non_existence_proof(data: &[u8]) -> Result<(), Error> {
    check_message(
        data,
        &[
            (1, any_bytes),
            (2, check_compressed_existence_proof),
            (3, check_compressed_existence_proof),
        ],
    )
}

/// `CompressedExistenceProof`: key, value, leaf and a repeated int32 path, packed or not.
/// gogoproto reads a packed path's last varint past the packed bytes when it is unterminated,
/// and carries on from where that varint ended.
fn check_compressed_existence_proof(data: &[u8]) -> Result<(), Error> {
    let mut reader = Reader::new(data);
    while let Some((field, value)) = reader.next_field()? {
        let wrong = "ics23: wrong wire type in CompressedExistenceProof";
        match (field, value) {
            (1 | 2, value) => {
                value.bytes(wrong)?;
            }
            (3, value) => check_leaf_op(value.bytes(wrong)?)?,
            (4, Value::Varint(_)) => {}
            (4, Value::Bytes(packed)) => {
                if let Some(tail) = unterminated_varint_tail(packed) {
                    reader.continue_varint(tail)?;
                }
            }
            (4, Value::Other) => return Err(wrong),
            _ => {}
        }
    }
    Ok(())
}

/// In a run of varints, how many bytes the last one has taken when the run ends before it
/// does (`None` when every varint in the run is complete). Ten bytes into one varint without
/// an end is an overflow wherever it happens; that case is reported as 10.
fn unterminated_varint_tail(packed: &[u8]) -> Option<usize> {
    let mut taken = 0usize;
    for &byte in packed {
        if byte < 0x80 {
            taken = 0;
        } else {
            taken += 1;
            if taken == 10 {
                return Some(10);
            }
        }
    }
    (taken > 0).then_some(taken)
}
