//! What execution's outcome must match in the header: gasUsed, receiptsRoot, logsBloom, and
//! where the fork has them blobGasUsed and requestsHash. Shared by the Ethereum and BSC block
//! executors.

use crate::chain::ChainSpec;
use crate::error::BlockError;
use alloy_consensus::{proofs, Header, ReceiptEnvelope, TxReceipt};
use alloy_hardforks::EthereumHardforks;
use alloy_primitives::Bloom;

/// What running a block produced (before its changes are turned into a record).
#[derive(Debug)]
pub struct BlockOutput {
    /// Receipts in transaction order.
    pub receipts: Vec<ReceiptEnvelope>,
    /// Gas used by the block.
    pub gas_used: u64,
}

fn mismatch(
    block: u64,
    field: &'static str,
    got: impl std::fmt::Display,
    expected: impl std::fmt::Display,
) -> BlockError {
    BlockError::Mismatch {
        block,
        field,
        got: got.to_string(),
        expected: expected.to_string(),
    }
}

/// Compare execution's outcome with the header: gasUsed, receiptsRoot, logsBloom, blobGasUsed
/// where the fork has blobs, requestsHash from Prague.
pub(crate) fn verify_result(
    spec: &ChainSpec,
    header: &Header,
    receipts: &[ReceiptEnvelope],
    gas_used: u64,
    blob_gas_used: u64,
    requests: &alloy_eips::eip7685::Requests,
) -> Result<(), BlockError> {
    let cancun = spec.is_cancun_active_at_timestamp(header.timestamp);
    verify_receipts(header, receipts, gas_used, cancun.then_some(blob_gas_used))?;
    if spec.is_prague_active_at_timestamp(header.timestamp) {
        let hash = requests.requests_hash();
        if Some(hash) != header.requests_hash {
            return Err(mismatch(
                header.number,
                "requestsHash",
                format!("{hash:#x}"),
                format!("{:?}", header.requests_hash),
            ));
        }
    }
    Ok(())
}

/// Compare gasUsed, receiptsRoot, logsBloom and, when the fork has blobs (`blob_gas_used` is
/// `Some`), blobGasUsed with the header.
pub fn verify_receipts(
    header: &Header,
    receipts: &[ReceiptEnvelope],
    gas_used: u64,
    blob_gas_used: Option<u64>,
) -> Result<(), BlockError> {
    let block = header.number;
    if gas_used != header.gas_used {
        return Err(mismatch(block, "gasUsed", gas_used, header.gas_used));
    }
    let root = proofs::calculate_receipt_root(receipts);
    if root != header.receipts_root {
        return Err(mismatch(
            block,
            "receiptsRoot",
            format!("{root:#x}"),
            format!("{:#x}", header.receipts_root),
        ));
    }
    let mut bloom = Bloom::ZERO;
    for receipt in receipts {
        bloom.accrue_bloom(&receipt.bloom());
    }
    if bloom != header.logs_bloom {
        return Err(mismatch(block, "logsBloom", bloom, header.logs_bloom));
    }
    if let Some(blob_gas_used) = blob_gas_used.filter(|used| Some(*used) != header.blob_gas_used) {
        return Err(mismatch(
            block,
            "blobGasUsed",
            blob_gas_used,
            format!("{:?}", header.blob_gas_used),
        ));
    }
    Ok(())
}
