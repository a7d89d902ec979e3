//! 0x67 CometBFT light block validation (Luban on; the Hertz variant from Hertz on), after
//! bnb-chain/bsc `core/vm/contracts_lightclient.go` `cometBFTLightBlockValidate` and
//! `core/vm/lightclient/v2/lightclient.go`, on bnb-chain/greenfield-cometbft v1.3.2 (the
//! client's `github.com/cometbft/cometbft` replacement).
//!
//! Input: `32 bytes whose last 8 are the consensus state's length L | consensus state (L) |
//! protobuf LightBlock (at least one byte)`. The precompile costs 3000 gas
//! (`params.CometBFTLightBlockValidateGas`); every failure is a plain error in the client, a
//! halt that consumes all gas.
//!
//! It applies the light block to the consensus state (`ConsensusState.ApplyLightBlock`): the
//! block must be higher and pass `ValidateBasic`; at the next height its validators must be the
//! ones the state announced and more than 2/3 of them must have signed; at a later height more
//! than 1/3 of the trusted validators and more than 2/3 of the block's own must have signed.
//! The state then takes the block's height, next validator set hash and validators.
//!
//! Output: `changed flag (1) | 23 zero bytes | new state's length (8) | new consensus state`.
//! Under Hertz rules the flag says whether the trusted validator set differs from the block's
//! (their hashes differ). Before Hertz the client compared the block's set with itself after
//! the update, so the flag is always clear.

mod commit;
mod consensus_state;
mod hashing;
mod light_block;

use super::outcome::{charge_and_run, Failure};
use super::protobuf;
use alloy_primitives::Bytes;
use commit::{verify_commit_light, verify_commit_light_trusting};
use consensus_state::{ConsensusState, Validator};
use light_block::LightBlock;
use revm::precompile::PrecompileResult;

/// Why a light block was refused (the client's errors are all alike to its EVM: a halt).
type Error = &'static str;

/// `params.CometBFTLightBlockValidateGas`.
const GAS: u64 = 3000;
/// The length word before the consensus state, and the result's flag-and-length word.
const WORD_LEN: usize = 32;

/// Runs 0x67 as Luban left it (the "changed" flag is always clear).
pub fn cometbft_light_block_validate(
    input: &[u8],
    gas_limit: u64,
    reservoir: u64,
) -> PrecompileResult {
    charge_and_run(GAS, gas_limit, reservoir, || {
        validate(input, false).map_err(Failure::Halt)
    })
}

/// Runs 0x67 as Hertz fixed it (the flag compares the trusted set with the block's).
pub fn cometbft_light_block_validate_hertz(
    input: &[u8],
    gas_limit: u64,
    reservoir: u64,
) -> PrecompileResult {
    charge_and_run(GAS, gas_limit, reservoir, || {
        validate(input, true).map_err(Failure::Halt)
    })
}

/// `DecodeLightBlockValidationInput`, `ApplyLightBlock`, `EncodeLightBlockValidationResult`.
fn validate(input: &[u8], hertz: bool) -> Result<Bytes, Error> {
    if input.len() <= WORD_LEN {
        return Err("input shorter than its length word");
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&input[WORD_LEN - 8..WORD_LEN]);
    let state_len = u64::from_be_bytes(len_bytes);
    let body = &input[WORD_LEN..];
    if state_len >= body.len() as u64 {
        return Err("input: consensus state length leaves no light block");
    }
    let (state, block) = body.split_at(state_len as usize);
    let mut state = ConsensusState::decode(state)?;
    let block = LightBlock::decode(block)?;
    let changed = apply(&mut state, block, hertz)?;
    let state = state.encode()?;
    let mut out = vec![0u8; WORD_LEN];
    out[0] = u8::from(changed);
    out[WORD_LEN - 8..].copy_from_slice(&(state.len() as u64).to_be_bytes());
    out.extend_from_slice(&state);
    Ok(out.into())
}

/// `ConsensusState.ApplyLightBlock`: verifies `block` against `state`, then moves `state` to
/// it. Returns the "validator set changed" flag.
fn apply(state: &mut ConsensusState, block: LightBlock, hertz: bool) -> Result<bool, Error> {
    // decoding checked the height is positive
    let height = block.header.height as u64;
    if height <= state.height {
        return Err("light block not above the consensus state's height");
    }
    block.validate_basic(&state.chain_id)?;
    if state.height == height - 1 {
        if state.next_validator_set_hash[..] != block.header.validators_hash {
            return Err("light block's validators are not the announced next set");
        }
    } else {
        verify_commit_light_trusting(&state.validators, &state.chain_id, &block.commit)?;
    }
    verify_commit_light(&block.validators, &state.chain_id, &block.commit)?;

    let changed =
        hertz && hashing::validator_set_hash(&state.validators)[..] != block.header.validators_hash;
    state.height = height;
    // `ValidateBasic` allows an empty next validators hash: it is copied as zeros
    state.next_validator_set_hash = [0u8; 32];
    let next = &block.header.next_validators_hash;
    state.next_validator_set_hash[..next.len()].copy_from_slice(next);
    state.validators = block.validators;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::hex;

    /// bsc `core/vm/lightclient/v2/lightclient_test.go` `TestConsensusStateApplyLightBlock`
    /// (Hertz rules): the new height and the "changed" flag the client expects. The second case
    /// (trusted height 1, block 273513, a new validator set) takes the non-adjacent path.
    #[test]
    fn apply_light_block_as_in_the_client() {
        let vectors: serde_json::Value = serde_json::from_str(include_str!(
            "../testdata/cometbft-lightclient-vectors.json"
        ))
        .unwrap();
        let cases = vectors["apply_light_block"].as_array().unwrap();
        assert_eq!(cases.len(), 2);
        for case in cases {
            let state_bytes = hex::decode(case["consensus_state"].as_str().unwrap()).unwrap();
            let block = hex::decode(case["light_block"].as_str().unwrap()).unwrap();
            let mut state = ConsensusState::decode(&state_bytes).unwrap();
            let trusted = state.clone();
            let block = LightBlock::decode(&block).unwrap();
            let changed = apply(&mut state, block.clone(), true).unwrap();
            assert_eq!(state.height, case["expect_height"].as_u64().unwrap());
            assert_eq!(
                changed,
                case["expect_validator_set_changed_hertz"]
                    .as_bool()
                    .unwrap()
            );
            assert_eq!(state.chain_id, trusted.chain_id);
            assert_eq!(
                state.next_validator_set_hash[..],
                block.header.next_validators_hash
            );
            assert_eq!(state.validators, block.validators);

            // the same block under Luban rules: the same state, the flag clear
            let mut luban = trusted.clone();
            assert!(!apply(&mut luban, block, false).unwrap());
            assert_eq!(luban, state);
        }
    }

    /// The changed case's full precompile output: 32-byte word with the flag and the new
    /// state's length, then the state; its first validator signature tampered, a halt.
    #[test]
    fn changed_case_through_the_precompile() {
        let vectors: serde_json::Value = serde_json::from_str(include_str!(
            "../testdata/cometbft-lightclient-vectors.json"
        ))
        .unwrap();
        let case = &vectors["apply_light_block"][1];
        let state = hex::decode(case["consensus_state"].as_str().unwrap()).unwrap();
        let block = hex::decode(case["light_block"].as_str().unwrap()).unwrap();
        let mut input = vec![0u8; 24];
        input.extend_from_slice(&(state.len() as u64).to_be_bytes());
        input.extend_from_slice(&state);
        input.extend_from_slice(&block);
        let out = cometbft_light_block_validate_hertz(&input, 3000, 0).unwrap();
        assert!(out.is_success(), "{:?}", out.status);
        assert_eq!(out.bytes[0], 1);
        assert!(out.bytes[1..24].iter().all(|&b| b == 0));
        let len = u64::from_be_bytes(out.bytes[24..32].try_into().unwrap());
        assert_eq!(len as usize, out.bytes.len() - 32);
        assert_eq!(&out.bytes[32..64], &state[..32], "chain id kept");
        assert_eq!(out.bytes[64..72], 273_513u64.to_be_bytes());

        let signed = LightBlock::decode(&block).unwrap();
        let first = signed
            .commit
            .signatures
            .iter()
            .find(|s| s.flag == light_block::FLAG_COMMIT)
            .unwrap();
        let at = input
            .windows(64)
            .position(|w| w == first.signature)
            .unwrap();
        input[at] ^= 1;
        let out = cometbft_light_block_validate_hertz(&input, 3000, 0).unwrap();
        assert!(out.halt_reason().is_some_and(|h| !h.is_oog()));
    }
}
