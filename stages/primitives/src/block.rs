//! RLP codecs for the block data the syncer writes (`blk:hdr`, `blk:txs`, `blk:body`) and the
//! receipts the executor writes (`blk:rcpt`), plus the body-versus-header consistency check.
//!
//! Transactions and receipts are the consensus types of alloy-consensus; lists use the
//! block-body encoding (legacy as an RLP list, typed as a byte string of `type ‖ payload`).
//! Decoding is strict: trailing bytes after the value are an error.

use alloy_consensus::{
    proofs, Block, BlockBody, Header, ReceiptEnvelope, TxEnvelope, EMPTY_OMMER_ROOT_HASH,
};
use alloy_eips::eip4895::Withdrawals;
use alloy_primitives::{keccak256, B256};
use alloy_rlp::{Decodable, RlpDecodable, RlpEncodable};

/// A block as the executor works on it: header, its hash, and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBlock {
    /// The consensus header.
    pub header: Header,
    /// keccak256 of the header's RLP.
    pub hash: B256,
    /// Transactions, ommers and withdrawals.
    pub body: BlockBody<TxEnvelope>,
}

impl ChainBlock {
    /// The block number.
    pub fn number(&self) -> u64 {
        self.header.number
    }
}

/// RLP that does not decode as the data contract says.
#[derive(Debug, thiserror::Error)]
#[error("corrupt {what} at {key}: {reason}")]
pub struct CorruptRlp {
    /// What was being decoded (`header`, `transaction list`, …).
    pub what: &'static str,
    /// The store key (or file position) it came from.
    pub key: String,
    /// The decoder's complaint.
    pub reason: String,
}

/// A body whose contents do not match the roots its header commits to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("block {block}: body does not match header: {field} is {got}, header says {expected}")]
pub struct BodyMismatch {
    /// The block number.
    pub block: u64,
    /// The header field that disagrees (`transactionsRoot`, `ommersHash`, `withdrawalsRoot`).
    pub field: &'static str,
    /// What the body hashes to.
    pub got: String,
    /// What the header says.
    pub expected: String,
}

/// The full body as stored at `blk:body:{n}`: `[txs, ommers, withdrawals?]`.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
#[rlp(trailing)]
struct BodyRlp {
    transactions: Vec<TxEnvelope>,
    ommers: Vec<Header>,
    withdrawals: Option<Withdrawals>,
}

/// Blob transactions inside a block carry no sidecar (EIP-4844's network form is not a block form).
fn reject_sidecars(
    what: &'static str,
    key: &str,
    transactions: &[TxEnvelope],
) -> Result<(), CorruptRlp> {
    match transactions.iter().position(|tx| matches!(tx, TxEnvelope::Eip4844(signed) if matches!(signed.tx(), alloy_consensus::TxEip4844Variant::TxEip4844WithSidecar(_)))) {
        Some(index) => Err(CorruptRlp {
            what,
            key: key.to_string(),
            reason: format!("transaction {index} is a blob transaction with its sidecar"),
        }),
        None => Ok(()),
    }
}

fn decode_exact<T: Decodable>(
    what: &'static str,
    key: &str,
    bytes: &[u8],
) -> Result<T, CorruptRlp> {
    let corrupt = |reason: String| CorruptRlp {
        what,
        key: key.to_string(),
        reason,
    };
    let mut buf = bytes;
    let value = T::decode(&mut buf).map_err(|e| corrupt(e.to_string()))?;
    if !buf.is_empty() {
        return Err(corrupt(format!("{} trailing bytes", buf.len())));
    }
    Ok(value)
}

/// Decode a header stored at `key`; returns it with its hash (keccak256 of exactly these bytes).
pub fn decode_header(key: &str, bytes: &[u8]) -> Result<(Header, B256), CorruptRlp> {
    let header: Header = decode_exact("header", key, bytes)?;
    Ok((header, keccak256(bytes)))
}

/// Encode a header as `blk:hdr:{n}` holds it.
pub fn encode_header(header: &Header) -> Vec<u8> {
    alloy_rlp::encode(header)
}

/// Decode the transaction list stored at `blk:txs:{n}`.
pub fn decode_transactions(key: &str, bytes: &[u8]) -> Result<Vec<TxEnvelope>, CorruptRlp> {
    let transactions: Vec<TxEnvelope> = decode_exact("transaction list", key, bytes)?;
    reject_sidecars("transaction list", key, &transactions)?;
    Ok(transactions)
}

/// Encode a transaction list as `blk:txs:{n}` holds it.
pub fn encode_transactions(transactions: &[TxEnvelope]) -> Vec<u8> {
    let mut out = Vec::new();
    alloy_rlp::encode_list(transactions, &mut out);
    out
}

/// Decode the full body stored at `blk:body:{n}`.
pub fn decode_body(key: &str, bytes: &[u8]) -> Result<BlockBody<TxEnvelope>, CorruptRlp> {
    let body: BodyRlp = decode_exact("block body", key, bytes)?;
    reject_sidecars("block body", key, &body.transactions)?;
    Ok(BlockBody {
        transactions: body.transactions,
        ommers: body.ommers,
        withdrawals: body.withdrawals,
    })
}

/// Encode a full body as `blk:body:{n}` holds it.
pub fn encode_body(body: &BlockBody<TxEnvelope>) -> Vec<u8> {
    alloy_rlp::encode(BodyRlp {
        transactions: body.transactions.clone(),
        ommers: body.ommers.clone(),
        withdrawals: body.withdrawals.clone(),
    })
}

/// Decode one whole block `[header, txs, ommers, withdrawals?]` (the chain-file format) from the
/// front of `buf`, advancing it. `origin` names where the bytes came from, for errors.
pub fn decode_block(origin: &str, buf: &mut &[u8]) -> Result<ChainBlock, CorruptRlp> {
    let corrupt = |reason: String| CorruptRlp {
        what: "block",
        key: origin.to_string(),
        reason,
    };
    // The header is the first item inside the block's list: hash its exact bytes.
    let mut inner = *buf;
    alloy_rlp::Header::decode(&mut inner).map_err(|e| corrupt(e.to_string()))?;
    let header_item = inner;
    let header_head = alloy_rlp::Header::decode(&mut inner).map_err(|e| corrupt(e.to_string()))?;
    let header_len = header_item.len() - inner.len() + header_head.payload_length;
    let hash = keccak256(
        header_item
            .get(..header_len)
            .ok_or_else(|| corrupt(format!("header of {header_len} bytes overruns the input")))?,
    );
    let block = Block::<TxEnvelope>::decode(buf).map_err(|e| corrupt(e.to_string()))?;
    reject_sidecars("block", origin, &block.body.transactions)?;
    Ok(ChainBlock {
        header: block.header,
        hash,
        body: block.body,
    })
}

/// Encode a whole block in the chain-file format.
pub fn encode_block(block: &ChainBlock) -> Vec<u8> {
    alloy_rlp::encode(Block {
        header: block.header.clone(),
        body: block.body.clone(),
    })
}

/// Decode the receipts list stored at `blk:rcpt:{n}`.
pub fn decode_receipts(key: &str, bytes: &[u8]) -> Result<Vec<ReceiptEnvelope>, CorruptRlp> {
    decode_exact("receipt list", key, bytes)
}

/// Encode a receipts list as `blk:rcpt:{n}` holds it.
pub fn encode_receipts(receipts: &[ReceiptEnvelope]) -> Vec<u8> {
    let mut out = Vec::new();
    alloy_rlp::encode_list(receipts, &mut out);
    out
}

/// Check that `body` is the one `header` commits to: transactions root, ommers hash, and the
/// withdrawals root (present in the body exactly when the header has one).
pub fn check_body(header: &Header, body: &BlockBody<TxEnvelope>) -> Result<(), BodyMismatch> {
    let mismatch = |field, got: String, expected: String| BodyMismatch {
        block: header.number,
        field,
        got,
        expected,
    };
    let tx_root = proofs::calculate_transaction_root(&body.transactions);
    if tx_root != header.transactions_root {
        return Err(mismatch(
            "transactionsRoot",
            format!("{tx_root:#x}"),
            format!("{:#x}", header.transactions_root),
        ));
    }
    let ommers_hash = if body.ommers.is_empty() {
        EMPTY_OMMER_ROOT_HASH
    } else {
        proofs::calculate_ommers_root(&body.ommers)
    };
    if ommers_hash != header.ommers_hash {
        return Err(mismatch(
            "ommersHash",
            format!("{ommers_hash:#x}"),
            format!("{:#x}", header.ommers_hash),
        ));
    }
    let body_root = body
        .withdrawals
        .as_ref()
        .map(|w| proofs::calculate_withdrawals_root(w));
    if body_root != header.withdrawals_root {
        let show = |root: Option<B256>| root.map_or("absent".to_string(), |r| format!("{r:#x}"));
        return Err(mismatch(
            "withdrawalsRoot",
            show(body_root),
            show(header.withdrawals_root),
        ));
    }
    Ok(())
}
