//! Header rules checked against the parent before a block is executed, as go-ethereum's
//! `consensus/ethash` and `consensus/beacon` `verifyHeader` state them: number and time order,
//! extra data size, gas limit bounds, gas used within the limit, the base fee (EIP-1559), the
//! difficulty (Ethash before the merge, [`crate::ethash`]; zero after, with a zero nonce and no
//! ommers, EIP-3675), the DAO fork's extra data, the roots each fork adds to the header
//! (withdrawals, parent beacon block, requests) and the blob gas fields (EIP-4844). The same
//! rules apply to an ommer against its own parent ([`crate::ommers`]).
//!
//! Not checked: the proof-of-work seal (nonce and mixHash against the Ethash dataset), which
//! is consensus the syncer is trusted with, and the wall clock (a block from the future),
//! which a follower of an already-agreed chain has no use for.

use crate::chain::ChainSpec;
use alloy_consensus::constants::EMPTY_OMMER_ROOT_HASH;
use alloy_consensus::Header;
use alloy_eips::eip1559::{BaseFeeParams, INITIAL_BASE_FEE};
use alloy_eips::eip4844::DATA_GAS_PER_BLOB;
use alloy_eips::eip7840::BlobParams;
use alloy_hardforks::EthereumHardforks;
use alloy_primitives::{B64, U256};

/// go-ethereum's `params.GasLimitBoundDivisor`.
const GAS_LIMIT_BOUND_DIVISOR: u64 = 1024;
/// go-ethereum's `params.MinGasLimit`.
const MIN_GAS_LIMIT: u64 = 5000;
/// Ethereum's `params.MaximumExtraDataSize`.
const MAX_EXTRA_DATA: usize = 32;
/// The largest gas limit (`2^63 - 1`, go-ethereum's `params.MaxGasLimit`).
const MAX_GAS_LIMIT: u64 = i64::MAX as u64;
/// The DAO fork block and the nine after it must carry this extra data (pro-fork side).
const DAO_FORK_EXTRA_DATA: &[u8] = b"dao-hard-fork";
/// How many blocks from the DAO fork block on carry [`DAO_FORK_EXTRA_DATA`].
const DAO_FORK_EXTRA_RANGE: u64 = 10;

/// A header field that breaks a rule: which field, what it holds, what the rule requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} is {got}, expected {expected}")]
pub struct HeaderViolation {
    /// The header field.
    pub field: &'static str,
    /// What the header holds.
    pub got: String,
    /// What the rule requires.
    pub expected: String,
}

/// A broken rule: `field` is `got` where the rule requires `expected`.
pub(crate) fn violation(
    field: &'static str,
    got: impl ToString,
    expected: impl ToString,
) -> HeaderViolation {
    HeaderViolation {
        field,
        got: got.to_string(),
        expected: expected.to_string(),
    }
}

/// Check `header` against its `parent` under the Ethereum rules of `spec` (BSC's are in
/// `bsc::header`; `execute::check_header` picks by chain).
pub fn check_ethereum_header(
    spec: &ChainSpec,
    header: &Header,
    parent: &Header,
) -> Result<(), HeaderViolation> {
    if header.number != parent.number + 1 {
        return Err(violation("number", header.number, parent.number + 1));
    }
    if header.timestamp <= parent.timestamp {
        return Err(violation(
            "timestamp",
            header.timestamp,
            format!("> {}", parent.timestamp),
        ));
    }
    if header.gas_used > header.gas_limit {
        return Err(violation(
            "gasUsed",
            header.gas_used,
            format!("<= gasLimit {}", header.gas_limit),
        ));
    }
    if header.extra_data.len() > MAX_EXTRA_DATA {
        return Err(violation(
            "extraData length",
            header.extra_data.len(),
            format!("<= {MAX_EXTRA_DATA}"),
        ));
    }
    if header.gas_limit > MAX_GAS_LIMIT {
        return Err(violation(
            "gasLimit",
            header.gas_limit,
            format!("<= {MAX_GAS_LIMIT}"),
        ));
    }
    check_gas_limit(spec, header, parent)?;
    check_base_fee(spec, header, parent)?;
    check_consensus_fields(spec, header, parent)?;
    check_dao_extra_data(spec, header)?;
    check_fork_fields(spec, header)?;
    check_blob_fields(spec, header, parent)
}

/// The roots a fork adds to the header are there exactly from that fork on: withdrawalsRoot
/// (Shanghai), parentBeaconBlockRoot (Cancun), requestsHash (Prague).
fn check_fork_fields(spec: &ChainSpec, header: &Header) -> Result<(), HeaderViolation> {
    let time = header.timestamp;
    let fields = [
        (
            "withdrawalsRoot",
            header.withdrawals_root.is_some(),
            "Shanghai",
            spec.is_shanghai_active_at_timestamp(time),
        ),
        (
            "parentBeaconBlockRoot",
            header.parent_beacon_block_root.is_some(),
            "Cancun",
            spec.is_cancun_active_at_timestamp(time),
        ),
        (
            "requestsHash",
            header.requests_hash.is_some(),
            "Prague",
            spec.is_prague_active_at_timestamp(time),
        ),
    ];
    for (field, present, fork, active) in fields {
        if present != active {
            let got = if present { "present" } else { "absent" };
            let expected = if active {
                format!("present from {fork}")
            } else {
                format!("absent before {fork}")
            };
            return Err(violation(field, got, expected));
        }
    }
    Ok(())
}

/// Before the merge the Ethash difficulty; from the merge (EIP-3675) difficulty 0, nonce 0 and
/// no ommers.
fn check_consensus_fields(
    spec: &ChainSpec,
    header: &Header,
    parent: &Header,
) -> Result<(), HeaderViolation> {
    if !spec.is_paris_active_at_block(header.number) {
        return match crate::ethash::expected_difficulty(spec, header.timestamp, parent) {
            Some(expected) if expected == header.difficulty => Ok(()),
            Some(expected) => Err(violation("difficulty", header.difficulty, expected)),
            None => Err(violation(
                "difficulty",
                header.difficulty,
                "the Ethash difficulty, which exceeds 256 bits here",
            )),
        };
    }
    if !header.difficulty.is_zero() {
        return Err(violation(
            "difficulty",
            header.difficulty,
            "0 after the merge",
        ));
    }
    if header.nonce != B64::ZERO {
        return Err(violation("nonce", header.nonce, "0 after the merge"));
    }
    if header.ommers_hash != EMPTY_OMMER_ROOT_HASH {
        return Err(violation(
            "sha3Uncles",
            header.ommers_hash,
            format!("{EMPTY_OMMER_ROOT_HASH} (no ommers after the merge)"),
        ));
    }
    Ok(())
}

/// On a chain that took the DAO fork, the fork block and the nine after it say so in their
/// extra data.
fn check_dao_extra_data(spec: &ChainSpec, header: &Header) -> Result<(), HeaderViolation> {
    let Some(fork) = spec.dao_fork_block() else {
        return Ok(());
    };
    let in_range = (fork..fork.saturating_add(DAO_FORK_EXTRA_RANGE)).contains(&header.number);
    if in_range && header.extra_data.as_ref() != DAO_FORK_EXTRA_DATA {
        return Err(violation(
            "extraData",
            header.extra_data.clone(),
            format!("{:?} in the ten blocks from the DAO fork", "dao-hard-fork"),
        ));
    }
    Ok(())
}

fn check_gas_limit(
    spec: &ChainSpec,
    header: &Header,
    parent: &Header,
) -> Result<(), HeaderViolation> {
    // At the London block the parent's limit is doubled (EIP-1559 elasticity).
    let parent_limit = if spec
        .ethereum_fork_activation(alloy_hardforks::EthereumHardfork::London)
        .transitions_at_block(header.number)
    {
        parent
            .gas_limit
            .saturating_mul(BaseFeeParams::ethereum().elasticity_multiplier as u64)
    } else {
        parent.gas_limit
    };
    let bound = parent_limit / GAS_LIMIT_BOUND_DIVISOR;
    if header.gas_limit.abs_diff(parent_limit) >= bound || header.gas_limit < MIN_GAS_LIMIT {
        return Err(violation(
            "gasLimit",
            header.gas_limit,
            format!(
                "within {parent_limit} ± {} and >= {MIN_GAS_LIMIT}",
                bound.saturating_sub(1)
            ),
        ));
    }
    Ok(())
}

fn check_base_fee(
    spec: &ChainSpec,
    header: &Header,
    parent: &Header,
) -> Result<(), HeaderViolation> {
    if !spec.is_london_active_at_block(header.number) {
        return match header.base_fee_per_gas {
            None => Ok(()),
            Some(fee) => Err(violation("baseFeePerGas", fee, "absent before London")),
        };
    }
    let expected = if spec.is_london_active_at_block(parent.number) {
        parent
            .next_block_base_fee(BaseFeeParams::ethereum())
            .unwrap_or(INITIAL_BASE_FEE)
    } else {
        INITIAL_BASE_FEE
    };
    match header.base_fee_per_gas {
        Some(fee) if fee == expected => Ok(()),
        got => Err(violation("baseFeePerGas", format!("{got:?}"), expected)),
    }
}

fn check_blob_fields(
    spec: &ChainSpec,
    header: &Header,
    parent: &Header,
) -> Result<(), HeaderViolation> {
    let Some(params) = spec.blob_params_at(header.timestamp) else {
        if header.blob_gas_used.is_some() || header.excess_blob_gas.is_some() {
            return Err(violation(
                "blobGasUsed/excessBlobGas",
                "present",
                "absent before Cancun",
            ));
        }
        return Ok(());
    };
    let (Some(used), Some(excess)) = (header.blob_gas_used, header.excess_blob_gas) else {
        return Err(violation(
            "blobGasUsed/excessBlobGas",
            "absent",
            "present from Cancun",
        ));
    };
    check_blob_gas_used(used, &params)?;
    let expected = next_excess_blob_gas(parent, &params);
    if excess != expected {
        return Err(violation("excessBlobGas", excess, expected));
    }
    Ok(())
}

/// EIP-4844 excess blob gas of the child of `parent`, under the child's blob parameters
/// `params`.
fn next_excess_blob_gas(parent: &Header, params: &BlobParams) -> u64 {
    let (Some(parent_excess), Some(parent_used)) = (parent.excess_blob_gas, parent.blob_gas_used)
    else {
        return 0;
    };
    let total = parent_excess + parent_used;
    let target = params.target_blob_gas_per_block();
    if total < target {
        return 0;
    }
    // EIP-7918 (Osaka on): below the reserve price the excess grows more slowly. As in
    // go-ethereum, the parent's blob price is taken under the child's parameters.
    if params.blob_base_cost > 0 {
        let reserve = U256::from(params.blob_base_cost)
            * U256::from(parent.base_fee_per_gas.unwrap_or_default());
        let blob_price =
            U256::from(DATA_GAS_PER_BLOB) * U256::from(params.calc_blob_fee(parent_excess));
        if reserve > blob_price {
            let scaled = parent_used * (params.max_blob_count - params.target_blob_count)
                / params.max_blob_count;
            return parent_excess + scaled;
        }
    }
    total - target
}

/// blobGasUsed within the block's maximum and a whole number of blobs.
pub(crate) fn check_blob_gas_used(used: u64, params: &BlobParams) -> Result<(), HeaderViolation> {
    if used > params.max_blob_gas_per_block() {
        return Err(violation(
            "blobGasUsed",
            used,
            format!("<= {}", params.max_blob_gas_per_block()),
        ));
    }
    if !used.is_multiple_of(DATA_GAS_PER_BLOB) {
        return Err(violation(
            "blobGasUsed",
            used,
            format!("a multiple of {DATA_GAS_PER_BLOB}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Each rule with a child that breaks it and nothing else. The proof-of-work pair is
    //! ethereum/tests `DifficultyTests/dfByzantium/difficultyByzantium.json` DifficultyTest1
    //! (block 100,000, one second after its parent): every fork from Byzantium to Gray Glacier
    //! gives it that difficulty, as their bomb delays all lie beyond block 100,000.

    use super::*;
    use crate::network::TestNetwork;
    use alloy_primitives::{Bytes, B256};

    const PARENT_DIFFICULTY: u128 = 0x6963001f28ba95c2;
    const CHILD_DIFFICULTY: u128 = 0x69702c7f2c9fad14;
    const PARENT_TIME: u64 = 0x28d214818;
    const GAS_LIMIT: u64 = 30_000_000;
    const BASE_FEE: u64 = 1_000_000_000;

    fn spec(network: &str) -> ChainSpec {
        TestNetwork::parse(network)
            .expect("known network")
            .chain_spec(1, &Default::default())
    }

    /// A valid proof-of-work parent and child; with a base fee when `london`. The parent uses
    /// exactly its gas target, so the base fee stays the same.
    fn pow_pair(london: bool) -> (Header, Header) {
        let base_fee = london.then_some(BASE_FEE);
        let parent = Header {
            number: 99_999,
            timestamp: PARENT_TIME,
            difficulty: U256::from(PARENT_DIFFICULTY),
            gas_limit: GAS_LIMIT,
            gas_used: GAS_LIMIT / 2,
            base_fee_per_gas: base_fee,
            ..Header::default()
        };
        let child = Header {
            number: 100_000,
            timestamp: PARENT_TIME + 1,
            difficulty: U256::from(CHILD_DIFFICULTY),
            gas_limit: GAS_LIMIT,
            base_fee_per_gas: base_fee,
            ..Header::default()
        };
        (parent, child)
    }

    /// A valid proof-of-stake parent and child (Paris), twelve seconds apart.
    fn pos_pair() -> (Header, Header) {
        let (mut parent, mut child) = pow_pair(true);
        parent.difficulty = U256::ZERO;
        child.difficulty = U256::ZERO;
        child.timestamp = parent.timestamp + 12;
        (parent, child)
    }

    /// The field of the one rule `child` breaks, or `None` when it breaks none.
    fn broken(network: &str, child: &Header, parent: &Header) -> Option<&'static str> {
        check_ethereum_header(&spec(network), child, parent)
            .err()
            .map(|violation| violation.field)
    }

    #[test]
    fn the_valid_pairs_pass() {
        let (parent, child) = pow_pair(true);
        assert_eq!(broken("London", &child, &parent), None);
        let (parent, child) = pow_pair(false);
        assert_eq!(broken("Byzantium", &child, &parent), None);
        let (parent, child) = pos_pair();
        assert_eq!(broken("Paris", &child, &parent), None);
    }

    #[test]
    fn the_number_follows_the_parent() {
        let (parent, mut child) = pow_pair(true);
        child.number += 1;
        assert_eq!(broken("London", &child, &parent), Some("number"));
    }

    #[test]
    fn the_timestamp_is_after_the_parent() {
        // Zero seconds adjust the difficulty as one does (EIP-100: 1 - 0/9 = 1 - 1/9).
        let (parent, mut child) = pow_pair(true);
        child.timestamp = parent.timestamp;
        assert_eq!(broken("London", &child, &parent), Some("timestamp"));
    }

    #[test]
    fn gas_used_is_within_the_gas_limit() {
        let (parent, mut child) = pow_pair(true);
        child.gas_used = child.gas_limit + 1;
        assert_eq!(broken("London", &child, &parent), Some("gasUsed"));
        child.gas_used = child.gas_limit;
        assert_eq!(broken("London", &child, &parent), None);
    }

    #[test]
    fn extra_data_is_at_most_32_bytes() {
        let (parent, mut child) = pow_pair(true);
        child.extra_data = Bytes::from(vec![7; 33]);
        assert_eq!(broken("London", &child, &parent), Some("extraData length"));
        child.extra_data = Bytes::from(vec![7; 32]);
        assert_eq!(broken("London", &child, &parent), None);
    }

    #[test]
    fn the_gas_limit_is_at_most_2_63_minus_1() {
        let (mut parent, mut child) = pow_pair(true);
        parent.gas_limit = MAX_GAS_LIMIT;
        parent.gas_used = MAX_GAS_LIMIT / 2;
        child.gas_limit = MAX_GAS_LIMIT;
        assert_eq!(broken("London", &child, &parent), None);
        child.gas_limit = MAX_GAS_LIMIT + 1;
        assert_eq!(broken("London", &child, &parent), Some("gasLimit"));
    }

    #[test]
    fn the_gas_limit_moves_less_than_a_1024th_of_the_parents() {
        let (parent, mut child) = pow_pair(true);
        let bound = GAS_LIMIT / 1024;
        child.gas_limit = GAS_LIMIT + bound - 1;
        assert_eq!(broken("London", &child, &parent), None);
        child.gas_limit = GAS_LIMIT - bound + 1;
        assert_eq!(broken("London", &child, &parent), None);
        child.gas_limit = GAS_LIMIT + bound;
        assert_eq!(broken("London", &child, &parent), Some("gasLimit"));
        child.gas_limit = GAS_LIMIT - bound;
        assert_eq!(broken("London", &child, &parent), Some("gasLimit"));
    }

    #[test]
    fn the_gas_limit_is_at_least_5000() {
        let (mut parent, mut child) = pow_pair(true);
        parent.gas_limit = MIN_GAS_LIMIT;
        parent.gas_used = MIN_GAS_LIMIT / 2;
        child.gas_limit = MIN_GAS_LIMIT;
        assert_eq!(broken("London", &child, &parent), None);
        child.gas_limit = MIN_GAS_LIMIT - 1;
        assert_eq!(broken("London", &child, &parent), Some("gasLimit"));
    }

    #[test]
    fn the_london_block_doubles_the_parents_gas_limit() {
        // London from block 100,000: the parent is a Berlin block without base fee; the first
        // London block's target is the parent's whole limit, so its base fee is the initial.
        let network = "BerlinToLondonAt100000";
        let (parent, mut child) = pow_pair(false);
        child.base_fee_per_gas = Some(INITIAL_BASE_FEE);
        child.gas_limit = 2 * GAS_LIMIT;
        assert_eq!(broken(network, &child, &parent), None);
        child.gas_limit = GAS_LIMIT;
        assert_eq!(broken(network, &child, &parent), Some("gasLimit"));
    }

    #[test]
    fn the_base_fee_follows_eip_1559() {
        let (parent, mut child) = pow_pair(true);
        child.base_fee_per_gas = Some(BASE_FEE + 1);
        assert_eq!(broken("London", &child, &parent), Some("baseFeePerGas"));
        child.base_fee_per_gas = None;
        assert_eq!(broken("London", &child, &parent), Some("baseFeePerGas"));
        let (parent, mut child) = pow_pair(false);
        child.base_fee_per_gas = Some(BASE_FEE);
        assert_eq!(broken("Berlin", &child, &parent), Some("baseFeePerGas"));
    }

    #[test]
    fn proof_of_work_difficulty_is_the_ethash_difficulty() {
        let (parent, mut child) = pow_pair(true);
        child.difficulty += U256::from(1);
        assert_eq!(broken("London", &child, &parent), Some("difficulty"));
    }

    #[test]
    fn after_the_merge_difficulty_is_zero() {
        let (parent, mut child) = pos_pair();
        child.difficulty = U256::from(CHILD_DIFFICULTY);
        assert_eq!(broken("Paris", &child, &parent), Some("difficulty"));
    }

    #[test]
    fn after_the_merge_the_nonce_is_zero() {
        let (parent, mut child) = pos_pair();
        child.nonce = B64::from(1u64);
        assert_eq!(broken("Paris", &child, &parent), Some("nonce"));
    }

    #[test]
    fn after_the_merge_there_are_no_ommers() {
        let (parent, mut child) = pos_pair();
        child.ommers_hash = B256::repeat_byte(1);
        assert_eq!(broken("Paris", &child, &parent), Some("sha3Uncles"));
    }

    #[test]
    fn the_dao_fork_blocks_carry_the_dao_extra_data() {
        // DAO fork at the child's block: the child must say so; at nine blocks before the
        // child it is the last block that must; at ten before, no longer.
        let (parent, mut child) = pow_pair(false);
        assert_eq!(
            broken("ByzantiumToDaoAt100000", &child, &parent),
            Some("extraData")
        );
        assert_eq!(
            broken("ByzantiumToDaoAt99991", &child, &parent),
            Some("extraData")
        );
        assert_eq!(broken("ByzantiumToDaoAt99990", &child, &parent), None);
        child.extra_data = Bytes::from_static(DAO_FORK_EXTRA_DATA);
        assert_eq!(broken("ByzantiumToDaoAt100000", &child, &parent), None);
    }

    #[test]
    fn fork_roots_are_present_exactly_from_their_fork() {
        let (parent, mut child) = pos_pair();
        child.withdrawals_root = Some(B256::ZERO);
        assert_eq!(broken("Paris", &child, &parent), Some("withdrawalsRoot"));
        assert_eq!(broken("Shanghai", &child, &parent), None);
        child.withdrawals_root = None;
        assert_eq!(broken("Shanghai", &child, &parent), Some("withdrawalsRoot"));

        let (parent, mut child) = blob_pair();
        assert_eq!(broken("Cancun", &child, &parent), None);
        child.requests_hash = Some(B256::ZERO);
        assert_eq!(broken("Cancun", &child, &parent), Some("requestsHash"));
        // Prague's target is six blobs, all the parent used: no excess.
        child.excess_blob_gas = Some(0);
        assert_eq!(broken("Prague", &child, &parent), None);
        child.parent_beacon_block_root = None;
        assert_eq!(
            broken("Prague", &child, &parent),
            Some("parentBeaconBlockRoot")
        );
    }

    /// A Cancun parent with six blobs (the most) and no excess, and its valid child: EIP-4844's
    /// excess is parent excess + parent blob gas - target = 6 - 3 blobs.
    fn blob_pair() -> (Header, Header) {
        let (mut parent, mut child) = pos_pair();
        parent.blob_gas_used = Some(6 * DATA_GAS_PER_BLOB);
        parent.excess_blob_gas = Some(0);
        child.blob_gas_used = Some(0);
        child.excess_blob_gas = Some(3 * DATA_GAS_PER_BLOB);
        child.withdrawals_root = Some(B256::ZERO);
        child.parent_beacon_block_root = Some(B256::ZERO);
        (parent, child)
    }

    #[test]
    fn blob_gas_fields_follow_eip_4844() {
        let (parent, child) = blob_pair();
        assert_eq!(broken("Cancun", &child, &parent), None);

        let mut wrong_excess = child.clone();
        wrong_excess.excess_blob_gas = Some(0);
        assert_eq!(
            broken("Cancun", &wrong_excess, &parent),
            Some("excessBlobGas")
        );
        let mut too_many = child.clone();
        too_many.blob_gas_used = Some(7 * DATA_GAS_PER_BLOB);
        assert_eq!(broken("Cancun", &too_many, &parent), Some("blobGasUsed"));
        let mut partial = child.clone();
        partial.blob_gas_used = Some(DATA_GAS_PER_BLOB - 1);
        assert_eq!(broken("Cancun", &partial, &parent), Some("blobGasUsed"));
        let mut absent = child.clone();
        absent.blob_gas_used = None;
        assert_eq!(
            broken("Cancun", &absent, &parent),
            Some("blobGasUsed/excessBlobGas")
        );
        let (parent, mut early) = pos_pair();
        early.withdrawals_root = Some(B256::ZERO);
        early.blob_gas_used = Some(0);
        early.excess_blob_gas = Some(0);
        assert_eq!(
            broken("Shanghai", &early, &parent),
            Some("blobGasUsed/excessBlobGas")
        );
    }
}
