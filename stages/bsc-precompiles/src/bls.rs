//! 0x66 BLS signature verification (Luban on), after bnb-chain/bsc `core/vm/contracts.go`
//! `blsSignatureVerify`, which uses prysm's blst-backed BLS (min-pk, proof-of-possession
//! ciphersuite).
//!
//! Input: `msg hash (32) || signature (96, compressed G2) || pubkey (48, compressed G1) * n`,
//! n >= 1. Output `0x01` if the signature verifies (with one key: plain verify; with several:
//! fast aggregate verify), empty output if it does not. A malformed length, signature or public
//! key reverts.

use super::outcome::{charge_and_run, Failure};
use alloy_primitives::Bytes;
use blst::{
    min_pk::{PublicKey, Signature},
    BLST_ERROR,
};
use revm::precompile::PrecompileResult;

const MSG_HASH_LEN: usize = 32;
const SIGNATURE_LEN: usize = 96;
const PUBKEY_LEN: usize = 48;
/// `params.BlsSignatureVerifyBaseGas`.
const BASE_GAS: u64 = 1000;
/// `params.BlsSignatureVerifyPerKeyGas`.
const PER_KEY_GAS: u64 = 3500;
/// The domain separation tag prysm signs and verifies with.
const DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// Runs 0x66: verifies a BLS signature over a 32-byte message by one or more public keys.
pub fn bls_signature_verify(input: &[u8], gas_limit: u64, reservoir: u64) -> PrecompileResult {
    let keys = key_count(input);
    let gas = BASE_GAS + keys.map_or(0, |n| n as u64 * PER_KEY_GAS);
    charge_and_run(gas, gas_limit, reservoir, || {
        keys.ok_or(Failure::Revert)?;
        verify(input).map(|valid| {
            if valid {
                Bytes::from_static(&[1])
            } else {
                Bytes::new()
            }
        })
    })
}

/// The number of public keys in a well-formed input, `None` if the length is malformed.
fn key_count(input: &[u8]) -> Option<usize> {
    let keys_len = input.len().checked_sub(MSG_HASH_LEN + SIGNATURE_LEN)?;
    (keys_len > 0 && keys_len.is_multiple_of(PUBKEY_LEN)).then_some(keys_len / PUBKEY_LEN)
}

/// Whether the signature verifies; `Err` for an undecodable signature or key.
fn verify(input: &[u8]) -> Result<bool, Failure> {
    let (msg, rest) = input.split_at(MSG_HASH_LEN);
    let (signature, keys) = rest.split_at(SIGNATURE_LEN);
    // prysm `SignatureFromBytes`: compressed point, group-checked, infinity allowed.
    let signature = Signature::uncompress(signature).map_err(|_| Failure::Revert)?;
    signature.validate(false).map_err(|_| Failure::Revert)?;
    // prysm `PublicKeyFromBytes`: compressed point, group-checked, not infinity.
    let keys = keys
        .chunks_exact(PUBKEY_LEN)
        .map(|key| {
            let key = PublicKey::uncompress(key).map_err(|_| Failure::Revert)?;
            key.validate().map_err(|_| Failure::Revert)?;
            Ok(key)
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let result = match keys.as_slice() {
        [key] => signature.verify(false, msg, DST, &[], key, false),
        many => {
            let refs: Vec<&PublicKey> = many.iter().collect();
            signature.fast_aggregate_verify(true, msg, DST, &refs)
        }
    };
    Ok(result == BLST_ERROR::BLST_SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use blst::min_pk::SecretKey;

    fn secret(seed: u8) -> SecretKey {
        SecretKey::key_gen(&[seed; 32], &[]).expect("32 bytes of key material")
    }

    fn input(msg: &[u8; 32], signature: &Signature, keys: &[PublicKey]) -> Vec<u8> {
        let mut input = msg.to_vec();
        input.extend_from_slice(&signature.compress());
        for key in keys {
            input.extend_from_slice(&key.compress());
        }
        input
    }

    /// Several keys signing the same message: fast aggregate verify, 1000 + 3500 per key.
    #[test]
    fn aggregate_signature_of_three_keys() {
        let msg = [7u8; 32];
        let secrets: Vec<SecretKey> = (1..=3).map(secret).collect();
        let keys: Vec<PublicKey> = secrets.iter().map(SecretKey::sk_to_pk).collect();
        let signatures: Vec<Signature> = secrets.iter().map(|s| s.sign(&msg, DST, &[])).collect();
        let refs: Vec<&Signature> = signatures.iter().collect();
        let aggregate = blst::min_pk::AggregateSignature::aggregate(&refs, true)
            .expect("valid signatures")
            .to_signature();

        let out = bls_signature_verify(&input(&msg, &aggregate, &keys), 11_500, 0).unwrap();
        assert!(out.is_success());
        assert_eq!(out.gas_used, 1000 + 3 * 3500);
        assert_eq!(out.bytes.as_ref(), &[1]);

        // The aggregate of three does not verify against two of the keys: empty output, success.
        let out = bls_signature_verify(&input(&msg, &aggregate, &keys[..2]), 8_000, 0).unwrap();
        assert!(out.is_success());
        assert_eq!(out.gas_used, 8_000);
        assert!(out.bytes.is_empty());
    }

    /// A key at infinity is rejected by prysm's key validation: revert.
    #[test]
    fn infinite_public_key_reverts() {
        let msg = [7u8; 32];
        let signature = secret(1).sign(&msg, DST, &[]);
        let mut data = input(&msg, &signature, &[]);
        let mut infinity = [0u8; 48];
        infinity[0] = 0xc0;
        data.extend_from_slice(&infinity);
        let out = bls_signature_verify(&data, 4_500, 0).unwrap();
        assert!(out.is_revert());
        assert_eq!(out.gas_used, 4_500);
    }

    /// An uncompressed (96-byte) signature encoding is not accepted; the length rule then sees a
    /// 176-byte input, so this is caught as a bad signature, not a bad length.
    #[test]
    fn bad_signature_encoding_reverts() {
        let msg = [7u8; 32];
        let key = secret(1).sk_to_pk();
        let mut data = msg.to_vec();
        data.extend_from_slice(&[0u8; 96]);
        data.extend_from_slice(&key.compress());
        let out = bls_signature_verify(&data, 4_500, 0).unwrap();
        assert!(out.is_revert());
    }

    /// Gas for malformed lengths is the base price; too little gas halts out of gas.
    #[test]
    fn gas_rule() {
        assert_eq!(key_count(&[0; 128]), None);
        assert_eq!(key_count(&[0; 176]), Some(1));
        assert_eq!(key_count(&[0; 177]), None);
        assert_eq!(key_count(&[0; 224]), Some(2));
        let out = bls_signature_verify(&[0; 177], 1_000, 0).unwrap();
        assert!(out.is_revert());
        assert_eq!(out.gas_used, 1_000);
        let out = bls_signature_verify(&[0; 224], 7_999, 0).unwrap();
        assert!(out.halt_reason().is_some_and(|h| h.is_oog()));
    }
}
