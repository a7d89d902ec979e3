//! 0x65 IAVL Merkle proof validation in all its working forms, after bnb-chain/bsc
//! `core/vm/contracts_lightclient.go` (`iavlMerkleProofValidate` before Nano,
//! `iavlMerkleProofValidateMoran`, `...Planck`, `...Plato`) and `core/vm/lightclient/v1/types.go`
//! (`DecodeKeyValueMerkleProof`, `KeyValueMerkleProof.Validate`), on bnb-chain/tendermint
//! v0.31.17 `crypto/merkle/proof.go` and `proof_key_path.go`.
//!
//! Input: `32 bytes whose last 8 are the payload's length | payload`, the payload being
//! `store name (32, zero bytes trimmed from both ends) | key length (32, last 8 read) | key |
//! value length (idem) | value | app hash (32) | protobuf merkle.Proof (at least one byte)`.
//! The precompile costs 3000 gas (`params.IAVLMerkleProofValidateGas`). Success returns a
//! 32-byte word holding 1; every failure is a plain error in the client, a halt that consumes
//! all gas.
//!
//! The proof's operators run in turn from the value up (or, for an empty value, from nothing:
//! an absence proof): each may carry a key, which must be the last one not yet consumed of the
//! key path `[store name, key]`; the last root must be the app hash and every key consumed.
//! The forms differ in the operators they accept:
//! - original (before Nano, the client's `DefaultProofRuntime` without verifiers): IAVL value
//!   proofs of any range (`iavl:v`), IAVL absence proofs (`iavl:a`), simple value proofs
//!   (`simple:v`) and multistore proofs (`multistore`), in any number and order;
//! - Moran: `iavl:v` with a single leaf and no inner node holding both children, and
//!   `multistore` without duplicated store names; absence and simple-value proofs are refused;
//! - Plato: ICS23 existence proofs only, exactly an `ics23:iavl` then an `ics23:simple`, and
//!   neither the store name nor the key may start with `x:`;
//! - Planck: either pair (Moran's `iavl:v` then `multistore`, or the ICS23 pair), with Plato's
//!   key rule.
//!
//! Only the original form can prove an absence: Moran on refuse the absence operator, and
//! every other operator (or an empty list) fails without a value.

mod ics23;
mod legacy;
mod range_proof;

use super::fields::{length_word, trim_zeros, WORD_LEN};
use super::outcome::{charge_and_run, Failure};
use super::protobuf::Reader;
use alloy_primitives::Bytes;
use ics23::{CommitmentOp, Spec};
use legacy::{IavlAbsenceOp, IavlValueOp, MultiStoreOp, SimpleValueOp};
use revm::precompile::PrecompileResult;

/// Why a proof was refused (the client's errors are all alike to its EVM: a halt).
type Error = &'static str;

/// `params.IAVLMerkleProofValidateGas`.
const GAS: u64 = 3000;

/// Which fork's proof rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rules {
    /// Before Nano.
    Original,
    Moran,
    Planck,
    Plato,
}

/// Runs 0x65 under the original rules (before Nano): any legacy proof, absence proofs too.
pub fn iavl_merkle_proof_validate(
    input: &[u8],
    gas_limit: u64,
    reservoir: u64,
) -> PrecompileResult {
    run(input, gas_limit, reservoir, Rules::Original)
}

/// Runs 0x65 under Moran's rules (single-leaf IAVL value and multistore proofs).
pub fn iavl_merkle_proof_validate_moran(
    input: &[u8],
    gas_limit: u64,
    reservoir: u64,
) -> PrecompileResult {
    run(input, gas_limit, reservoir, Rules::Moran)
}

/// Runs 0x65 under Planck's rules (the legacy pair or the ICS23 pair).
pub fn iavl_merkle_proof_validate_planck(
    input: &[u8],
    gas_limit: u64,
    reservoir: u64,
) -> PrecompileResult {
    run(input, gas_limit, reservoir, Rules::Planck)
}

/// Runs 0x65 under Plato's rules (ICS23 proofs only).
pub fn iavl_merkle_proof_validate_plato(
    input: &[u8],
    gas_limit: u64,
    reservoir: u64,
) -> PrecompileResult {
    run(input, gas_limit, reservoir, Rules::Plato)
}

fn run(input: &[u8], gas_limit: u64, reservoir: u64, rules: Rules) -> PrecompileResult {
    charge_and_run(GAS, gas_limit, reservoir, || {
        validate(input, rules).map_err(Failure::Halt)?;
        let mut word = [0u8; WORD_LEN];
        word[WORD_LEN - 1] = 1;
        Ok(Bytes::copy_from_slice(&word))
    })
}

/// The payload's parts (`KeyValueMerkleProof`).
struct KeyValueProof<'a> {
    store_name: &'a [u8],
    key: &'a [u8],
    value: &'a [u8],
    app_hash: &'a [u8],
    proof: &'a [u8],
}

/// One decoded proof operator.
enum Op {
    Commitment(CommitmentOp),
    IavlValue(IavlValueOp),
    IavlAbsence(IavlAbsenceOp),
    SimpleValue(SimpleValueOp),
    MultiStore(MultiStoreOp),
}

impl Op {
    /// The key the operator consumes from the key path (none when empty).
    fn key(&self) -> &[u8] {
        match self {
            Op::Commitment(op) => &op.key,
            Op::IavlValue(op) => &op.key,
            Op::IavlAbsence(op) => &op.key,
            Op::SimpleValue(op) => &op.key,
            Op::MultiStore(op) => &op.key,
        }
    }

    /// Runs the operator on the value (or root) below it, giving the root above it.
    fn run(&self, args: &[Vec<u8>]) -> Result<Vec<u8>, Error> {
        match self {
            Op::Commitment(op) => op.run(args),
            Op::IavlValue(op) => op.run(args),
            Op::IavlAbsence(op) => op.run(args),
            Op::SimpleValue(op) => op.run(args),
            Op::MultiStore(op) => op.run(args),
        }
    }

    /// Moran's operator verifiers (`forbiddenAbsenceOpVerifier`, `singleValueOpVerifier`,
    /// `multiStoreOpVerifier`, `forbiddenSimpleValueOpVerifier`).
    fn check_moran(&self) -> Result<(), Error> {
        match self {
            Op::IavlValue(op) => op.check_single_value(),
            Op::MultiStore(op) => op.check_unique_names(),
            Op::IavlAbsence(_) => Err("absence proof suspend"),
            Op::SimpleValue(_) => Err("simple value proof suspend"),
            Op::Commitment(_) => Ok(()),
        }
    }
}

fn validate(input: &[u8], rules: Rules) -> Result<(), Error> {
    let proof = decode_input(input)?;
    let keys = if matches!(rules, Rules::Original | Rules::Moran) {
        vec![key_path_part(proof.store_name)?, key_path_part(proof.key)?]
    } else {
        for name in [proof.store_name, proof.key] {
            // `keyVerifier`: `url.PathEscape` leaves `x` and `:` alone, so the escaped name
            // starts with `x:` exactly when the name does.
            if name.starts_with(b"x:") {
                return Err("key should not start with x:");
            }
        }
        vec![proof.store_name.to_vec(), proof.key.to_vec()]
    };
    let ops = decode_proof(proof.proof)?
        .into_iter()
        .map(|(kind, key, data)| decode_op(rules, kind, key, data))
        .collect::<Result<Vec<_>, Error>>()?;
    if proof.value.is_empty() && rules != Rules::Original {
        return Err("absence proofs cannot verify under these rules");
    }
    if matches!(rules, Rules::Planck | Rules::Plato) {
        check_op_sequence(&ops)?;
    }
    if rules != Rules::Original {
        ops.iter().try_for_each(Op::check_moran)?;
    }
    let mut keys = keys;
    // An empty value asks for an absence proof: no argument for the first operator.
    let mut args = if proof.value.is_empty() {
        Vec::new()
    } else {
        vec![proof.value.to_vec()]
    };
    for op in &ops {
        let key = op.key();
        if !key.is_empty() && keys.pop().as_deref() != Some(key) {
            return Err("key path does not match the proof's keys");
        }
        args = vec![op.run(&args)?];
    }
    if args.first().map(Vec::as_slice) != Some(proof.app_hash) {
        return Err("calculated root hash is invalid");
    }
    if !keys.is_empty() {
        return Err("key path not consumed all");
    }
    Ok(())
}

/// The precompile's length check and `DecodeKeyValueMerkleProof`.
fn decode_input(input: &[u8]) -> Result<KeyValueProof<'_>, Error> {
    if input.len() <= WORD_LEN {
        return Err("invalid input: no payload");
    }
    if length_word(input) != (input.len() - WORD_LEN) as u64 {
        return Err("invalid input: payload length does not match");
    }
    let payload = &input[WORD_LEN..];
    if payload.len() <= 4 * WORD_LEN {
        return Err("payload shorter than its fixed fields");
    }
    let store_name = trim_zeros(&payload[..WORD_LEN]);
    let key_len = length_word(&payload[WORD_LEN..]);
    let key_start = 2 * WORD_LEN;
    let key_end = fits_before_word(payload, key_start, key_len)
        .ok_or("invalid input: key length too long")?;
    let value_len = length_word(&payload[key_end..]);
    let value_start = key_end + WORD_LEN;
    let value_end = fits_before_word(payload, value_start, value_len)
        .ok_or("invalid input: value length too long")?;
    Ok(KeyValueProof {
        store_name,
        key: &payload[key_start..key_end],
        value: &payload[value_start..value_end],
        app_hash: &payload[value_end..value_end + WORD_LEN],
        proof: &payload[value_end + WORD_LEN..],
    })
}

/// The end of a field of `len` bytes at `start` when a 32-byte word and at least one more byte
/// follow it within `payload`.
fn fits_before_word(payload: &[u8], start: usize, len: u64) -> Option<usize> {
    let end = (start as u64).checked_add(len)?;
    (end.checked_add(WORD_LEN as u64)? < payload.len() as u64).then_some(end as usize)
}

/// A `merkle.ProofOp` as read: its type, key and data.
type RawOp<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// `merkle.Proof.Unmarshal`: each `ProofOp`.
fn decode_proof(data: &[u8]) -> Result<Vec<RawOp<'_>>, Error> {
    let mut ops = Vec::new();
    let mut reader = Reader::new(data);
    while let Some((field, value)) = reader.next_field()? {
        if field != 1 {
            continue;
        }
        let op = value.bytes("merkle.Proof: wrong wire type for ops")?;
        let (mut kind, mut key, mut data): RawOp = (&[], &[], &[]);
        let mut fields = Reader::new(op);
        while let Some((field, value)) = fields.next_field()? {
            let wrong = "merkle.ProofOp: wrong wire type";
            match field {
                1 => kind = value.bytes(wrong)?,
                2 => key = value.bytes(wrong)?,
                3 => data = value.bytes(wrong)?,
                _ => {}
            }
        }
        ops.push((kind, key, data));
    }
    Ok(ops)
}

/// One part of the key path as `KeyPathToKeys` reads back what `KeyPath.String` wrote: a name
/// that starts with `x:` (`url.PathEscape` keeps both characters, and escapes nothing that is
/// a hex digit) is read as hex, which must then be valid.
fn key_path_part(name: &[u8]) -> Result<Vec<u8>, Error> {
    let Some(hex) = name.strip_prefix(b"x:") else {
        return Ok(name.to_vec());
    };
    let digit = |c: u8| (c as char).to_digit(16).ok_or("key path: invalid hex part");
    if hex.len() % 2 != 0 {
        return Err("key path: odd-length hex part");
    }
    hex.chunks(2)
        .map(|pair| Ok((digit(pair[0])? * 16 + digit(pair[1])?) as u8))
        .collect()
}

/// The proof runtime of `rules`: decodes an operator of a type it knows
/// (`DefaultProofRuntime` before Planck, `Ics23CompatibleProofRuntime` for Planck,
/// `Ics23ProofRuntime` from Plato on). Moran's and Planck's verifiers then refuse the absence
/// (`iavl:a`) and simple value (`simple:v`) operators their runtimes know.
fn decode_op(rules: Rules, kind: &[u8], key: &[u8], data: &[u8]) -> Result<Op, Error> {
    let legacy = rules != Rules::Plato;
    let ics23 = matches!(rules, Rules::Planck | Rules::Plato);
    match kind {
        b"ics23:iavl" if ics23 => Ok(Op::Commitment(CommitmentOp::decode(Spec::Iavl, key, data)?)),
        b"ics23:simple" if ics23 => Ok(Op::Commitment(CommitmentOp::decode(
            Spec::Tendermint,
            key,
            data,
        )?)),
        b"iavl:v" if legacy => Ok(Op::IavlValue(IavlValueOp::decode(key, data)?)),
        b"multistore" if legacy => Ok(Op::MultiStore(MultiStoreOp::decode(key, data)?)),
        b"iavl:a" if legacy => Ok(Op::IavlAbsence(IavlAbsenceOp::decode(key, data)?)),
        b"simple:v" if legacy => Ok(Op::SimpleValue(SimpleValueOp::decode(key, data)?)),
        _ => Err("unrecognized proof type"),
    }
}

/// `proofOpsVerifier`: exactly two operators, an IAVL value proof under a multistore proof or
/// an ICS23 IAVL proof under an ICS23 simple Merkle proof.
fn check_op_sequence(ops: &[Op]) -> Result<(), Error> {
    let [lower, upper] = ops else {
        return Err("proof ops should be 2");
    };
    match (lower, upper) {
        (Op::IavlValue(_), Op::MultiStore(_)) => Ok(()),
        (Op::Commitment(lower), Op::Commitment(upper))
            if lower.spec == Spec::Iavl && upper.spec == Spec::Tendermint =>
        {
            Ok(())
        }
        _ => Err("invalid proof op"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::protobuf::put_bytes_field_always;
    use super::*;
    use alloy_primitives::hex;
    use serde_json::Value;

    fn vectors() -> Value {
        serde_json::from_str(include_str!("../testdata/iavl-merkle-proof-vectors.json")).unwrap()
    }

    fn hex_of(v: &Value) -> Vec<u8> {
        hex::decode(v.as_str().unwrap()).unwrap()
    }

    /// The input as the client's tests build it: length word, store name, key, value, app
    /// hash, proof.
    fn input(store: &[u8], key: &[u8], value: &[u8], app_hash: &[u8], proof: &[u8]) -> Vec<u8> {
        let word = |len: usize| {
            let mut w = [0u8; 32];
            w[24..].copy_from_slice(&(len as u64).to_be_bytes());
            w
        };
        let mut payload = [0u8; 32].to_vec();
        payload[..store.len()].copy_from_slice(store);
        payload.extend(word(key.len()));
        payload.extend(key);
        payload.extend(word(value.len()));
        payload.extend(value);
        payload.extend(app_hash);
        payload.extend(proof);
        let mut out = word(payload.len()).to_vec();
        out.extend(payload);
        out
    }

    /// The parts of the ICS23 vector: store name, key, value, app hash, proof.
    fn ics23_parts() -> [Vec<u8>; 5] {
        let v = &vectors()["ics23_proof"];
        [
            v["store_name"].as_str().unwrap().as_bytes().to_vec(),
            hex_of(&v["key"]),
            hex_of(&v["value"]),
            hex_of(&v["app_hash"]),
            hex_of(&v["proof"]),
        ]
    }

    fn ics23_input() -> Vec<u8> {
        let [store, key, value, app_hash, proof] = ics23_parts();
        input(&store, &key, &value, &app_hash, &proof)
    }

    /// A `merkle.Proof` of the given `(type, key, data)` operators.
    fn encode_proof(ops: &[(Vec<u8>, Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (kind, key, data) in ops {
            let mut op = Vec::new();
            put_bytes_field_always(&mut op, 1, kind);
            put_bytes_field_always(&mut op, 2, key);
            put_bytes_field_always(&mut op, 3, data);
            put_bytes_field_always(&mut out, 1, &op);
        }
        out
    }

    fn ics23_ops() -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        let [_, _, _, _, proof] = ics23_parts();
        decode_proof(&proof)
            .unwrap()
            .into_iter()
            .map(|(a, b, c)| (a.to_vec(), b.to_vec(), c.to_vec()))
            .collect()
    }

    fn with_proof(proof: &[u8]) -> Vec<u8> {
        let [store, key, value, app_hash, _] = ics23_parts();
        input(&store, &key, &value, &app_hash, proof)
    }

    fn refused(input: &[u8]) -> Option<Error> {
        validate(input, Rules::Plato).err()
    }

    #[test]
    fn plato_accepts_the_client_ics23_vector() {
        let input = ics23_input();
        assert_eq!(validate(&input, Rules::Plato), Ok(()));
        let out = iavl_merkle_proof_validate_plato(&input, 10_000, 0).unwrap();
        assert!(out.is_success());
        assert_eq!(out.gas_used, 3000);
        let mut expected = [0u8; 32];
        expected[31] = 1;
        assert_eq!(out.bytes.as_ref(), expected);
        // Re-encoding the operators as they were decoded gives back the client's proof bytes.
        assert_eq!(encode_proof(&ics23_ops()), ics23_parts()[4]);
    }

    #[test]
    fn plato_refuses_what_does_not_match() {
        let [store, key, value, app_hash, proof] = ics23_parts();
        let mut other_value = value.clone();
        other_value[0] ^= 1;
        let mut other_root = app_hash.clone();
        other_root[31] ^= 1;
        let cases: [(&str, Vec<u8>); 6] = [
            (
                "value",
                input(&store, &key, &other_value, &app_hash, &proof),
            ),
            ("app hash", input(&store, &key, &value, &other_root, &proof)),
            ("store", input(b"ibd", &key, &value, &app_hash, &proof)),
            ("key", input(&store, b"winc", &value, &app_hash, &proof)),
            ("absence", input(&store, &key, &[], &app_hash, &proof)),
            ("x: store", input(b"x:ibc", &key, &value, &app_hash, &proof)),
        ];
        for (what, input) in cases {
            assert!(refused(&input).is_some(), "{what}");
            let out = iavl_merkle_proof_validate_plato(&input, 10_000, 0).unwrap();
            assert!(out.halt_reason().is_some_and(|h| !h.is_oog()), "{what}");
        }
        // Zero bytes around the store name are trimmed, as `bytes.Trim` does.
        let mut padded = ics23_input();
        padded.copy_within(32..35, 33);
        padded[32] = 0;
        assert_eq!(validate(&padded, Rules::Plato), Ok(()));
    }

    #[test]
    fn plato_input_framing() {
        let input = ics23_input();
        assert!(refused(&input[..input.len() - 1]).is_some(), "cut input");
        let mut long = input.clone();
        long.push(0);
        assert!(refused(&long).is_some(), "longer than its length word");
        let mut huge_key = input.clone();
        huge_key[32 + 32 + 24..32 + 64].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(refused(&huge_key).is_some(), "key length past the input");
        assert!(refused(&input[..32]).is_some(), "no payload");
        assert!(refused(&[]).is_some(), "empty");
        let out = iavl_merkle_proof_validate_plato(&input, 2_999, 0).unwrap();
        assert!(out.halt_reason().is_some_and(|h| h.is_oog()));
    }

    /// `proofOpsVerifier` (`TestProofOpsVerifier`'s ICS23 cases): an IAVL proof under a simple
    /// Merkle proof, nothing else.
    #[test]
    fn plato_wants_the_ics23_pair_in_order() {
        let ops = ics23_ops();
        let (iavl, simple) = (ops[0].clone(), ops[1].clone());
        assert_eq!(iavl.0, b"ics23:iavl");
        assert_eq!(simple.0, b"ics23:simple");
        for (what, ops) in [
            ("one op", vec![iavl.clone()]),
            ("swapped", vec![simple.clone(), iavl.clone()]),
            ("simple twice", vec![simple.clone(), simple.clone()]),
            (
                "three ops",
                vec![iavl.clone(), simple.clone(), simple.clone()],
            ),
        ] {
            assert!(
                refused(&with_proof(&encode_proof(&ops))).is_some(),
                "{what}"
            );
        }
        let legacy = &vectors()["acc_iavl_value_proof"];
        let legacy_input = input(
            b"acc",
            &hex_of(&legacy["key"]),
            &hex_of(&legacy["value"]),
            &hex_of(&legacy["app_hash"]),
            &hex_of(&legacy["proof"]),
        );
        assert_eq!(refused(&legacy_input), Some("unrecognized proof type"));
    }

    /// The proof is read as gogoproto reads it: an unknown field is skipped, a malformed
    /// non-existence proof is an error even when an existence proof follows it, a later
    /// non-existence proof replaces the existence proof.
    #[test]
    fn plato_commitment_proof_decoding() {
        let ops = ics23_ops();
        let mut unknown = ops.clone();
        unknown[0].2.extend([0x28, 0x05]); // field 5, varint 5
        assert_eq!(
            validate(&with_proof(&encode_proof(&unknown)), Rules::Plato),
            Ok(())
        );

        let mut malformed_first = ops.clone();
        let mut data = vec![0x12, 0x02, 0x12, 0x05]; // nonexist { left: <cut> }
        data.extend(&ops[0].2);
        malformed_first[0].2 = data;
        assert!(refused(&with_proof(&encode_proof(&malformed_first))).is_some());

        let mut well_formed_first = ops.clone();
        let mut data = vec![0x12, 0x02, 0x0a, 0x00]; // nonexist { key: "" }
        data.extend(&ops[0].2);
        well_formed_first[0].2 = data;
        assert_eq!(
            validate(&with_proof(&encode_proof(&well_formed_first)), Rules::Plato),
            Ok(())
        );

        // A compressed proof whose packed path ends inside a varint: gogoproto reads the
        // varint on past the packed bytes (here its last byte, 0x01) and goes on from there.
        let compressed = |exist: &[u8]| {
            let entry = [&[0x0a, exist.len() as u8][..], exist].concat();
            let batch = [&[0x0a, entry.len() as u8][..], &entry].concat();
            [&[0x22, batch.len() as u8][..], &batch].concat()
        };
        for (exist, ok) in [
            (&[0x22, 0x01, 0x80, 0x01][..], true),
            (&[0x22, 0x01, 0x80][..], false),
            (&[0x22, 0x02, 0x80, 0x01][..], true),
        ] {
            let mut with_compressed = ops.clone();
            with_compressed[0].2 = [compressed(exist), ops[0].2.clone()].concat();
            let result = validate(&with_proof(&encode_proof(&with_compressed)), Rules::Plato);
            assert_eq!(result.is_ok(), ok, "{exist:02x?}: {result:?}");
        }

        let mut replaced = ops.clone();
        replaced[0].2.extend([0x12, 0x00]); // an empty nonexist after the exist proof
        assert_eq!(
            refused(&with_proof(&encode_proof(&replaced))),
            Some("ics23: only exist proof supported")
        );
    }

    fn acc_input() -> Vec<u8> {
        let v = &vectors()["acc_iavl_value_proof"];
        input(
            b"acc",
            &hex_of(&v["key"]),
            &hex_of(&v["value"]),
            &hex_of(&v["app_hash"]),
            &hex_of(&v["proof"]),
        )
    }

    /// `TestTmHeaderValidateAndMerkleProofValidate`: the `acc` store's IAVL value proof under a
    /// multistore proof holds under Moran's and Planck's rules; Plato knows neither operator.
    /// `TestIcs23Proof`: the ICS23 pair holds under Planck's rules, not Moran's.
    #[test]
    fn legacy_and_ics23_vectors_per_rules() {
        let acc = acc_input();
        let kinds: Vec<Vec<u8>> =
            decode_proof(&hex_of(&vectors()["acc_iavl_value_proof"]["proof"]))
                .unwrap()
                .iter()
                .map(|(kind, _, _)| kind.to_vec())
                .collect();
        assert_eq!(kinds, [b"iavl:v".to_vec(), b"multistore".to_vec()]);
        assert_eq!(validate(&acc, Rules::Moran), Ok(()));
        assert_eq!(validate(&acc, Rules::Planck), Ok(()));
        assert_eq!(validate(&acc, Rules::Plato), Err("unrecognized proof type"));
        let ics23 = ics23_input();
        assert_eq!(validate(&ics23, Rules::Planck), Ok(()));
        assert_eq!(
            validate(&ics23, Rules::Moran),
            Err("unrecognized proof type")
        );
        for run in [
            iavl_merkle_proof_validate_moran,
            iavl_merkle_proof_validate_planck,
        ] {
            let out = run(&acc, 3000, 0).unwrap();
            assert!(out.is_success());
            assert_eq!(out.gas_used, 3000);
            assert_eq!(out.bytes[31], 1);
            assert!(out.bytes[..31].iter().all(|&b| b == 0));
        }
    }

    /// `TestMerkleProofValidateMoran`: the two exploit inputs (range proofs the original rules
    /// accepted) are refused by Moran's single-value rule. `TestAbsenceMerkleProofValidateMoran`:
    /// an absence operator is refused.
    #[test]
    fn moran_refuses_the_exploit_and_absence_inputs() {
        let file = vectors();
        for input in file["moran_exploit_inputs"]["inputs"].as_array().unwrap() {
            let input = hex_of(input);
            let refused = validate(&input, Rules::Moran);
            assert!(
                matches!(
                    refused,
                    Err("range proof suspended" | "both right and left hash exit!")
                ),
                "{refused:?}"
            );
            let out = iavl_merkle_proof_validate_moran(&input, 10_000, 0).unwrap();
            assert!(out.halt_reason().is_some_and(|h| !h.is_oog()));
        }
        let absence = hex_of(&file["absence_input"]["input"]);
        assert_eq!(
            validate(&absence, Rules::Moran),
            Err("absence proof suspend")
        );
    }

    /// Moran's rules refuse what does not match: another value, app hash, store or key.
    #[test]
    fn moran_refuses_what_does_not_match() {
        let v = &vectors()["acc_iavl_value_proof"];
        let (key, value, app_hash, proof) = (
            hex_of(&v["key"]),
            hex_of(&v["value"]),
            hex_of(&v["app_hash"]),
            hex_of(&v["proof"]),
        );
        let mut other_value = value.clone();
        other_value[5] ^= 1;
        let mut other_root = app_hash.clone();
        other_root[0] ^= 1;
        let mut other_key = key.clone();
        other_key[10] ^= 1;
        for (what, input, reason) in [
            (
                "value",
                input(b"acc", &key, &other_value, &app_hash, &proof),
                "leaf value hash not same",
            ),
            (
                "app hash",
                input(b"acc", &key, &value, &other_root, &proof),
                "calculated root hash is invalid",
            ),
            (
                "store",
                input(b"bank", &key, &value, &app_hash, &proof),
                "key path does not match the proof's keys",
            ),
            (
                "key",
                input(b"acc", &other_key, &value, &app_hash, &proof),
                "key path does not match the proof's keys",
            ),
            (
                "absence",
                input(b"acc", &key, &[], &app_hash, &proof),
                "absence proofs cannot verify under these rules",
            ),
        ] {
            assert_eq!(validate(&input, Rules::Moran), Err(reason), "{what}");
        }
    }

    /// `KeyPathToKeys` reads a part starting with `x:` as hex (Moran has no `keyVerifier`).
    #[test]
    fn moran_key_path_reads_x_parts_as_hex() {
        assert_eq!(key_path_part(b"acc"), Ok(b"acc".to_vec()));
        assert_eq!(key_path_part(b"x:00aB"), Ok(vec![0x00, 0xab]));
        assert_eq!(key_path_part(b"x:"), Ok(vec![]));
        assert!(key_path_part(b"x:0").is_err());
        assert!(key_path_part(b"x:0x12").is_err());
        assert!(key_path_part(b"x:zz").is_err());
    }

    /// `proofOpsVerifier` (`TestProofOpsVerifier`'s legacy cases) under Planck: an IAVL value
    /// proof under a multistore proof, not the other way round, not two multistore proofs.
    #[test]
    fn planck_wants_the_legacy_pair_in_order() {
        let proof = hex_of(&vectors()["acc_iavl_value_proof"]["proof"]);
        let ops: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = decode_proof(&proof)
            .unwrap()
            .into_iter()
            .map(|(a, b, c)| (a.to_vec(), b.to_vec(), c.to_vec()))
            .collect();
        let (iavl, multistore) = (ops[0].clone(), ops[1].clone());
        let v = &vectors()["acc_iavl_value_proof"];
        let with = |ops: &[(Vec<u8>, Vec<u8>, Vec<u8>)]| {
            input(
                b"acc",
                &hex_of(&v["key"]),
                &hex_of(&v["value"]),
                &hex_of(&v["app_hash"]),
                &encode_proof(ops),
            )
        };
        assert_eq!(validate(&with(&ops), Rules::Planck), Ok(()));
        for (what, ops) in [
            ("swapped", vec![multistore.clone(), iavl.clone()]),
            (
                "multistore twice",
                vec![multistore.clone(), multistore.clone()],
            ),
            ("one op", vec![iavl.clone()]),
        ] {
            assert!(validate(&with(&ops), Rules::Planck).is_err(), "{what}");
        }
        // Moran has no such check, but one operator leaves the store name unconsumed.
        assert_eq!(
            validate(&with(&[iavl]), Rules::Moran),
            Err("calculated root hash is invalid")
        );
    }

    /// `TestMerkleProofValidateMoran`: the original rules (`iavlMerkleProofValidate`) accept
    /// both exploit inputs, whose IAVL value proofs are range proofs of two leaves, returning
    /// 1. `TestTmHeaderValidateAndMerkleProofValidate`: they accept the `acc` proof too.
    #[test]
    fn original_rules_accept_the_client_vectors() {
        let file = vectors();
        let mut inputs: Vec<Vec<u8>> = file["moran_exploit_inputs"]["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(hex_of)
            .collect();
        inputs.push(acc_input());
        for input in inputs {
            assert_eq!(validate(&input, Rules::Original), Ok(()));
            let out = iavl_merkle_proof_validate(&input, 3000, 0).unwrap();
            assert!(out.is_success());
            assert_eq!(out.gas_used, 3000);
            let mut expected = [0u8; 32];
            expected[31] = 1;
            assert_eq!(out.bytes.as_ref(), expected);
            let short = iavl_merkle_proof_validate(&input, 2999, 0).unwrap();
            assert!(short.halt_reason().is_some_and(|h| h.is_oog()));
        }
    }

    /// The original rules still check what the proof proves: another value, app hash, store
    /// or key is refused (a halt), and ICS23 operators are unknown to its runtime.
    #[test]
    fn original_rules_refuse_what_does_not_match() {
        let file = vectors();
        let exploit = hex_of(&file["moran_exploit_inputs"]["inputs"][0]);
        let mut other_root = exploit.clone();
        // The app hash sits after the value; flip a byte of the proof's root instead of
        // locating it: the exploit's store name is "ibc", the key and value lengths are read
        // from the input.
        let key_len = length_word(&exploit[64..96]) as usize;
        let value_len = length_word(&exploit[96 + key_len..128 + key_len]) as usize;
        let app_hash_at = 128 + key_len + value_len;
        other_root[app_hash_at] ^= 1;
        let mut other_value = exploit.clone();
        other_value[128 + key_len] ^= 1;
        let mut other_store = exploit.clone();
        other_store[32] ^= 1;
        for (what, input) in [
            ("app hash", other_root),
            ("value", other_value),
            ("store", other_store),
            ("ics23", ics23_input()),
        ] {
            assert!(validate(&input, Rules::Original).is_err(), "{what}");
            let out = iavl_merkle_proof_validate(&input, 10_000, 0).unwrap();
            assert!(out.halt_reason().is_some_and(|h| !h.is_oog()), "{what}");
        }
        // `TestAbsenceMerkleProofValidateMoran`'s input pairs a value with an absence
        // operator, which takes no argument (`IAVLAbsenceOp.Run`: "expected 0 args").
        let absence = hex_of(&file["absence_input"]["input"]);
        assert_eq!(
            validate(&absence, Rules::Original),
            Err("absence proof: expected 0 args")
        );
    }

    /// An `iavl:v` range proof whose leaves nest 200,000 deep (each inner path's node has a
    /// right child, which the next leaf must hash up to): the client's recursive
    /// `COMPUTEHASH` goes all the way down before comparing any hash, and so does this
    /// walk, without exhausting the stack; the made-up right children then do not match.
    #[test]
    fn original_rules_survive_a_deep_range_proof() {
        use super::super::amino::put_bytes;
        const DEPTH: usize = 200_000;
        // `proofInnerNode{Right: [0x01]}`, as a list element (field 1 of `PathToLeaf`).
        let node = [0x2a, 0x01, 0x01];
        let mut path = vec![0x0a];
        put_bytes(&mut path, &node);
        let mut range_proof = path.clone();
        for _ in 0..DEPTH {
            range_proof.push(0x12);
            put_bytes(&mut range_proof, &path);
        }
        for _ in 0..=DEPTH {
            range_proof.extend([0x1a, 0x00]);
        }
        let mut op = vec![0x0a];
        put_bytes(&mut op, &range_proof);
        let mut data = Vec::new();
        put_bytes(&mut data, &op);
        let proof = encode_proof(&[(b"iavl:v".to_vec(), b"k".to_vec(), data)]);
        let input = input(b"acc", b"k", b"v", &[0u8; 32], &proof);
        assert_eq!(
            validate(&input, Rules::Original),
            Err("range proof: intermediate root hash doesn't match")
        );
    }
}
