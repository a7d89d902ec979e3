//! Header rules checked against the parent before a block is executed: the ones execution
//! depends on (number, time, gas limit, base fee, blob gas). Proof-of-work seals, difficulty and
//! the consensus engine's own fields are outside an executor's reach and are not checked.

use crate::chain::ChainSpec;
use alloy_consensus::Header;
use alloy_eips::eip1559::{BaseFeeParams, INITIAL_BASE_FEE};
use alloy_eips::eip4844::DATA_GAS_PER_BLOB;
use alloy_eips::eip7840::BlobParams;
use alloy_hardforks::EthereumHardforks;
use alloy_primitives::U256;

/// go-ethereum's `params.GasLimitBoundDivisor`.
const GAS_LIMIT_BOUND_DIVISOR: u64 = 1024;
/// go-ethereum's `params.MinGasLimit`.
const MIN_GAS_LIMIT: u64 = 5000;
/// Ethereum's `params.MaximumExtraDataSize`.
const MAX_EXTRA_DATA: usize = 32;

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
    check_gas_limit(spec, header, parent)?;
    check_base_fee(spec, header, parent)?;
    check_blob_fields(spec, header, parent)
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
        parent.gas_limit * BaseFeeParams::ethereum().elasticity_multiplier as u64
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
