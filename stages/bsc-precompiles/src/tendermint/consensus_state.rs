//! The light client's consensus state, after bnb-chain/bsc `core/vm/lightclient/v1/types.go`
//! `DecodeConsensusState` and `EncodeConsensusState`:
//! `chain ID (32, zero bytes trimmed from both ends) | height (8) | app hash (32) |
//! current validator set hash (32) | [Ed25519 public key (32) | voting power (8)]...`,
//! at least one validator when decoded, at most 99 when encoded.

use super::super::fields::{be_u64, copy_front, trim_zeros};
use super::header::{PubKey, Validator};
use super::Error;

const CHAIN_ID_LEN: usize = 32;
const HASH_LEN: usize = 32;
const FIXED_LEN: usize = CHAIN_ID_LEN + 8 + HASH_LEN + HASH_LEN;
const VALIDATOR_LEN: usize = 32 + 8;
/// `maxConsensusStateLength`: `32 * (128 - 1)`.
const MAX_ENCODED_LEN: usize = 32 * (128 - 1);

/// `ConsensusState`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ConsensusState {
    pub(super) chain_id: Vec<u8>,
    pub(super) height: u64,
    pub(super) app_hash: Vec<u8>,
    pub(super) validators_hash: Vec<u8>,
    pub(super) next_validators: Vec<Validator>,
}

impl ConsensusState {
    /// `DecodeConsensusState`.
    pub(super) fn decode(input: &[u8]) -> Result<Self, Error> {
        if input.len() <= FIXED_LEN || !(input.len() - FIXED_LEN).is_multiple_of(VALIDATOR_LEN) {
            return Err("consensus state: expected 104 + 40 * N bytes, N at least 1");
        }
        let (chain_id, rest) = input.split_at(CHAIN_ID_LEN);
        let (height, rest) = rest.split_at(8);
        let (app_hash, rest) = rest.split_at(HASH_LEN);
        let (validators_hash, rest) = rest.split_at(HASH_LEN);
        let next_validators = rest
            .chunks_exact(VALIDATOR_LEN)
            .map(|chunk| {
                let mut key = [0u8; 32];
                key.copy_from_slice(&chunk[..32]);
                Validator {
                    pub_key: Some(PubKey::Ed25519(key)),
                    voting_power: be_u64(&chunk[32..]) as i64,
                }
            })
            .collect();
        Ok(ConsensusState {
            chain_id: trim_zeros(chain_id).to_vec(),
            height: be_u64(height),
            app_hash: app_hash.to_vec(),
            validators_hash: validators_hash.to_vec(),
            next_validators,
        })
    }

    /// `EncodeConsensusState`: hashes are cut or zero-padded to 32 bytes; only Ed25519 keys.
    pub(super) fn encode(&self) -> Result<Vec<u8>, Error> {
        let len = FIXED_LEN + self.next_validators.len() * VALIDATOR_LEN;
        if len > MAX_ENCODED_LEN {
            return Err("consensus state: too many validators");
        }
        if self.chain_id.len() > CHAIN_ID_LEN {
            return Err("consensus state: chain ID longer than 32 bytes");
        }
        let mut out = vec![0u8; len];
        let (chain_id, rest) = out.split_at_mut(CHAIN_ID_LEN);
        copy_front(chain_id, &self.chain_id);
        let (height, rest) = rest.split_at_mut(8);
        height.copy_from_slice(&self.height.to_be_bytes());
        let (app_hash, rest) = rest.split_at_mut(HASH_LEN);
        copy_front(app_hash, &self.app_hash);
        let (validators_hash, rest) = rest.split_at_mut(HASH_LEN);
        copy_front(validators_hash, &self.validators_hash);
        for (validator, slot) in self
            .next_validators
            .iter()
            .zip(rest.chunks_exact_mut(VALIDATOR_LEN))
        {
            let Some(PubKey::Ed25519(key)) = &validator.pub_key else {
                return Err("consensus state: invalid pubkey type");
            };
            slot[..32].copy_from_slice(key);
            slot[32..].copy_from_slice(&(validator.voting_power as u64).to_be_bytes());
        }
        Ok(out)
    }
}
