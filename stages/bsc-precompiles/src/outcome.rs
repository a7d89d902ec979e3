//! How a BSC precompile call ends, translated into revm's precompile output.
//!
//! The client's `RunPrecompiledContract` takes the required gas first (too little is an
//! out-of-gas halt that consumes everything). After that its EVM treats `ErrExecutionReverted`
//! as a revert that keeps the remaining gas, and every other error as a failure that consumes all
//! gas given to the call.

use alloy_primitives::Bytes;
use revm::precompile::{PrecompileHalt, PrecompileOutput, PrecompileResult};

/// A failed precompile call, as the BSC client's EVM tells failures apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The client returns `ErrExecutionReverted`: empty output, only the required gas is used.
    Revert,
    /// Any other client error: all gas given to the call is consumed. The text names the cause.
    Halt(&'static str),
}

/// Charges `gas_cost` against `gas_limit`, then runs `body` and maps its result.
pub(crate) fn charge_and_run(
    gas_cost: u64,
    gas_limit: u64,
    reservoir: u64,
    body: impl FnOnce() -> Result<Bytes, Failure>,
) -> PrecompileResult {
    if gas_cost > gas_limit {
        return Ok(PrecompileOutput::halt(PrecompileHalt::OutOfGas, reservoir));
    }
    Ok(match body() {
        Ok(bytes) => PrecompileOutput::new(gas_cost, bytes, reservoir),
        Err(Failure::Revert) => PrecompileOutput::revert(gas_cost, Bytes::new(), reservoir),
        Err(Failure::Halt(cause)) => {
            PrecompileOutput::halt(PrecompileHalt::other_static(cause), reservoir)
        }
    })
}
