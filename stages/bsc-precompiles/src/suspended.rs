//! 0x64 Tendermint header validation and 0x65 IAVL Merkle proof validation as the Nano fork left
//! them: suspended. After bnb-chain/bsc `core/vm/contracts_lightclient.go`
//! `tmHeaderValidateNano` and `iavlMerkleProofValidateNano`: 3000 gas, then the error
//! "suspend" for any input, which the client's EVM treats as a failure consuming all gas.
//!
//! The working forms of both precompiles (before Nano, and from Moran on with the Moran, Planck
//! and Plato proof rules for 0x65) are `super::tendermint` and `super::iavl`.

use super::outcome::{charge_and_run, Failure};
use revm::precompile::PrecompileResult;

/// `params.TendermintHeaderValidateGas` and `params.IAVLMerkleProofValidateGas`.
const GAS: u64 = 3000;

/// Runs 0x64 under Nano: always fails with "suspend".
pub fn tm_header_validate_nano(_input: &[u8], gas_limit: u64, reservoir: u64) -> PrecompileResult {
    charge_and_run(GAS, gas_limit, reservoir, || Err(Failure::Halt("suspend")))
}

/// Runs 0x65 under Nano: always fails with "suspend".
pub fn iavl_merkle_proof_validate_nano(
    _input: &[u8],
    gas_limit: u64,
    reservoir: u64,
) -> PrecompileResult {
    charge_and_run(GAS, gas_limit, reservoir, || Err(Failure::Halt("suspend")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspended_precompiles_fail_after_charging() {
        for run in [tm_header_validate_nano, iavl_merkle_proof_validate_nano] {
            let out = run(&[0u8; 64], 10_000, 0).unwrap();
            assert_eq!(
                out.halt_reason().map(ToString::to_string).as_deref(),
                Some("suspend")
            );
            let out = run(&[], 2_999, 0).unwrap();
            assert!(out.halt_reason().is_some_and(|h| h.is_oog()));
        }
    }
}
