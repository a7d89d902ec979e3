//! The hashes and signed bytes of bnb-chain/tendermint v0.31.17, amino-encoded (go-amino
//! v0.14.1 `binary-encode.go`: struct fields in order, a field left out when it is its zero
//! value or, not being a pointer, encodes as the single byte `0x00`):
//! - `Header.Hash` (`types/block.go`): the simple Merkle root of the header's fields, each
//!   encoded bare on its own (`cdcEncode`: nothing for an empty string or byte slice); nil when
//!   the validators hash is empty;
//! - `ValidatorSet.Hash` (`types/validator_set.go`): the simple Merkle root of each validator's
//!   `Validator.Bytes`, the public key (an amino interface) and the voting power;
//! - `Vote.SignBytes` (`types/vote.go`, `types/canonical.go`): the length-prefixed
//!   `CanonicalVote` with the chain ID.

use super::super::amino::{prefix_of, put_bytes, put_time, put_uvarint, Time};
use super::super::merkle::simple_hash;
use super::header::{
    BlockId, Header, PubKey, Validator, ED25519_NAME, SECP256K1_NAME, VALIDATORS_HASH,
};

/// `PrecommitType`.
pub(super) const PRECOMMIT: u8 = 2;

/// Appends field `number`'s key and a length-prefixed value, left out when the value is empty
/// (an empty struct, or an empty byte slice or string).
fn put_bytes_field(out: &mut Vec<u8>, number: u8, value: &[u8]) {
    if !value.is_empty() {
        out.push(number << 3 | 2);
        put_bytes(out, value);
    }
}

/// Appends field `number`'s key and a uvarint, left out when zero.
fn put_uvarint_field(out: &mut Vec<u8>, number: u8, value: u64) {
    if value != 0 {
        out.push(number << 3);
        put_uvarint(out, value);
    }
}

/// Appends field `number`'s key and 8 little-endian bytes (`binary:"fixed64"`), left out when
/// zero.
fn put_fixed64_field(out: &mut Vec<u8>, number: u8, value: i64) {
    if value != 0 {
        out.push(number << 3 | 1);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

fn time_bytes(time: Time) -> Vec<u8> {
    let mut out = Vec::new();
    put_time(&mut out, time);
    out
}

/// `BlockID` bare: hash, then `PartSetHeader{Total, Hash}`.
fn block_id_bytes(id: &BlockId) -> Vec<u8> {
    let mut parts = Vec::new();
    put_uvarint_field(&mut parts, 1, id.parts.total as u64);
    put_bytes_field(&mut parts, 2, &id.parts.hash);
    let mut out = Vec::new();
    put_bytes_field(&mut out, 1, &id.hash);
    put_bytes_field(&mut out, 2, &parts);
    out
}

/// `CanonicalBlockID` bare: hash, then `CanonicalPartSetHeader{Hash, Total}`.
fn canonical_block_id_bytes(id: &BlockId) -> Vec<u8> {
    let mut parts = Vec::new();
    put_bytes_field(&mut parts, 1, &id.parts.hash);
    put_uvarint_field(&mut parts, 2, id.parts.total as u64);
    let mut out = Vec::new();
    put_bytes_field(&mut out, 1, &id.hash);
    put_bytes_field(&mut out, 2, &parts);
    out
}

/// `cdcEncode` of a string or byte slice: nothing when empty, else length-prefixed.
fn cdc_bytes(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if !value.is_empty() {
        put_bytes(&mut out, value);
    }
    out
}

/// `cdcEncode` of an `int64`: a uvarint, zero included.
fn cdc_int(value: i64) -> Vec<u8> {
    let mut out = Vec::new();
    put_uvarint(&mut out, value as u64);
    out
}

/// `Header.Hash`: `None` (nil) when the validators hash is empty.
pub(super) fn header_hash(header: &Header) -> Option<Vec<u8>> {
    if header.hashes[VALIDATORS_HASH].is_empty() {
        return None;
    }
    let mut version = Vec::new();
    put_uvarint_field(&mut version, 1, header.version.block);
    put_uvarint_field(&mut version, 2, header.version.app);
    let mut items = vec![
        version,
        cdc_bytes(&header.chain_id),
        cdc_int(header.height),
        time_bytes(header.time),
        cdc_int(header.num_txs),
        cdc_int(header.total_txs),
        block_id_bytes(&header.last_block_id),
    ];
    items.extend(header.hashes.iter().map(|hash| cdc_bytes(hash)));
    items.push(cdc_bytes(&header.proposer_address));
    Some(simple_hash(&items))
}

/// A public key as an amino interface value: its type's prefix, then its bytes
/// length-prefixed.
pub(super) fn pub_key_bytes(key: &PubKey) -> Vec<u8> {
    let (name, bytes): (&str, &[u8]) = match key {
        PubKey::Ed25519(key) => (ED25519_NAME, key),
        PubKey::Secp256k1(key) => (SECP256K1_NAME, key),
    };
    let mut out = prefix_of(name).to_vec();
    put_bytes(&mut out, bytes);
    out
}

/// `ValidatorSet.Hash`: empty (nil) for no validators.
pub(super) fn validator_set_hash(validators: &[Validator]) -> Vec<u8> {
    let items: Vec<Vec<u8>> = validators
        .iter()
        .map(|validator| {
            let mut out = Vec::new();
            if let Some(key) = &validator.pub_key {
                put_bytes_field(&mut out, 1, &pub_key_bytes(key));
            }
            put_uvarint_field(&mut out, 2, validator.voting_power as u64);
            out
        })
        .collect();
    simple_hash(&items)
}

/// What a precommit's signer signs: `Vote.SignBytes` of the commit's vote at one index, whose
/// type, height and round are the commit's (`Commit.GetVote`), its block ID and timestamp
/// the precommit's own.
pub(super) fn vote_sign_bytes(
    chain_id: &[u8],
    height: i64,
    round: i64,
    block_id: &BlockId,
    timestamp: Time,
) -> Vec<u8> {
    let mut vote = Vec::new();
    put_uvarint_field(&mut vote, 1, u64::from(PRECOMMIT));
    put_fixed64_field(&mut vote, 2, height);
    put_fixed64_field(&mut vote, 3, round);
    put_bytes_field(&mut vote, 4, &canonical_block_id_bytes(block_id));
    put_bytes_field(&mut vote, 5, &time_bytes(timestamp));
    put_bytes_field(&mut vote, 6, chain_id);
    let mut out = Vec::new();
    put_bytes(&mut out, &vote);
    out
}
