//! Why a block was rejected or could not be executed, and how a failed state read is told
//! apart from an invalid block when revm and alloy-evm wrap it.

use crate::validate::HeaderViolation;
use alloy_consensus::TxEnvelope;
use alloy_evm::block::{BlockExecutionError, BlockValidationError, InternalBlockExecutionError};
use alloy_primitives::B256;
use primitives::contract::MalformedValue;
use primitives::store::StoreError;
use primitives::value::ReadError;
use revm::database_interface::bal::EvmDatabaseError;
use revm::database_interface::DBErrorMarker;

/// A failure to read state (the database the executor runs on fails with this).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StateError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored value does not decode.
    #[error(transparent)]
    Malformed(#[from] MalformedValue),
    /// An account names code the store does not have.
    #[error("code {hash:#x} missing from the store (key {key})")]
    MissingCode {
        /// The code hash.
        hash: B256,
        /// The key it was looked up under.
        key: String,
    },
    /// BLOCKHASH asked for a block whose header is not in the store.
    #[error("header of block {number} missing from the store (key {key}), needed for BLOCKHASH")]
    MissingHeader {
        /// The block number.
        number: u64,
        /// The key it was looked up under.
        key: String,
    },
    /// The ommer rules need a recent ancestor's header or ommers, and the store lacks them.
    #[error("block {number}: {key} missing from the store, needed to check ommers")]
    MissingAncestor {
        /// The ancestor's number.
        number: u64,
        /// The key it was looked up under.
        key: String,
    },
    /// The store's block at an ancestor's height is not on the chain being executed (the
    /// syncer is replacing it).
    #[error(
        "the store's block {number} is {found:#x}, not the ancestor {expected:#x} the chain names"
    )]
    NotAnAncestor {
        /// The height.
        number: u64,
        /// The hash of the block the store holds there.
        found: B256,
        /// The hash the chain being executed names.
        expected: B256,
    },
}

impl DBErrorMarker for StateError {}

impl From<ReadError> for StateError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Store(error) => StateError::Store(error),
            ReadError::Malformed(error) => StateError::Malformed(error),
        }
    }
}

impl StateError {
    /// True when waiting can fix it: a lost store connection, or a header the syncer has not
    /// written yet (or is still replacing, in a reorg). A value that does not decode or code that
    /// is missing stays wrong.
    pub fn is_retryable(&self) -> bool {
        match self {
            StateError::Store(error) => error.is_transient(),
            StateError::MissingHeader { .. }
            | StateError::MissingAncestor { .. }
            | StateError::NotAnAncestor { .. } => true,
            StateError::Malformed(_) | StateError::MissingCode { .. } => false,
        }
    }
}

/// Why a block was rejected or could not be executed.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The header breaks a rule relative to its parent.
    #[error("block {block}: invalid header: {violation}")]
    Header {
        /// Block number.
        block: u64,
        /// The rule broken.
        violation: HeaderViolation,
    },
    /// A transaction is invalid (nonce, balance, intrinsic gas, gas caps, blob rules, …).
    #[error("block {block}: transaction {index} ({hash:#x}) invalid: {reason}")]
    Transaction {
        /// Block number.
        block: u64,
        /// Position in the block.
        index: usize,
        /// Transaction hash.
        hash: B256,
        /// What revm found.
        reason: String,
    },
    /// Execution's result differs from what the header commits to.
    #[error("block {block}: {field} mismatch: header says {expected}, execution gives {got}")]
    Mismatch {
        /// Block number.
        block: u64,
        /// The header field (`gasUsed`, `receiptsRoot`, `logsBloom`, `blobGasUsed`, `requestsHash`).
        field: &'static str,
        /// What execution produced.
        got: String,
        /// What the header says.
        expected: String,
    },
    /// The block breaks a block-level rule (system contracts, requests, withdrawals, …).
    #[error("block {block}: {reason}")]
    Invalid {
        /// Block number.
        block: u64,
        /// What is wrong.
        reason: String,
    },
    /// An ommer breaks a rule.
    #[error("block {block}: {error}")]
    Ommer {
        /// Block number.
        block: u64,
        /// The rule broken (boxed: it is much larger than the other variants).
        error: Box<crate::ommers::OmmerError>,
    },
    /// State could not be read (store down, corrupt value): not the block's fault.
    #[error("block {block}: cannot read state: {error}")]
    State {
        /// Block number.
        block: u64,
        /// The failure.
        error: StateError,
    },
}

/// Find a [`StateError`] in an error's chain. revm and alloy-evm wrap database errors without
/// always naming them as the source: alloy-evm keeps revm's error in an `EVM { error }` field,
/// and revm's `State` wraps ours in an `EvmDatabaseError`; both are looked into.
pub fn state_error_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a StateError> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<StateError>() {
            return Some(found);
        }
        current = wrapped_error(e).or_else(|| e.source());
    }
    None
}

/// The error held by one of the wrappers [`state_error_in`] looks into.
fn wrapped_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    let boxed: &'a (dyn std::error::Error + Send + Sync + 'static) = match error
        .downcast_ref::<BlockExecutionError>()
    {
        Some(BlockExecutionError::Internal(InternalBlockExecutionError::EVM { error, .. }))
        | Some(BlockExecutionError::Validation(BlockValidationError::EVM { error, .. })) => {
            error.as_ref()
        }
        _ => match error.downcast_ref::<EvmDatabaseError<StateError>>() {
            Some(EvmDatabaseError::Database(inner)) => return Some(inner),
            _ => return None,
        },
    };
    Some(boxed)
}

/// A failed state read outside a transaction's own result: a store failure when it comes from
/// the state layers, else the block cannot be executed.
pub fn database_error(block: u64, error: &(dyn std::error::Error + 'static)) -> BlockError {
    match state_error_in(error) {
        Some(state) => BlockError::State {
            block,
            error: state.clone(),
        },
        None => BlockError::Invalid {
            block,
            reason: error.to_string(),
        },
    }
}

pub(crate) fn classify(block: u64, error: BlockExecutionError) -> BlockError {
    if let Some(state) = state_error_in(&error) {
        return BlockError::State {
            block,
            error: state.clone(),
        };
    }
    BlockError::Invalid {
        block,
        reason: error.to_string(),
    }
}

pub(crate) fn transaction_error(
    block: u64,
    index: usize,
    tx: &TxEnvelope,
    error: BlockExecutionError,
) -> BlockError {
    if let Some(state) = state_error_in(&error) {
        return BlockError::State {
            block,
            error: state.clone(),
        };
    }
    let reason = match &error {
        BlockExecutionError::Validation(BlockValidationError::InvalidTx { error, .. }) => {
            error.to_string()
        }
        other => other.to_string(),
    };
    BlockError::Transaction {
        block,
        index,
        hash: *tx.tx_hash(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use revm::context::result::EVMError;

    #[test]
    fn a_state_error_inside_revm_errors_is_a_state_error() {
        let state = StateError::Malformed(MalformedValue::new("st:latest:acc:0xAb", "bad"));
        let from_revm: EVMError<EvmDatabaseError<StateError>> =
            EVMError::Database(EvmDatabaseError::Database(state));
        let wrapped = BlockExecutionError::evm(from_revm, B256::ZERO);
        assert!(matches!(
            classify(7, wrapped),
            BlockError::State {
                block: 7,
                error: StateError::Malformed(_)
            }
        ));
        let other: EVMError<EvmDatabaseError<StateError>> = EVMError::Custom("x".to_string());
        assert!(matches!(
            classify(7, BlockExecutionError::evm(other, B256::ZERO)),
            BlockError::Invalid { block: 7, .. }
        ));
    }
}
