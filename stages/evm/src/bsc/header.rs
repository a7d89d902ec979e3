//! The header rules of a BSC block that execution depends on, from bnb-chain/bsc
//! `consensus/parlia/parlia.go` (`verifyHeader`, `verifyCascadingFields`),
//! `consensus/misc/eip1559/eip1559.go` and `consensus/misc/eip4844/eip4844.go`.
//!
//! Not checked here (consensus, not execution): the seal and signer, the validator set and
//! turn length in `extraData`, vote attestations, difficulty, the block period and the
//! milliseconds in `mixHash`.

use super::forks::BscForks;
use crate::validate::{check_blob_gas_used, violation, HeaderViolation};
use alloy_consensus::constants::{EMPTY_OMMER_ROOT_HASH, EMPTY_WITHDRAWALS};
use alloy_consensus::Header;
use alloy_eips::eip7840::BlobParams;
use alloy_primitives::B256;

/// Parlia's gas limit bound divisor before Lorentz (`gasLimitBoundDivisorBeforeLorentz`).
const GAS_LIMIT_BOUND_DIVISOR_BEFORE_LORENTZ: u64 = 256;
/// `params.GasLimitBoundDivisor`, from Lorentz.
const GAS_LIMIT_BOUND_DIVISOR: u64 = 1024;
/// `params.MinGasLimit`.
const MIN_GAS_LIMIT: u64 = 5000;
/// The largest gas limit (`2^63 - 1`).
const MAX_GAS_LIMIT: u64 = i64::MAX as u64;
/// BEP-657: from Mendel, blobs only in blocks whose number is a multiple of this
/// (`params.BlobEligibleBlockInterval`).
pub const BLOB_ELIGIBLE_INTERVAL: u64 = 5;

/// Blob parameters of BSC: Cancun's, whatever the fork.
pub fn blob_params() -> BlobParams {
    BlobParams::cancun()
}

/// Check `header` against its `parent` under the BSC schedule `forks`.
pub fn check_header(
    forks: &BscForks,
    header: &Header,
    parent: &Header,
) -> Result<(), HeaderViolation> {
    let (number, time) = (header.number, header.timestamp);
    if number != parent.number + 1 {
        return Err(violation("number", number, parent.number + 1));
    }
    if time < parent.timestamp {
        return Err(violation(
            "timestamp",
            time,
            format!(">= {}", parent.timestamp),
        ));
    }
    if header.ommers_hash != EMPTY_OMMER_ROOT_HASH {
        return Err(violation(
            "sha3Uncles",
            header.ommers_hash,
            EMPTY_OMMER_ROOT_HASH,
        ));
    }
    check_gas(forks, header, parent)?;
    let london = forks.block_active("LondonBlock", number);
    match header.base_fee_per_gas {
        None if !london => {}
        Some(0) if london => {}
        got => {
            let expected = if london { "0" } else { "absent before London" };
            return Err(violation("baseFeePerGas", format!("{got:?}"), expected));
        }
    }
    let cancun = forks.time_active("CancunTime", number, time);
    if cancun {
        if header.withdrawals_root != Some(EMPTY_WITHDRAWALS) {
            return Err(violation(
                "withdrawalsRoot",
                format!("{:?}", header.withdrawals_root),
                EMPTY_WITHDRAWALS,
            ));
        }
        check_blob_gas(forks, header, parent)?;
    } else if header.withdrawals_root.is_some()
        || header.blob_gas_used.is_some()
        || header.excess_blob_gas.is_some()
    {
        return Err(violation(
            "withdrawalsRoot/blobGasUsed/excessBlobGas",
            "present",
            "absent before Cancun",
        ));
    }
    let bohr = forks.time_active("BohrTime", number, time);
    match header.parent_beacon_block_root {
        None if !bohr => {}
        Some(root) if bohr && root == B256::ZERO => {}
        got => {
            let expected = if bohr {
                "the zero hash"
            } else {
                "absent before Bohr"
            };
            return Err(violation(
                "parentBeaconBlockRoot",
                format!("{got:?}"),
                expected,
            ));
        }
    }
    let prague = forks.time_active("PragueTime", number, time);
    if prague != header.requests_hash.is_some() {
        let expected = if prague {
            "present from Prague"
        } else {
            "absent before Prague"
        };
        return Err(violation(
            "requestsHash",
            format!("{:?}", header.requests_hash),
            expected,
        ));
    }
    Ok(())
}

fn check_gas(forks: &BscForks, header: &Header, parent: &Header) -> Result<(), HeaderViolation> {
    if header.gas_limit > MAX_GAS_LIMIT {
        return Err(violation(
            "gasLimit",
            header.gas_limit,
            format!("<= {MAX_GAS_LIMIT}"),
        ));
    }
    if header.gas_used > header.gas_limit {
        return Err(violation(
            "gasUsed",
            header.gas_used,
            format!("<= gasLimit {}", header.gas_limit),
        ));
    }
    let divisor = if forks.time_active("LorentzTime", header.number, header.timestamp) {
        GAS_LIMIT_BOUND_DIVISOR
    } else {
        GAS_LIMIT_BOUND_DIVISOR_BEFORE_LORENTZ
    };
    let bound = parent.gas_limit / divisor;
    if header.gas_limit.abs_diff(parent.gas_limit) >= bound || header.gas_limit < MIN_GAS_LIMIT {
        return Err(violation(
            "gasLimit",
            header.gas_limit,
            format!(
                "within {} ± {} and >= {MIN_GAS_LIMIT}",
                parent.gas_limit,
                bound.saturating_sub(1)
            ),
        ));
    }
    Ok(())
}

/// May block `number` at `time` carry blobs (BEP-657)?
pub fn blob_eligible(forks: &BscForks, number: u64, time: u64) -> bool {
    !mendel(forks, time) || number.is_multiple_of(BLOB_ELIGIBLE_INTERVAL)
}

/// `IsMendel(LondonBlock, time)`, as `eip4844.go` asks it.
fn mendel(forks: &BscForks, time: u64) -> bool {
    forks
        .activation("LondonBlock")
        .is_some_and(|london| forks.time_active("MendelTime", london, time))
}

fn check_blob_gas(
    forks: &BscForks,
    header: &Header,
    parent: &Header,
) -> Result<(), HeaderViolation> {
    let (Some(used), Some(excess)) = (header.blob_gas_used, header.excess_blob_gas) else {
        return Err(violation(
            "blobGasUsed/excessBlobGas",
            "absent",
            "present from Cancun",
        ));
    };
    if used != 0 && !blob_eligible(forks, header.number, header.timestamp) {
        return Err(violation(
            "blobGasUsed",
            used,
            format!("0 (after Mendel blobs only in blocks numbered a multiple of {BLOB_ELIGIBLE_INTERVAL})"),
        ));
    }
    check_blob_gas_used(used, &blob_params())?;
    let expected = next_excess_blob_gas(forks, parent, header.timestamp);
    if excess != expected {
        return Err(violation("excessBlobGas", excess, expected));
    }
    Ok(())
}

/// `CalcExcessBlobGas` for BSC: from Mendel, a parent whose number is not a multiple of 5
/// passes its excess on unchanged; otherwise EIP-4844's formula with Cancun's target (BSC
/// never uses EIP-7918's reserve price).
fn next_excess_blob_gas(forks: &BscForks, parent: &Header, time: u64) -> u64 {
    if mendel(forks, time) && !parent.number.is_multiple_of(BLOB_ELIGIBLE_INTERVAL) {
        return parent.excess_blob_gas.unwrap_or(0);
    }
    let total = parent.excess_blob_gas.unwrap_or(0) + parent.blob_gas_used.unwrap_or(0);
    total.saturating_sub(blob_params().target_blob_gas_per_block())
}
