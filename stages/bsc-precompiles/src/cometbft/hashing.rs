//! The hashes and signed bytes of greenfield-cometbft v1.3.2:
//! - `merkle.HashFromByteSlices` (`crypto/merkle/tree.go`, RFC 6962 with SHA-256);
//! - `Header.Hash` (`types/block.go`): the Merkle root of the header's fields, each encoded
//!   on its own (`cdcEncode` wraps a scalar in a protobuf `*Value` message, nothing when
//!   empty);
//! - `ValidatorSet.Hash` (`types/validator_set.go`): the Merkle root of each validator's
//!   `SimpleValidator` encoding (`types/validator.go` `Validator.Bytes`), which in greenfield
//!   also covers the relayer BLS key and relayer address;
//! - `VoteSignBytes` (`types/vote.go`, `types/canonical.go`): the length-prefixed
//!   `CanonicalVote` a validator signs for a precommit.

use super::{
    light_block::{BlockId, Commit, CommitSig, Header, Timestamp},
    protobuf::{
        put_bytes_field, put_bytes_field_always, put_sfixed64_field, put_varint, put_varint_field,
    },
    Validator,
};
use sha2::{Digest, Sha256};

/// `SIGNED_MSG_TYPE_PRECOMMIT`.
const PRECOMMIT: u64 = 2;

/// `merkle.HashFromByteSlices`: leaves hashed as `SHA256(0 || item)`, inner nodes as
/// `SHA256(1 || left || right)`, split at the largest power of two below the count.
fn merkle_root(items: &[Vec<u8>]) -> [u8; 32] {
    match items {
        [] => Sha256::digest(b"").into(),
        [leaf] => Sha256::new()
            .chain_update([0u8])
            .chain_update(leaf)
            .finalize()
            .into(),
        _ => {
            let split = items.len().next_power_of_two() / 2;
            Sha256::new()
                .chain_update([1u8])
                .chain_update(merkle_root(&items[..split]))
                .chain_update(merkle_root(&items[split..]))
                .finalize()
                .into()
        }
    }
}

/// `cdcEncode` of a string or bytes: `BytesValue` / `StringValue` (field 1), nothing if empty.
fn wrapped_bytes(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes_field(&mut out, 1, value);
    out
}

fn encode_timestamp(time: &Timestamp) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint_field(&mut out, 1, time.seconds as u64);
    put_varint_field(&mut out, 2, time.nanos as i64 as u64);
    out
}

/// `BlockID` and `CanonicalBlockID` have the same encoding: the part set header is always
/// written, even when empty (gogoproto, non-nullable).
fn encode_block_id(id: &BlockId) -> Vec<u8> {
    let mut parts = Vec::new();
    put_varint_field(&mut parts, 1, u64::from(id.parts.total));
    put_bytes_field(&mut parts, 2, &id.parts.hash);
    let mut out = Vec::new();
    put_bytes_field(&mut out, 1, &id.hash);
    put_bytes_field_always(&mut out, 2, &parts);
    out
}

/// `Header.Hash`: `None` when the header has no validators hash.
pub(super) fn header_hash(header: &Header) -> Option<[u8; 32]> {
    if header.validators_hash.is_empty() {
        return None;
    }
    let mut version = Vec::new();
    put_varint_field(&mut version, 1, header.version.block);
    put_varint_field(&mut version, 2, header.version.app);
    let mut height = Vec::new();
    put_varint_field(&mut height, 1, header.height as u64);
    let items = [
        version,
        wrapped_bytes(&header.chain_id),
        height,
        encode_timestamp(&header.time),
        encode_block_id(&header.last_block_id),
        wrapped_bytes(&header.last_commit_hash),
        wrapped_bytes(&header.data_hash),
        wrapped_bytes(&header.validators_hash),
        wrapped_bytes(&header.next_validators_hash),
        wrapped_bytes(&header.consensus_hash),
        wrapped_bytes(&header.app_hash),
        wrapped_bytes(&header.last_results_hash),
        wrapped_bytes(&header.evidence_hash),
        wrapped_bytes(&header.proposer_address),
        wrapped_bytes(&header.randao_mix),
    ];
    Some(merkle_root(&items))
}

/// `Validator.Bytes`: `SimpleValidator{pub_key: PublicKey{ed25519}, voting_power, bls_key,
/// relayer_address}`.
fn simple_validator(validator: &Validator) -> Vec<u8> {
    let mut key = Vec::new();
    put_bytes_field_always(&mut key, 1, &validator.pub_key);
    let mut out = Vec::new();
    put_bytes_field_always(&mut out, 1, &key);
    put_varint_field(&mut out, 2, validator.voting_power as u64);
    put_bytes_field(&mut out, 3, &validator.bls_key);
    put_bytes_field(&mut out, 4, &validator.relayer_address);
    out
}

/// `ValidatorSet.Hash`, over the validators in their given order.
pub(super) fn validator_set_hash(validators: &[Validator]) -> [u8; 32] {
    let items: Vec<Vec<u8>> = validators.iter().map(simple_validator).collect();
    merkle_root(&items)
}

/// `Commit.VoteSignBytes` for a signature that votes for the commit's block: the
/// `CanonicalVote` of a precommit at the commit's height and round for its block ID (never the
/// zero ID: `Commit.ValidateBasic` refused that), with the signature's timestamp, on
/// `chain_id`, prefixed with its length as a varint.
pub(super) fn vote_sign_bytes(chain_id: &[u8], commit: &Commit, sig: &CommitSig) -> Vec<u8> {
    let mut vote = Vec::new();
    put_varint_field(&mut vote, 1, PRECOMMIT);
    put_sfixed64_field(&mut vote, 2, commit.height);
    put_sfixed64_field(&mut vote, 3, i64::from(commit.round));
    put_bytes_field_always(&mut vote, 4, &encode_block_id(&commit.block_id));
    put_bytes_field_always(&mut vote, 5, &encode_timestamp(&sig.timestamp));
    put_bytes_field(&mut vote, 6, chain_id);
    let mut out = Vec::with_capacity(vote.len() + 2);
    put_varint(&mut out, vote.len() as u64);
    out.extend_from_slice(&vote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::hex;

    /// bsc `core/vm/lightclient/v2/lightclient_test.go` `testcases`: each consensus state's
    /// next validator set hash is the hash of its own validators, relayer keys included.
    #[test]
    fn validator_set_hash_matches_the_client() {
        let vectors: serde_json::Value = serde_json::from_str(include_str!(
            "../testdata/cometbft-lightclient-vectors.json"
        ))
        .unwrap();
        let cases = vectors["consensus_states"].as_array().unwrap();
        assert_eq!(cases.len(), 2);
        for case in cases {
            let hex_of = |v: &serde_json::Value| hex::decode(v.as_str().unwrap()).unwrap();
            let validators: Vec<Validator> = case["validators"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| Validator {
                    pub_key: hex_of(&v["pubkey"]).try_into().unwrap(),
                    voting_power: v["voting_power"].as_i64().unwrap(),
                    bls_key: hex_of(&v["relayer_bls_key"]),
                    relayer_address: hex_of(&v["relayer_address"]),
                })
                .collect();
            assert_eq!(
                validator_set_hash(&validators).to_vec(),
                hex_of(&case["next_validator_set_hash"])
            );
        }
    }

    /// RFC 6962's tree shape: with three leaves the root is `inner(inner(l0, l1), l2)`, and an
    /// empty list hashes to SHA-256 of nothing.
    #[test]
    fn merkle_root_splits_at_a_power_of_two() {
        let leaf = |b: u8| -> [u8; 32] { Sha256::digest([0, b]).into() };
        let inner = |l: [u8; 32], r: [u8; 32]| -> [u8; 32] {
            Sha256::new()
                .chain_update([1])
                .chain_update(l)
                .chain_update(r)
                .finalize()
                .into()
        };
        let items = vec![vec![1u8], vec![2], vec![3]];
        assert_eq!(merkle_root(&items), inner(inner(leaf(1), leaf(2)), leaf(3)));
        assert_eq!(
            hex::encode(merkle_root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
