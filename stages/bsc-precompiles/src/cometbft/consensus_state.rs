//! The light client's consensus state in the fixed layout of bnb-chain/bsc
//! `core/vm/lightclient/v2/lightclient.go` (`DecodeConsensusState`, `EncodeConsensusState`):
//!
//! `chain id (32, zero-padded) | height (8) | next validator set hash (32)`, then per
//! validator `ed25519 key (32) | voting power (8) | relayer address (20) | relayer BLS key (48)`,
//! at least one and at most 99 validators. Integers are big-endian.

use super::super::fields::{be_u64, copy_front, trim_zeros};
use super::Error;
use sha2::{Digest, Sha256};

const CHAIN_ID_LEN: usize = 32;
const HEIGHT_LEN: usize = 8;
const HASH_LEN: usize = 32;
const PUBKEY_LEN: usize = 32;
const VOTING_POWER_LEN: usize = 8;
const RELAYER_ADDRESS_LEN: usize = 20;
const BLS_KEY_LEN: usize = 48;
const VALIDATOR_LEN: usize = PUBKEY_LEN + VOTING_POWER_LEN + RELAYER_ADDRESS_LEN + BLS_KEY_LEN;
const HEADER_LEN: usize = CHAIN_ID_LEN + HEIGHT_LEN + HASH_LEN;
/// `maxConsensusStateLength`: 99 validators.
const MAX_VALIDATORS: usize = 99;

/// A validator as the light client keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Validator {
    /// ed25519 public key.
    pub(super) pub_key: [u8; 32],
    /// Voting power (the consensus state's eight bytes read as a signed number, as in Go).
    pub(super) voting_power: i64,
    /// Relayer BLS key: 48 bytes, or empty for a block's validator without one.
    pub(super) bls_key: Vec<u8>,
    /// Relayer address: 20 bytes, or empty for a block's validator without one.
    pub(super) relayer_address: Vec<u8>,
}

impl Validator {
    /// The validator's address, `SHA256(pubkey)[..20]` (`ed25519.PubKey.Address`).
    pub(super) fn address(&self) -> [u8; 20] {
        let hash = Sha256::digest(self.pub_key);
        let mut address = [0u8; 20];
        address.copy_from_slice(&hash[..20]);
        address
    }
}

/// What the light client trusts: the last verified height of a chain and its validators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ConsensusState {
    /// The chain id with the zero bytes at both ends trimmed (Go's `bytes.Trim`).
    pub(super) chain_id: Vec<u8>,
    pub(super) height: u64,
    pub(super) next_validator_set_hash: [u8; 32],
    pub(super) validators: Vec<Validator>,
}

impl ConsensusState {
    /// `DecodeConsensusState`.
    pub(super) fn decode(input: &[u8]) -> Result<Self, Error> {
        if input.len() <= HEADER_LEN || !(input.len() - HEADER_LEN).is_multiple_of(VALIDATOR_LEN) {
            return Err("consensus state: length is not 72 + 108 * N, N >= 1");
        }
        if input.len() > HEADER_LEN + MAX_VALIDATORS * VALIDATOR_LEN {
            return Err("consensus state: more than 99 validators");
        }
        let (chain_id, rest) = input.split_at(CHAIN_ID_LEN);
        let (height, rest) = rest.split_at(HEIGHT_LEN);
        let (next_hash, rest) = rest.split_at(HASH_LEN);
        let chain_id = trim_zeros(chain_id).to_vec();
        let validators = rest
            .chunks_exact(VALIDATOR_LEN)
            .map(|bytes| {
                let (pub_key, bytes) = bytes.split_at(PUBKEY_LEN);
                let (power, bytes) = bytes.split_at(VOTING_POWER_LEN);
                let (relayer, bls) = bytes.split_at(RELAYER_ADDRESS_LEN);
                let mut key = [0u8; 32];
                key.copy_from_slice(pub_key);
                Validator {
                    pub_key: key,
                    voting_power: be_u64(power) as i64,
                    bls_key: bls.to_vec(),
                    relayer_address: relayer.to_vec(),
                }
            })
            .collect();
        let mut next_validator_set_hash = [0u8; 32];
        next_validator_set_hash.copy_from_slice(next_hash);
        Ok(ConsensusState {
            chain_id,
            height: be_u64(height),
            next_validator_set_hash,
            validators,
        })
    }

    /// `EncodeConsensusState`: a relayer address or BLS key a validator lacks is written as
    /// zeros. The chain id always fits: it was read from the 32-byte field.
    pub(super) fn encode(&self) -> Result<Vec<u8>, Error> {
        if self.validators.len() > MAX_VALIDATORS {
            return Err("consensus state: more than 99 validators");
        }
        let mut out = vec![0u8; HEADER_LEN + self.validators.len() * VALIDATOR_LEN];
        let (header, validators) = out.split_at_mut(HEADER_LEN);
        copy_front(&mut header[..CHAIN_ID_LEN], &self.chain_id);
        header[CHAIN_ID_LEN..CHAIN_ID_LEN + HEIGHT_LEN].copy_from_slice(&self.height.to_be_bytes());
        header[CHAIN_ID_LEN + HEIGHT_LEN..].copy_from_slice(&self.next_validator_set_hash);
        for (slot, validator) in validators
            .chunks_exact_mut(VALIDATOR_LEN)
            .zip(&self.validators)
        {
            let (pub_key, slot) = slot.split_at_mut(PUBKEY_LEN);
            let (power, slot) = slot.split_at_mut(VOTING_POWER_LEN);
            let (relayer, bls) = slot.split_at_mut(RELAYER_ADDRESS_LEN);
            pub_key.copy_from_slice(&validator.pub_key);
            power.copy_from_slice(&validator.voting_power.to_be_bytes());
            copy_front(relayer, &validator.relayer_address);
            copy_front(bls, &validator.bls_key);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::hex;

    fn vectors() -> serde_json::Value {
        serde_json::from_str(include_str!(
            "../testdata/cometbft-lightclient-vectors.json"
        ))
        .unwrap()
    }

    fn hex_of(value: &serde_json::Value) -> Vec<u8> {
        hex::decode(value.as_str().unwrap()).unwrap()
    }

    /// bsc `TestEncodeConsensusState` / `TestDecodeConsensusState`: the client's encodings
    /// decode to the listed fields and encode back byte for byte.
    #[test]
    fn consensus_states_round_trip_as_in_the_client() {
        for case in vectors()["consensus_states"].as_array().unwrap() {
            let bytes = hex_of(&case["consensus_state"]);
            let state = ConsensusState::decode(&bytes).unwrap();
            assert_eq!(
                state.chain_id,
                case["chain_id"].as_str().unwrap().as_bytes()
            );
            assert_eq!(state.height, case["height"].as_u64().unwrap());
            assert_eq!(
                state.next_validator_set_hash.to_vec(),
                hex_of(&case["next_validator_set_hash"])
            );
            let listed = case["validators"].as_array().unwrap();
            assert_eq!(state.validators.len(), listed.len());
            for (validator, listed) in state.validators.iter().zip(listed) {
                assert_eq!(validator.pub_key.to_vec(), hex_of(&listed["pubkey"]));
                assert_eq!(
                    validator.voting_power,
                    listed["voting_power"].as_i64().unwrap()
                );
                assert_eq!(
                    validator.relayer_address,
                    hex_of(&listed["relayer_address"])
                );
                assert_eq!(validator.bls_key, hex_of(&listed["relayer_bls_key"]));
            }
            assert_eq!(state.encode().unwrap(), bytes);
        }
    }

    /// No validator, a partial validator, and 100 validators are refused.
    #[test]
    fn malformed_lengths_are_refused() {
        let case = &vectors()["consensus_states"][0];
        let bytes = hex_of(&case["consensus_state"]);
        assert_eq!(bytes.len(), HEADER_LEN + VALIDATOR_LEN);
        assert!(ConsensusState::decode(&bytes[..HEADER_LEN]).is_err());
        assert!(ConsensusState::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut hundred = bytes[..HEADER_LEN].to_vec();
        for _ in 0..100 {
            hundred.extend_from_slice(&bytes[HEADER_LEN..]);
        }
        assert!(ConsensusState::decode(&hundred).is_err());
        assert!(ConsensusState::decode(&hundred[..hundred.len() - VALIDATOR_LEN]).is_ok());
    }
}
