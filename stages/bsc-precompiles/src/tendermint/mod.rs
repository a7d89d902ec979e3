//! 0x64 Tendermint header validation in its working form (before Nano, and from Moran on),
//! after bnb-chain/bsc `core/vm/contracts_lightclient.go` `tmHeaderValidate` and
//! `core/vm/lightclient/v1/types.go` (`DecodeConsensusState`, `DecodeHeader`,
//! `ConsensusState.ApplyHeader`, `Header.Validate`, `EncodeConsensusState`), on
//! bnb-chain/tendermint v0.31.17 `types` and go-amino v0.14.1.
//!
//! Input: `32 bytes whose last 8 are the payload's length | payload`, the payload being
//! `32 bytes whose last 8 are the consensus state's length | consensus state | amino
//! length-prefixed header` (the header at least one byte). The precompile costs 3000 gas
//! (`params.TendermintHeaderValidateGas`).
//!
//! The header must be of the consensus state's chain, above its height, consistent with its
//! commit and its two validator sets; a header right after the trusted height must be signed
//! by the trusted next validator set (`VerifyCommit`), a later one by its own set and by more
//! than 2/3 of the trusted set's power (`VerifyFutureCommit`). Success returns
//! `validator set changed (1 byte) | 23 zero bytes | length (8) | new consensus state`, the
//! flag set when the header's validators hash differs from the trusted current one or its next
//! validators hash from the trusted next set's hash. Every failure is a plain error in the
//! client (its panics are recovered into errors too): a halt that consumes all gas.
//!
//! One divergence: a validator whose key is a multisig threshold key (which the client's
//! amino codec would read) makes the header unreadable here. Tendermint v0.31 validators use
//! Ed25519 keys (secp256k1 keys are read and checked too).

mod commit;
mod consensus_state;
mod hashing;
mod header;

use super::fields::{length_word, WORD_LEN};
use super::outcome::{charge_and_run, Failure};
use alloy_primitives::Bytes;
use commit::{validate_basic, verify_commit, verify_future_commit};
use consensus_state::ConsensusState;
use hashing::{header_hash, validator_set_hash};
use header::{decode_header, LightHeader, APP_HASH, NEXT_VALIDATORS_HASH, VALIDATORS_HASH};
use revm::precompile::PrecompileResult;

/// Why a header was refused (the client's errors are all alike to its EVM: a halt).
type Error = &'static str;

/// `params.TendermintHeaderValidateGas`.
const GAS: u64 = 3000;

/// Runs 0x64: validates a Tendermint header against a consensus state and returns the new
/// consensus state.
pub fn tm_header_validate(input: &[u8], gas_limit: u64, reservoir: u64) -> PrecompileResult {
    charge_and_run(GAS, gas_limit, reservoir, || {
        validate(input).map(Bytes::from).map_err(Failure::Halt)
    })
}

/// `tmHeaderValidate.Run`.
fn validate(input: &[u8]) -> Result<Vec<u8>, Error> {
    let (cs, header) = decode_input(input)?;
    let mut cs = ConsensusState::decode(cs)?;
    let header = decode_header(header)?;
    let changed = apply_header(&mut cs, header)?;
    let encoded = cs.encode()?;
    let mut out = vec![0u8; WORD_LEN];
    out[0] = u8::from(changed);
    out[WORD_LEN - 8..].copy_from_slice(&(encoded.len() as u64).to_be_bytes());
    out.extend(encoded);
    Ok(out)
}

/// The length checks of `Run` and `decodeTendermintHeaderValidationInput`: the consensus state
/// bytes and the header bytes.
fn decode_input(input: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    if input.len() <= WORD_LEN {
        return Err("invalid input");
    }
    if length_word(input) != (input.len() - WORD_LEN) as u64 {
        return Err("invalid input: payload length does not match");
    }
    let payload = &input[WORD_LEN..];
    if payload.len() < WORD_LEN {
        // The client reads the length word past the end: a recovered panic.
        return Err("invalid input: no consensus state length");
    }
    let cs_len = length_word(payload);
    let cs_end = cs_len
        .checked_add(WORD_LEN as u64)
        .filter(|&end| end < payload.len() as u64)
        .ok_or("invalid input: consensus state length too long")? as usize;
    Ok((&payload[WORD_LEN..cs_end], &payload[cs_end..]))
}

/// `ConsensusState.ApplyHeader`: checks the header and moves the state to it, giving whether
/// the validator set changed.
fn apply_header(cs: &mut ConsensusState, light: LightHeader) -> Result<bool, Error> {
    let header = light
        .header
        .as_ref()
        .ok_or("signed header missing header")?;
    if header.height as u64 <= cs.height {
        return Err("header height <= consensus height");
    }
    // `Header.Validate`: `SignedHeader.ValidateBasic`, then the two sets against their hashes.
    let commit = light
        .commit
        .as_ref()
        .ok_or("signed header missing commit")?;
    if header.chain_id != cs.chain_id {
        return Err("header belongs to another chain");
    }
    if commit.height_round().0 != header.height {
        return Err("signed header and commit height mismatch");
    }
    if header_hash(header).unwrap_or_default() != commit.block_id.hash {
        return Err("commit signs another block than the header");
    }
    validate_basic(commit)?;
    let validators = light.validator_set.as_ref().ok_or("validator set is nil")?;
    let next_validators = light
        .next_validator_set
        .ok_or("next validator set is nil")?;
    if header.hashes[VALIDATORS_HASH] != validator_set_hash(validators) {
        return Err("validator set does not match hash");
    }
    let next_hash = validator_set_hash(&next_validators);
    if header.hashes[NEXT_VALIDATORS_HASH] != next_hash {
        return Err("next validator set does not match hash");
    }

    let trusted_next_hash = validator_set_hash(&cs.next_validators);
    if cs.height == header.height.wrapping_sub(1) as u64 {
        if trusted_next_hash != header.hashes[VALIDATORS_HASH] {
            return Err("unexpected validators");
        }
        verify_commit(
            &cs.next_validators,
            &cs.chain_id,
            &commit.block_id,
            header.height,
            commit,
        )?;
    } else {
        verify_future_commit(
            &cs.next_validators,
            validators,
            &cs.chain_id,
            &commit.block_id,
            header.height,
            commit,
        )?;
    }
    let changed = cs.validators_hash != header.hashes[VALIDATORS_HASH]
        || trusted_next_hash != header.hashes[NEXT_VALIDATORS_HASH];
    cs.height = header.height as u64;
    cs.app_hash = header.hashes[APP_HASH].clone();
    cs.validators_hash = header.hashes[VALIDATORS_HASH].clone();
    cs.next_validators = next_validators;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::hex;
    use serde_json::Value;

    fn vectors() -> Value {
        serde_json::from_str(include_str!("../testdata/tendermint-header-vectors.json")).unwrap()
    }

    fn field(name: &str) -> Vec<u8> {
        hex::decode(vectors()["tm_header_validate"][name].as_str().unwrap()).unwrap()
    }

    /// The input as the client's test builds it: total length word, consensus state length
    /// word, consensus state, header.
    fn input(cs: &[u8], header: &[u8]) -> Vec<u8> {
        let word = |len: usize| {
            let mut w = [0u8; 32];
            w[24..].copy_from_slice(&(len as u64).to_be_bytes());
            w
        };
        let mut payload = word(cs.len()).to_vec();
        payload.extend(cs);
        payload.extend(header);
        let mut out = word(payload.len()).to_vec();
        out.extend(payload);
        out
    }

    /// Runs 0x64 with enough gas and returns its output, asserting success at 3000 gas.
    fn succeeds(input: &[u8]) -> Vec<u8> {
        let out = tm_header_validate(input, 10_000, 0).unwrap();
        assert!(out.is_success(), "{:?}", validate(input).err());
        assert_eq!(out.gas_used, 3000);
        out.bytes.to_vec()
    }

    fn halts(input: &[u8]) -> Error {
        let out = tm_header_validate(input, 10_000, 0).unwrap();
        assert!(out.halt_reason().is_some_and(|h| !h.is_oog()));
        validate(input).unwrap_err()
    }

    /// `bytes` with the `len`-byte field that follows the first occurrence of `marker` (hex)
    /// replaced by `with`.
    fn with_replaced(bytes: &[u8], marker: &str, with: &[u8]) -> Vec<u8> {
        let marker = hex::decode(marker).unwrap();
        let at = bytes
            .windows(marker.len())
            .position(|w| w == marker.as_slice())
            .expect("marker in the vector")
            + marker.len();
        let mut out = bytes.to_vec();
        out[at..at + with.len()].copy_from_slice(with);
        out
    }

    /// The consensus state `cs` at `height` with `app_hash` (its other parts unchanged).
    fn moved(cs: &[u8], height: u64, app_hash: &[u8]) -> Vec<u8> {
        let mut out = cs.to_vec();
        out[32..40].copy_from_slice(&height.to_be_bytes());
        out[40..72].copy_from_slice(app_hash);
        out
    }

    /// `TestTmHeaderValidateAndMerkleProofValidate`: the header right after the trusted height,
    /// then a later one, each moving the consensus state. Both headers name the trusted
    /// validators as both their current and next sets, so the state keeps its chain ID,
    /// validators hash and validators, takes the header's height and app hash, and the
    /// "validator set changed" flag stays 0. The later header's app hash is the one the test's
    /// `acc` IAVL proof then validates against.
    #[test]
    fn client_vectors_move_the_consensus_state() {
        let v = &vectors()["tm_header_validate"];
        let test_height = v["test_height"].as_u64().unwrap();
        let cs = field("consensus_state");
        assert_eq!(&cs[..18], v["chain_id"].as_str().unwrap().as_bytes());

        let out = succeeds(&input(&cs, &field("header_adjacent")));
        assert_eq!(out[0], 0, "validator set changed flag");
        assert!(out[1..24].iter().all(|&b| b == 0));
        assert_eq!(out[24..32], (cs.len() as u64).to_be_bytes());
        // The adjacent header's app hash (its field 13, `6a 20 ...`).
        let app_hash =
            hex::decode("a3e248bc209955054d880e4d89ff3c0419c0cd77681f4b4c6649ead5545054b9")
                .unwrap();
        let synced = &out[32..];
        assert_eq!(synced, moved(&cs, test_height + 1, &app_hash));

        let out = succeeds(&input(synced, &field("header_later")));
        assert_eq!(out[0], 0, "validator set changed flag");
        // The later header's height (its field 3, `18 8596a822`).
        let later_height = 71_961_349;
        let app_hash = field("app_hash_after_later");
        assert_eq!(out[32..], moved(&cs, later_height, &app_hash));
    }

    #[test]
    fn gas_and_framing() {
        let good = input(&field("consensus_state"), &field("header_adjacent"));
        let out = tm_header_validate(&good, 2999, 0).unwrap();
        assert!(out.halt_reason().is_some_and(|h| h.is_oog()));
        let out = tm_header_validate(&[], 2999, 0).unwrap();
        assert!(out.halt_reason().is_some_and(|h| h.is_oog()));

        assert_eq!(halts(&good[..32]), "invalid input");
        assert!(halts(&good[..good.len() - 1]).contains("payload length"));
        let mut longer = good.clone();
        longer.push(0);
        assert!(halts(&longer).contains("payload length"));
        // A payload shorter than its consensus state length word.
        let mut short = vec![0u8; 32];
        short[31] = 8;
        short.extend([0u8; 8]);
        assert!(halts(&short).contains("no consensus state length"));
        // A consensus state length reaching the end leaves no header.
        let cs = field("consensus_state");
        let mut no_header = good.clone();
        no_header[32 + 24..64].copy_from_slice(&((good.len() - 64) as u64).to_be_bytes());
        assert!(halts(&no_header).contains("too long"));
        let mut huge = good.clone();
        huge[32 + 24..64].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(halts(&huge).contains("too long"));
        // A consensus state that is not 104 + 40 * N bytes.
        let header = field("header_adjacent");
        assert!(halts(&input(&cs[..cs.len() - 1], &header)).contains("consensus state"));
        assert!(halts(&input(&cs[..104], &header)).contains("consensus state"));
        // A header cut short, or with a byte too many, fails amino's length prefix.
        assert!(halts(&input(&cs, &header[..header.len() - 1])).contains("amino"));
        let mut extra = header.clone();
        extra.push(0);
        assert!(halts(&input(&cs, &extra)).contains("amino"));
    }

    /// A header that does not fit the state: another chain, a height not above it, a changed
    /// field (the commit then signs another block), a bad signature.
    #[test]
    fn mismatched_headers_halt() {
        let cs = field("consensus_state");
        let header = field("header_adjacent");
        let mut other_chain = cs.clone();
        other_chain[0] ^= 1;
        assert_eq!(
            halts(&input(&other_chain, &header)),
            "header belongs to another chain"
        );
        let synced = succeeds(&input(&cs, &header))[32..].to_vec();
        assert_eq!(
            halts(&input(&synced, &header)),
            "header height <= consensus height"
        );
        let other_app_hash = with_replaced(&header, "6a20a3e248", &[0x00]);
        assert_eq!(
            halts(&input(&cs, &other_app_hash)),
            "commit signs another block than the header"
        );
        // The first precommit's signature (field 8, `42 40`), first byte changed.
        let bad_signature = with_replaced(&header, "42409276f20a", &[0x00]);
        assert_eq!(
            halts(&input(&cs, &bad_signature)),
            "invalid commit: invalid signature"
        );
        // The trusted next set no longer hashes to the header's validators hash.
        let mut other_power = cs.clone();
        other_power[104 + 39] ^= 1;
        assert_eq!(
            halts(&input(&other_power, &header)),
            "unexpected validators"
        );
    }

    /// `VerifyFutureCommit`: the later header is signed by its own set, but once the trusted
    /// set gives its first validator (who did not sign: the commit's first precommit is nil,
    /// `12 00`) more power than all others together, the trusted signers fall short of 2/3.
    #[test]
    fn insufficient_trusted_power_halts() {
        let cs = field("consensus_state");
        let synced = succeeds(&input(&cs, &field("header_adjacent")))[32..].to_vec();
        let later = field("header_later");
        let mut heavy = synced.clone();
        heavy[104 + 32..104 + 40].copy_from_slice(&(100 * 100_000_000_000u64).to_be_bytes());
        assert_eq!(
            halts(&input(&heavy, &later)),
            "invalid commit: insufficient old voting power"
        );
        // With the power back, it verifies.
        assert_eq!(synced[104 + 32..104 + 40], 100_000_000_000u64.to_be_bytes());
        succeeds(&input(&synced, &later));
    }

    /// The headers' own hashes, as Tendermint computed them on the chain: each commit's block
    /// ID hash is its header's hash, and the validators hash is the validator sets' hash.
    #[test]
    fn hashes_match_the_chain() {
        for name in ["header_adjacent", "header_later"] {
            let light = decode_header(&field(name)).unwrap();
            let header = light.header.as_ref().unwrap();
            let commit = light.commit.as_ref().unwrap();
            assert_eq!(header_hash(header), Some(commit.block_id.hash.clone()));
            let validators = light.validator_set.as_ref().unwrap();
            assert_eq!(validators.len(), 11);
            assert_eq!(
                validator_set_hash(validators),
                header.hashes[VALIDATORS_HASH]
            );
            assert_eq!(
                validator_set_hash(light.next_validator_set.as_ref().unwrap()),
                header.hashes[NEXT_VALIDATORS_HASH]
            );
        }
    }

    /// bnb-chain/tendermint `TestVoteSignBytesTestVectors` case 1.
    #[test]
    fn vote_sign_bytes_match_tendermint() {
        let v = &vectors()["vote_sign_bytes"];
        let time = super::super::amino::Time {
            seconds: v["timestamp_seconds"].as_i64().unwrap(),
            nanos: 0,
        };
        let bytes = hashing::vote_sign_bytes(
            b"",
            v["height"].as_i64().unwrap(),
            v["round"].as_i64().unwrap(),
            &header::BlockId::default(),
            time,
        );
        assert_eq!(hex::encode(bytes), v["expected"].as_str().unwrap());
    }
}
