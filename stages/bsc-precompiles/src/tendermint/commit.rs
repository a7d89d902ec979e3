//! Commit verification of bnb-chain/tendermint v0.31.17 `types/validator_set.go` and
//! `types/block.go`:
//! - `Commit.ValidateBasic`: a block ID, at least one precommit, every precommit a precommit
//!   of the commit's height and round (those of its first precommit);
//! - `ValidatorSet.VerifyCommit`: one precommit slot per validator, matched by position; every
//!   precommit there is must be signed by its validator, and those for the block must carry
//!   more than 2/3 of the set's voting power;
//! - `ValidatorSet.VerifyFutureCommit`: the commit verifies for the new set, and the trusted
//!   set's validators, found by address, signed it with more than 2/3 of the trusted power.
//!
//! Every signature is checked (no early stop). Voting power sums as Go's `int64` does
//! (wrapping), the set's total clips at the `int64` bounds and may not pass
//! `MaxTotalVotingPower` (the client panics, an error here).

use super::super::ed25519::ed25519_verifies;
use super::super::go_sort::search;
use super::super::tm_secp256k1::verifies as secp256k1_verifies;
use super::hashing::{vote_sign_bytes, PRECOMMIT};
use super::header::{BlockId, Commit, PubKey, Validator, Vote};
use super::Error;
use sha2::{Digest, Sha256};

/// `MaxTotalVotingPower`: `MaxInt64 / 8`.
const MAX_TOTAL_VOTING_POWER: i64 = i64::MAX / 8;

/// `Commit.ValidateBasic`.
pub(super) fn validate_basic(commit: &Commit) -> Result<(), Error> {
    if commit.block_id.is_zero() {
        return Err("commit cannot be for nil block");
    }
    if commit.precommits.is_empty() {
        return Err("no precommits in commit");
    }
    let (height, round) = commit.height_round();
    for vote in commit.precommits.iter().flatten() {
        if vote.kind != PRECOMMIT {
            return Err("invalid commit vote: not a precommit");
        }
        if vote.height != height {
            return Err("invalid commit precommit height");
        }
        if vote.round != round {
            return Err("invalid commit precommit round");
        }
    }
    Ok(())
}

/// `ValidatorSet.TotalVotingPower`.
fn total_voting_power(validators: &[Validator]) -> Result<i64, Error> {
    let mut sum = 0i64;
    for validator in validators {
        sum = sum.saturating_add(validator.voting_power);
        if sum > MAX_TOTAL_VOTING_POWER {
            return Err("total voting power exceeds MaxTotalVotingPower");
        }
    }
    Ok(sum)
}

/// `TotalVotingPower() * 2 / 3` in Go's `int64` arithmetic.
fn two_thirds(validators: &[Validator]) -> Result<i64, Error> {
    Ok(total_voting_power(validators)?.wrapping_mul(2) / 3)
}

/// `PubKey.VerifyBytes` of `vote` in a commit at `(height, round)` (`Commit.height_round`,
/// worked out once per commit as the client caches it); a nil key is the client's nil
/// dereference.
fn signed_by(
    validator: &Validator,
    chain_id: &[u8],
    (height, round): (i64, i64),
    vote: &Vote,
) -> Result<bool, Error> {
    let message = vote_sign_bytes(chain_id, height, round, &vote.block_id, vote.timestamp);
    match &validator.pub_key {
        Some(PubKey::Ed25519(key)) => Ok(ed25519_verifies(key, &message, &vote.signature)),
        Some(PubKey::Secp256k1(key)) => Ok(secp256k1_verifies(
            key,
            &vote.signature,
            &Sha256::digest(&message),
        )),
        None => Err("validator has no public key"),
    }
}

/// `ValidatorSet.VerifyCommit` of `commit` for a block `block_id` at `height`.
pub(super) fn verify_commit(
    validators: &[Validator],
    chain_id: &[u8],
    block_id: &BlockId,
    height: i64,
    commit: &Commit,
) -> Result<(), Error> {
    validate_basic(commit)?;
    if validators.len() != commit.precommits.len() {
        return Err("invalid commit: wrong set size");
    }
    let commit_at = commit.height_round();
    if height != commit_at.0 {
        return Err("invalid commit: wrong height");
    }
    if *block_id != commit.block_id {
        return Err("invalid commit: wrong block id");
    }
    let mut tallied = 0i64;
    for (validator, vote) in validators.iter().zip(&commit.precommits) {
        let Some(vote) = vote else {
            continue;
        };
        if !signed_by(validator, chain_id, commit_at, vote)? {
            return Err("invalid commit: invalid signature");
        }
        if *block_id == vote.block_id {
            tallied = tallied.wrapping_add(validator.voting_power);
        }
    }
    if tallied > two_thirds(validators)? {
        Ok(())
    } else {
        Err("invalid commit: insufficient voting power")
    }
}

/// `ValidatorSet.VerifyFutureCommit`: `commit` verifies for `new_set`, and `trusted`'s
/// validators signed it with more than 2/3 of their power.
pub(super) fn verify_future_commit(
    trusted: &[Validator],
    new_set: &[Validator],
    chain_id: &[u8],
    block_id: &BlockId,
    height: i64,
    commit: &Commit,
) -> Result<(), Error> {
    verify_commit(new_set, chain_id, block_id, height, commit)?;
    let addresses: Vec<Option<[u8; 20]>> = trusted.iter().map(address).collect();
    let commit_at = commit.height_round();
    let round = commit_at.1;
    let mut seen = vec![false; trusted.len()];
    let mut tallied = 0i64;
    for vote in commit.precommits.iter().flatten() {
        if vote.height != height {
            return Err("blocks don't match");
        }
        if vote.round != round {
            return Err("invalid commit: wrong round");
        }
        if vote.kind != PRECOMMIT {
            return Err("invalid commit: not precommit");
        }
        // `GetByAddress`: a binary search over the trusted set, in its given order.
        let index = search(trusted.len(), |i| {
            addresses[i].is_some_and(|a| vote.validator_address.as_slice() <= a.as_slice())
        });
        let found = index < trusted.len()
            && addresses[index].is_some_and(|a| a.as_slice() == vote.validator_address);
        if !found || seen[index] {
            continue;
        }
        seen[index] = true;
        if !signed_by(&trusted[index], chain_id, commit_at, vote)? {
            return Err("invalid commit: invalid signature");
        }
        if *block_id == vote.block_id {
            tallied = tallied.wrapping_add(trusted[index].voting_power);
        }
    }
    if tallied <= two_thirds(trusted)? {
        return Err("invalid commit: insufficient old voting power");
    }
    Ok(())
}

/// A trusted validator's address, `SHA256(pubkey)[..20]` (`NewValidator`); the consensus state
/// holds Ed25519 keys only.
fn address(validator: &Validator) -> Option<[u8; 20]> {
    match &validator.pub_key {
        Some(PubKey::Ed25519(key)) => {
            let hash = Sha256::digest(key);
            let mut out = [0u8; 20];
            out.copy_from_slice(&hash[..20]);
            Some(out)
        }
        _ => None,
    }
}
