//! 0x69 secp256k1 signature recover (Feynman on), after bnb-chain/bsc
//! `core/vm/contracts_lightclient.go` `secp256k1SignatureRecover`, which checks the signature
//! with Tendermint's `PubKeySecp256k1.VerifyBytesWithMsgHash` (bnb-chain/tendermint
//! `crypto/secp256k1`).
//!
//! Input: `compressed pubkey (33) || signature r || s (64) || message hash (32)`. Output: the
//! Tendermint address of the key, `RIPEMD160(SHA256(pubkey))` (20 bytes), if the lower-S
//! signature verifies. Every failure is a plain error in the client: a halt.

use super::outcome::{charge_and_run, Failure};
use alloy_primitives::Bytes;
use revm::precompile::PrecompileResult;
use ripemd::Ripemd160;
use secp256k1::{ecdsa::Signature, Message, PublicKey};
use sha2::{Digest, Sha256};

const PUBKEY_LEN: usize = 33;
const SIGNATURE_LEN: usize = 64;
const MSG_HASH_LEN: usize = 32;
/// `params.EcrecoverGas`.
const GAS: u64 = 3000;

/// Runs 0x69: verifies a secp256k1 signature and returns the signer's Tendermint address.
pub fn secp256k1_signature_recover(
    input: &[u8],
    gas_limit: u64,
    reservoir: u64,
) -> PrecompileResult {
    charge_and_run(GAS, gas_limit, reservoir, || {
        if input.len() != PUBKEY_LEN + SIGNATURE_LEN + MSG_HASH_LEN {
            return Err(Failure::Halt("invalid input"));
        }
        let (pubkey, rest) = input.split_at(PUBKEY_LEN);
        let (signature, msg_hash) = rest.split_at(SIGNATURE_LEN);
        if !verifies(pubkey, signature, msg_hash) {
            return Err(Failure::Halt("invalid signature"));
        }
        let address = Ripemd160::digest(Sha256::digest(pubkey));
        Ok(Bytes::copy_from_slice(&address))
    })
}

/// libsecp256k1's verify, like Tendermint's, rejects signatures whose S is in the upper half.
pub(super) fn verifies(pubkey: &[u8], signature: &[u8], msg_hash: &[u8]) -> bool {
    let Ok(key) = PublicKey::from_slice(pubkey) else {
        return false;
    };
    let Ok(signature) = Signature::from_compact(signature) else {
        return false;
    };
    let Ok(digest) = <[u8; MSG_HASH_LEN]>::try_from(msg_hash) else {
        return false;
    };
    signature.verify(Message::from_digest(digest), &key).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::hex;

    /// The first vector of bsc `TestSecp256k1SignatureRecover` (also in the shared fixtures).
    const VECTOR: &str = "0278caa4d6321aa856d6341dd3e8bcdfe0b55901548871c63c3f5cec43c2ae88a90cb78be0d8eaeab991907b06c61240c04f4ca83f54b7799ce77cf029b837988038c4b3b7f5df231695b0d14499b716e1fd6504860eb3c9244ecb4e569d44c062b6ac827edff4bbbf23579720782dbef40b65780af292cc66849e7e5944f1230f";

    /// The same signature with S replaced by n - S verifies under plain ECDSA but is rejected.
    #[test]
    fn upper_half_s_halts() {
        let mut input = hex::decode(VECTOR).unwrap();
        let s = &mut input[PUBKEY_LEN + 32..PUBKEY_LEN + 64];
        let n = hex::decode("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
            .unwrap();
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let v = n[i] as i16 - s[i] as i16 - borrow;
            s[i] = v.rem_euclid(256) as u8;
            borrow = i16::from(v < 0);
        }
        let out = secp256k1_signature_recover(&input, 3000, 0).unwrap();
        assert_eq!(
            out.halt_reason().map(ToString::to_string).as_deref(),
            Some("invalid signature")
        );
    }

    /// A wrong length, a bad key and a wrong message hash halt; too little gas is out of gas.
    #[test]
    fn failures_halt() {
        let input = hex::decode(VECTOR).unwrap();
        let short = secp256k1_signature_recover(&input[1..], 3000, 0).unwrap();
        assert_eq!(
            short.halt_reason().map(ToString::to_string).as_deref(),
            Some("invalid input")
        );

        let mut bad_key = input.clone();
        bad_key[0] = 0x04;
        let out = secp256k1_signature_recover(&bad_key, 3000, 0).unwrap();
        assert!(out.is_halt() && !out.halt_reason().unwrap().is_oog());

        let mut other_msg = input.clone();
        let last = other_msg.len() - 1;
        other_msg[last] ^= 1;
        let out = secp256k1_signature_recover(&other_msg, 3000, 0).unwrap();
        assert!(out.is_halt() && !out.halt_reason().unwrap().is_oog());

        let out = secp256k1_signature_recover(&input, 2999, 0).unwrap();
        assert!(out.halt_reason().is_some_and(|h| h.is_oog()));
    }
}
