//! The header 0x64 is given: bnb-chain/bsc `core/vm/lightclient/v1/types.go` `Header` (a
//! Tendermint v0.31 `SignedHeader` with the block's validator set and the next one), read by
//! `DecodeHeader` with go-amino v0.14.1 `UnmarshalBinaryLengthPrefixed` (see
//! [`super::super::amino`] for its rules), on bnb-chain/tendermint v0.31.17 `types/block.go`,
//! `types/vote.go`, `types/validator.go`, `types/validator_set.go` and `types/part_set.go`.
//!
//! Pointers that may be nil in the client are `Option`s here; a nil validator in a set is an
//! error straight away, since hashing the set (which the client always does) dereferences it.
//! Validator public keys are amino interfaces: Ed25519 and secp256k1 keys are read, the
//! multisig threshold keys the codec also knows are refused (see the module docs of
//! [`super`]).

use super::super::amino::{
    byte_array, byte_slice, decode_list, decode_prefixed_struct, decode_struct, interface,
    length_prefixed_body, optional, time, uint8, uvarint, Error, Field, Time, BYTE_LENGTH, VARINT,
};

/// `PubKeyEd25519`'s and `PubKeySecp256k1`'s registered names, and the multisig key's.
pub(super) const ED25519_NAME: &str = "tendermint/PubKeyEd25519";
pub(super) const SECP256K1_NAME: &str = "tendermint/PubKeySecp256k1";
const MULTISIG_NAME: &str = "tendermint/PubKeyMultisigThreshold";

/// `Header` (lightclient): signed header, validator set, next validator set.
const LIGHT_HEADER: [Field; 3] = [Field::Scalar(BYTE_LENGTH); 3];
/// `SignedHeader`: header, commit.
const SIGNED_HEADER: [Field; 2] = [Field::Scalar(BYTE_LENGTH); 2];
/// `types.Header`: version, chain ID, height, time, tx counts, last block ID, then nine hashes
/// and the proposer address.
const HEADER: [Field; 16] = [
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(VARINT),
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(VARINT),
    Field::Scalar(VARINT),
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(BYTE_LENGTH),
];
/// `version.Consensus`: block, app.
const VERSION: [Field; 2] = [Field::Scalar(VARINT); 2];
/// `BlockID`: hash, part set header.
const BLOCK_ID: [Field; 2] = [Field::Scalar(BYTE_LENGTH); 2];
/// `PartSetHeader`: total, hash.
const PART_SET_HEADER: [Field; 2] = [Field::Scalar(VARINT), Field::Scalar(BYTE_LENGTH)];
/// `Commit`: block ID, precommits.
const COMMIT: [Field; 2] = [Field::Scalar(BYTE_LENGTH), Field::List];
/// `CommitSig` (a `Vote`): type, height, round, block ID, timestamp, validator address,
/// validator index, signature.
const VOTE: [Field; 8] = [
    Field::Scalar(VARINT),
    Field::Scalar(VARINT),
    Field::Scalar(VARINT),
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(VARINT),
    Field::Scalar(BYTE_LENGTH),
];
/// `ValidatorSet`: validators, proposer.
const VALIDATOR_SET: [Field; 2] = [Field::List, Field::Scalar(BYTE_LENGTH)];
/// `Validator`: address, public key, voting power, proposer priority.
const VALIDATOR: [Field; 4] = [
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(BYTE_LENGTH),
    Field::Scalar(VARINT),
    Field::Scalar(VARINT),
];

/// `version.Consensus`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Version {
    pub(super) block: u64,
    pub(super) app: u64,
}

/// `PartSetHeader`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct PartSetHeader {
    /// A Go `int`, read from a uvarint.
    pub(super) total: i64,
    pub(super) hash: Vec<u8>,
}

/// `BlockID`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct BlockId {
    pub(super) hash: Vec<u8>,
    pub(super) parts: PartSetHeader,
}

impl BlockId {
    /// `BlockID.IsZero`.
    pub(super) fn is_zero(&self) -> bool {
        self.hash.is_empty() && self.parts.total == 0 && self.parts.hash.is_empty()
    }
}

/// `types.Header`.
#[derive(Debug, Default, Clone)]
pub(super) struct Header {
    pub(super) version: Version,
    pub(super) chain_id: Vec<u8>,
    pub(super) height: i64,
    pub(super) time: Time,
    pub(super) num_txs: i64,
    pub(super) total_txs: i64,
    pub(super) last_block_id: BlockId,
    /// Last commit, data, validators, next validators, consensus, app, last results and
    /// evidence hashes, in field order.
    pub(super) hashes: [Vec<u8>; 8],
    pub(super) proposer_address: Vec<u8>,
}

/// Where `Header::hashes` keeps the validators hash, the next validators hash and the app hash.
pub(super) const VALIDATORS_HASH: usize = 2;
pub(super) const NEXT_VALIDATORS_HASH: usize = 3;
pub(super) const APP_HASH: usize = 5;

/// A `CommitSig`: a precommit as the commit carries it.
#[derive(Debug, Default, Clone)]
pub(super) struct Vote {
    /// `SignedMsgType`: 2 for a precommit.
    pub(super) kind: u8,
    pub(super) height: i64,
    /// A Go `int`, read from a uvarint.
    pub(super) round: i64,
    pub(super) block_id: BlockId,
    pub(super) timestamp: Time,
    pub(super) validator_address: Vec<u8>,
    pub(super) signature: Vec<u8>,
}

/// `Commit`: the block ID and one precommit (or none) per validator.
#[derive(Debug, Default, Clone)]
pub(super) struct Commit {
    pub(super) block_id: BlockId,
    pub(super) precommits: Vec<Option<Vote>>,
}

impl Commit {
    /// `Commit.Height` and `Commit.Round`: those of the first precommit there is.
    pub(super) fn height_round(&self) -> (i64, i64) {
        self.precommits
            .iter()
            .flatten()
            .next()
            .map_or((0, 0), |vote| (vote.height, vote.round))
    }
}

/// A validator's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PubKey {
    Ed25519([u8; 32]),
    Secp256k1([u8; 33]),
}

/// `Validator`, as far as the light client uses it (the address on the wire and the proposer
/// priority are read and left unused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Validator {
    /// Nil when the field is missing.
    pub(super) pub_key: Option<PubKey>,
    pub(super) voting_power: i64,
}

/// The lightclient `Header`.
#[derive(Debug, Default)]
pub(super) struct LightHeader {
    pub(super) header: Option<Header>,
    pub(super) commit: Option<Commit>,
    pub(super) validator_set: Option<Vec<Validator>>,
    pub(super) next_validator_set: Option<Vec<Validator>>,
}

/// `DecodeHeader`.
pub(super) fn decode_header(input: &[u8]) -> Result<LightHeader, Error> {
    let mut out = LightHeader::default();
    decode_struct(
        length_prefixed_body(input)?,
        &LIGHT_HEADER,
        &mut |number, bytes| match number {
            1 => decode_prefixed_struct(bytes, &SIGNED_HEADER, &mut |number, bytes| {
                if number == 1 {
                    let (header, n) = header(bytes)?;
                    out.header = Some(header);
                    Ok(n)
                } else {
                    let (commit, n) = commit(bytes)?;
                    out.commit = Some(commit);
                    Ok(n)
                }
            }),
            2 => {
                let (set, n) = validator_set(bytes)?;
                out.validator_set = Some(set);
                Ok(n)
            }
            _ => {
                let (set, n) = validator_set(bytes)?;
                out.next_validator_set = Some(set);
                Ok(n)
            }
        },
    )?;
    Ok(out)
}

/// Reads a byte slice field into `slot`.
fn bytes_into(slot: &mut Vec<u8>, bytes: &[u8]) -> Result<usize, Error> {
    let (value, n) = byte_slice(bytes)?;
    *slot = value.to_vec();
    Ok(n)
}

/// Reads a Go `int64` or `int` field (a uvarint taken as two's complement) into `slot`.
fn int_into(slot: &mut i64, bytes: &[u8]) -> Result<usize, Error> {
    let (value, n) = uvarint(bytes)?;
    *slot = value as i64;
    Ok(n)
}

fn header(data: &[u8]) -> Result<(Header, usize), Error> {
    let mut h = Header::default();
    let n = decode_prefixed_struct(data, &HEADER, &mut |number, bytes| match number {
        1 => decode_prefixed_struct(bytes, &VERSION, &mut |number, bytes| {
            let (value, n) = uvarint(bytes)?;
            if number == 1 {
                h.version.block = value;
            } else {
                h.version.app = value;
            }
            Ok(n)
        }),
        2 => bytes_into(&mut h.chain_id, bytes),
        3 => int_into(&mut h.height, bytes),
        4 => {
            let (value, n) = time(bytes)?;
            h.time = value;
            Ok(n)
        }
        5 => int_into(&mut h.num_txs, bytes),
        6 => int_into(&mut h.total_txs, bytes),
        7 => block_id(bytes, &mut h.last_block_id),
        8..=15 => bytes_into(&mut h.hashes[number as usize - 8], bytes),
        _ => bytes_into(&mut h.proposer_address, bytes),
    })?;
    Ok((h, n))
}

fn block_id(data: &[u8], id: &mut BlockId) -> Result<usize, Error> {
    decode_prefixed_struct(data, &BLOCK_ID, &mut |number, bytes| {
        if number == 1 {
            return bytes_into(&mut id.hash, bytes);
        }
        decode_prefixed_struct(bytes, &PART_SET_HEADER, &mut |number, bytes| {
            if number == 1 {
                int_into(&mut id.parts.total, bytes)
            } else {
                bytes_into(&mut id.parts.hash, bytes)
            }
        })
    })
}

fn commit(data: &[u8]) -> Result<(Commit, usize), Error> {
    let mut c = Commit::default();
    let n = decode_prefixed_struct(data, &COMMIT, &mut |number, bytes| {
        if number == 1 {
            return block_id(bytes, &mut c.block_id);
        }
        decode_list(bytes, 2, &mut |b| {
            let (vote, n) = optional(b, vote)?;
            c.precommits.push(vote);
            Ok(n)
        })
    })?;
    Ok((c, n))
}

fn vote(data: &[u8]) -> Result<(Vote, usize), Error> {
    let mut v = Vote::default();
    let mut index = 0i64;
    let n = decode_prefixed_struct(data, &VOTE, &mut |number, bytes| match number {
        1 => {
            let (kind, n) = uint8(bytes)?;
            v.kind = kind;
            Ok(n)
        }
        2 => int_into(&mut v.height, bytes),
        3 => int_into(&mut v.round, bytes),
        4 => block_id(bytes, &mut v.block_id),
        5 => {
            let (value, n) = time(bytes)?;
            v.timestamp = value;
            Ok(n)
        }
        6 => bytes_into(&mut v.validator_address, bytes),
        7 => int_into(&mut index, bytes),
        _ => bytes_into(&mut v.signature, bytes),
    })?;
    Ok((v, n))
}

/// A length-prefixed `ValidatorSet`: its validators (the proposer is read and dropped).
fn validator_set(data: &[u8]) -> Result<(Vec<Validator>, usize), Error> {
    let mut validators = Vec::new();
    let n = decode_prefixed_struct(data, &VALIDATOR_SET, &mut |number, bytes| {
        if number == 1 {
            return decode_list(bytes, 1, &mut |b| {
                let (found, n) = optional(b, validator)?;
                validators.push(found.ok_or("validator set: nil validator")?);
                Ok(n)
            });
        }
        validator(bytes).map(|(_, n)| n)
    })?;
    Ok((validators, n))
}

fn validator(data: &[u8]) -> Result<(Validator, usize), Error> {
    let mut v = Validator {
        pub_key: None,
        voting_power: 0,
    };
    let (mut address, mut priority) = (Vec::new(), 0i64);
    let n = decode_prefixed_struct(data, &VALIDATOR, &mut |number, bytes| match number {
        1 => bytes_into(&mut address, bytes),
        2 => {
            let (key, n) = pub_key(bytes)?;
            v.pub_key = Some(key);
            Ok(n)
        }
        3 => int_into(&mut v.voting_power, bytes),
        _ => int_into(&mut priority, bytes),
    })?;
    Ok((v, n))
}

/// A `crypto.PubKey` interface value: `[32]byte` for Ed25519, `[33]byte` for secp256k1.
fn pub_key(data: &[u8]) -> Result<(PubKey, usize), Error> {
    interface(
        data,
        &[ED25519_NAME, SECP256K1_NAME, MULTISIG_NAME],
        |index, bytes| match index {
            0 => byte_array::<32>(bytes).map(|(key, n)| (PubKey::Ed25519(key), n)),
            1 => byte_array::<33>(bytes).map(|(key, n)| (PubKey::Secp256k1(key), n)),
            _ => Err("multisig validator keys are not supported"),
        },
    )
}
