//! Loading a block as the syncer stored it: `blk:hdr:{n}` plus `blk:body:{n}` when present
//! (it wins: it carries ommers and withdrawals) or else `blk:txs:{n}`, checked against the
//! header's roots. Sender recovery lives here too: both are pure functions of the stored bytes.

use crate::block::{
    check_body, decode_body, decode_header, decode_transactions, BodyMismatch, ChainBlock,
    CorruptRlp,
};
use crate::keys::Keys;
use crate::store::{Store, StoreError};
use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{BlockBody, TxEnvelope};
use alloy_primitives::Address;
use rayon::prelude::*;

/// Why a block could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key the block needs is absent.
    #[error("block {block}: {key} missing from the store")]
    Missing {
        /// Block number.
        block: u64,
        /// The absent key.
        key: String,
    },
    /// Stored RLP does not decode.
    #[error("block {block}: {error}")]
    Corrupt {
        /// Block number.
        block: u64,
        /// The decoding failure (names the key).
        error: CorruptRlp,
    },
    /// The header stored under `blk:hdr:{n}` is for another number.
    #[error("block {block}: {key} holds a header numbered {found}")]
    WrongNumber {
        /// Block number.
        block: u64,
        /// The key.
        key: String,
        /// The number inside.
        found: u64,
    },
    /// The body does not match the header.
    #[error(transparent)]
    BodyMismatch(#[from] BodyMismatch),
    /// A transaction's signature does not recover.
    #[error("block {block}: transaction {index} ({hash:#x}) has an invalid signature: {reason}")]
    Signature {
        /// Block number.
        block: u64,
        /// Position in the block.
        index: usize,
        /// Transaction hash.
        hash: alloy_primitives::B256,
        /// What recovery found.
        reason: String,
    },
}

/// Load and check block `number` from the store.
pub fn load_block(store: &dyn Store, keys: &Keys, number: u64) -> Result<ChainBlock, LoadError> {
    let mut blocks = load_blocks(store, keys, number, number)?;
    blocks.pop().unwrap_or(Err(LoadError::Missing {
        block: number,
        key: keys.header(number).into_string(),
    }))
}

/// Load blocks `first..=last` with one batched read; each block is checked on its own, so a
/// bad block does not hide the good ones before it. Only a store failure fails the whole call.
pub fn load_blocks(
    store: &dyn Store,
    keys: &Keys,
    first: u64,
    last: u64,
) -> Result<Vec<Result<ChainBlock, LoadError>>, StoreError> {
    let numbers: Vec<u64> = (first..=last).collect();
    let wanted: Vec<String> = numbers
        .iter()
        .flat_map(|n| {
            [
                keys.header(*n).into_string(),
                keys.body(*n).into_string(),
                keys.transactions(*n).into_string(),
            ]
        })
        .collect();
    let values = store.multi_get(&wanted)?;
    Ok(numbers
        .iter()
        .zip(values.chunks(3))
        .map(|(number, found)| {
            let [header, body, txs] = found else {
                return Err(LoadError::Missing {
                    block: *number,
                    key: keys.header(*number).into_string(),
                });
            };
            decode_stored_block(
                keys,
                *number,
                header.as_deref(),
                body.as_deref(),
                txs.as_deref(),
            )
        })
        .collect())
}

fn decode_stored_block(
    keys: &Keys,
    number: u64,
    header_bytes: Option<&[u8]>,
    body_bytes: Option<&[u8]>,
    txs_bytes: Option<&[u8]>,
) -> Result<ChainBlock, LoadError> {
    let header_key = keys.header(number);
    let corrupt = |error| LoadError::Corrupt {
        block: number,
        error,
    };
    let header_bytes = header_bytes.ok_or_else(|| LoadError::Missing {
        block: number,
        key: header_key.to_string(),
    })?;
    let (header, hash) = decode_header(header_key.as_str(), header_bytes).map_err(corrupt)?;
    if header.number != number {
        return Err(LoadError::WrongNumber {
            block: number,
            key: header_key.into_string(),
            found: header.number,
        });
    }
    let body = match (body_bytes, txs_bytes) {
        (Some(bytes), _) => decode_body(keys.body(number).as_str(), bytes).map_err(corrupt)?,
        (None, Some(bytes)) => BlockBody {
            transactions: decode_transactions(keys.transactions(number).as_str(), bytes)
                .map_err(corrupt)?,
            ommers: Vec::new(),
            withdrawals: header.withdrawals_root.map(|_| Default::default()),
        },
        (None, None) => {
            return Err(LoadError::Missing {
                block: number,
                key: keys.transactions(number).into_string(),
            })
        }
    };
    check_body(&header, &body)?;
    Ok(ChainBlock { header, hash, body })
}

/// Recover every transaction's sender, in parallel on the current rayon pool. `homestead`
/// selects EIP-2's low-s rule (go-ethereum accepts high-s signatures before Homestead).
pub fn recover_senders(block: &ChainBlock, homestead: bool) -> Result<Vec<Address>, LoadError> {
    block
        .body
        .transactions
        .par_iter()
        .enumerate()
        .map(|(index, tx): (usize, &TxEnvelope)| {
            let recovered = if homestead {
                tx.recover_signer()
            } else {
                tx.recover_signer_unchecked()
            };
            recovered.map_err(|e| LoadError::Signature {
                block: block.number(),
                index,
                hash: *tx.tx_hash(),
                reason: e.to_string(),
            })
        })
        .collect()
}
