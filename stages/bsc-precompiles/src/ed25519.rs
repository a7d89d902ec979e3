//! Ed25519 signature checks as Go's `crypto/ed25519` `Verify` makes them (Tendermint v0.31's
//! `PubKeyEd25519.VerifyBytes` and CometBFT's `PubKey.VerifySignature` both use it, after
//! checking the signature is 64 bytes): RFC 8032's cofactorless check with a canonical S,
//! non-canonical public key encodings accepted and R compared byte for byte.
//! `ed25519-dalek`'s `verify` (not `verify_strict`, not the ZIP-215 rules of
//! `ed25519-consensus`) is the same check.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};

/// Whether `signature` (64 bytes) is `pub_key`'s signature of `message`.
pub(super) fn ed25519_verifies(pub_key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    let Ok(signature) = <[u8; 64]>::try_from(signature) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(pub_key) else {
        return false;
    };
    key.verify(message, &Signature::from_bytes(&signature))
        .is_ok()
}
