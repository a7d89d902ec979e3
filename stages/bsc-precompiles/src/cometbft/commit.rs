//! Commit verification of greenfield-cometbft v1.3.2 `types/validator_set.go`:
//! `VerifyCommitLight` (more than 2/3 of the block's own validators, matched to signatures by
//! position) and `VerifyCommitLightTrusting` (more than the trust level, 1/3 for BSC's
//! `light.DefaultTrustLevel`, of the trusted validators, matched by address).
//!
//! Both stop at the first vote that tips the tally, so signatures after it are not checked,
//! and both fail on the first bad signature before that. Signatures are checked with
//! `ed25519.PubKey.VerifySignature` (`crypto/ed25519`): 64 bytes, then Go's `crypto/ed25519`
//! `Verify`, which is RFC 8032's cofactorless check with a canonical S, non-canonical public key
//! encodings accepted and R compared byte for byte. `ed25519-dalek`'s `verify` (not
//! `verify_strict`, not the ZIP-215 rules of `ed25519-consensus`) is the same check.

use super::super::ed25519::ed25519_verifies;
use super::{
    hashing::vote_sign_bytes,
    light_block::{Commit, FLAG_COMMIT, MAX_TOTAL_VOTING_POWER},
    Error, Validator,
};

/// `VerifyCommitLight`: `validators` (the block's own set, whose total voting power decoding
/// bounded) signed the commit with more than 2/3 of their power, signature `i` being
/// validator `i`'s. The commit's height and block ID are the header's: checked by
/// `LightBlock::validate_basic`.
pub(super) fn verify_commit_light(
    validators: &[Validator],
    chain_id: &[u8],
    commit: &Commit,
) -> Result<(), Error> {
    if validators.len() != commit.signatures.len() {
        return Err("commit: signature count differs from the validator count");
    }
    let total: i64 = validators.iter().map(|v| v.voting_power).sum();
    let needed = total * 2 / 3;
    let mut tallied: i64 = 0;
    for (validator, sig) in validators.iter().zip(&commit.signatures) {
        if sig.flag != FLAG_COMMIT {
            continue;
        }
        let message = vote_sign_bytes(chain_id, commit, sig);
        if !ed25519_verifies(&validator.pub_key, &message, &sig.signature) {
            return Err("commit: wrong signature");
        }
        tallied += validator.voting_power;
        if tallied > needed {
            return Ok(());
        }
    }
    Err("commit: not enough voting power signed")
}

/// `ValidatorSet.TotalVotingPower` of a consensus state's set, whose powers may be anything:
/// sums clip at the `i64` range, and a running sum above `MaxTotalVotingPower` makes the client
/// panic, an error like any other.
fn trusted_total_voting_power(validators: &[Validator]) -> Result<i64, Error> {
    let mut total: i64 = 0;
    for validator in validators {
        total = total.saturating_add(validator.voting_power);
        if total > MAX_TOTAL_VOTING_POWER {
            return Err("consensus state: total voting power too large");
        }
    }
    Ok(total)
}

/// `VerifyCommitLightTrusting` at trust level 1/3: the trusted `validators` that signed the
/// commit, found by address (the first with that address), hold more than a third of their
/// total power. A validator voting twice is an error. The tally adds as Go's `int64` does,
/// wrapping.
pub(super) fn verify_commit_light_trusting(
    validators: &[Validator],
    chain_id: &[u8],
    commit: &Commit,
) -> Result<(), Error> {
    let needed = trusted_total_voting_power(validators)? / 3;
    let addresses: Vec<[u8; 20]> = validators.iter().map(Validator::address).collect();
    let mut seen = vec![false; validators.len()];
    let mut tallied: i64 = 0;
    for sig in commit.signatures.iter().filter(|s| s.flag == FLAG_COMMIT) {
        let Some(index) = addresses
            .iter()
            .position(|a| a[..] == sig.validator_address[..])
        else {
            continue;
        };
        if std::mem::replace(&mut seen[index], true) {
            return Err("commit: double vote from a trusted validator");
        }
        let validator = &validators[index];
        let message = vote_sign_bytes(chain_id, commit, sig);
        if !ed25519_verifies(&validator.pub_key, &message, &sig.signature) {
            return Err("commit: wrong signature");
        }
        tallied = tallied.wrapping_add(validator.voting_power);
        if tallied > needed {
            return Ok(());
        }
    }
    Err("commit: not enough trusted voting power signed")
}
