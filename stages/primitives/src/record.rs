//! The execution record: one block's whole outcome as ONE store value (DESIGN §2, crash rule).
//!
//! It holds the block's identity, its receipts and every state change with the value before and
//! after the block, so the commit and receipt stages can apply it idempotently after a crash and
//! an unwind can restore the pre-values. Encoded as a version byte followed by the RLP,
//! compressed with zstd: receipts' blooms and logs and the changes' pre- and post-values shrink
//! about four times on a generated 200-transaction block (150 KB to 38 KB), and a block whose
//! logs carry megabytes of zeros to a few kilobytes, so the one value written before commit
//! may begin is small.

use alloy_consensus::ReceiptEnvelope;
use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_rlp::{Decodable, Encodable, RlpDecodable, RlpEncodable};
use std::borrow::Cow;

/// The encoding version written first in every record: the RLP compressed with zstd.
pub const RECORD_VERSION: u8 = 2;
/// The version before compression: the RLP as it is. Still read, so the records of a window
/// written by an earlier binary can be applied, unwound and pruned after an upgrade.
pub const PLAIN_RECORD_VERSION: u8 = 1;
/// zstd's fastest regular level: records are written once per block on the write path.
const COMPRESSION_LEVEL: i32 = 1;

/// An account's fields as the state keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, RlpEncodable, RlpDecodable)]
pub struct AccountState {
    /// Balance in wei.
    pub balance: U256,
    /// Nonce.
    pub nonce: u64,
    /// keccak256 of the code.
    pub code_hash: B256,
}

/// One account's change in a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountChange {
    /// The account.
    pub address: Address,
    /// Before the block; `None` when it did not exist.
    pub pre: Option<AccountState>,
    /// After the block; `None` when it was destroyed (or never came to exist).
    pub post: Option<AccountState>,
    /// True when the block wiped the account's storage (self-destruct); the wiped slots are
    /// listed in [`ExecutionRecord::storage`] with their pre-values.
    pub storage_wiped: bool,
}

/// One storage slot's change in a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct StorageChange {
    /// The account.
    pub address: Address,
    /// The slot.
    pub slot: U256,
    /// Before the block (zero when unset).
    pub pre: U256,
    /// After the block (zero when cleared).
    pub post: U256,
}

/// A block's outcome: what the commit, receipt and prune stages need, and what an unwind needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionRecord {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// Parent hash (to check the chain on unwind).
    pub parent_hash: B256,
    /// Gas used by the block.
    pub gas_used: u64,
    /// Receipts in transaction order.
    pub receipts: Vec<ReceiptEnvelope>,
    /// Changed accounts, sorted by address.
    pub accounts: Vec<AccountChange>,
    /// Changed slots, sorted by (address, slot).
    pub storage: Vec<StorageChange>,
    /// Code first deployed in this block, by hash.
    pub codes: Vec<(B256, Bytes)>,
}

/// A record that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum RecordDecodeError {
    /// Written by a newer or unknown encoder.
    #[error("unsupported execution record version {0}")]
    Version(u8),
    /// Not valid RLP for a record.
    #[error("corrupt execution record: {0}")]
    Rlp(#[from] alloy_rlp::Error),
    /// Not a valid zstd frame.
    #[error("corrupt compressed execution record: {0}")]
    Compression(#[from] std::io::Error),
}

/// `rlp` as one zstd frame that carries its content's checksum, so a damaged record fails to
/// decode instead of applying other values.
fn compress(rlp: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut compressor = zstd::bulk::Compressor::new(COMPRESSION_LEVEL)?;
    compressor.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
    compressor.compress(rlp)
}

/// The record's RLP in stored `bytes` of either version.
fn stored_rlp(bytes: &[u8]) -> Result<Cow<'_, [u8]>, RecordDecodeError> {
    let (&version, rest) = bytes.split_first().ok_or(alloy_rlp::Error::InputTooShort)?;
    match version {
        RECORD_VERSION => Ok(Cow::Owned(zstd::stream::decode_all(rest)?)),
        PLAIN_RECORD_VERSION => Ok(Cow::Borrowed(rest)),
        other => Err(RecordDecodeError::Version(other)),
    }
}

const HAS_PRE: u8 = 1;
const HAS_POST: u8 = 2;
const WIPED: u8 = 4;

#[derive(RlpEncodable, RlpDecodable)]
struct AccountChangeRlp {
    address: Address,
    flags: u8,
    pre: AccountState,
    post: AccountState,
}

#[derive(RlpEncodable, RlpDecodable)]
struct CodeRlp {
    hash: B256,
    code: Bytes,
}

/// A record as it is decoded.
#[derive(RlpDecodable)]
struct RecordRlp {
    number: u64,
    hash: B256,
    parent_hash: B256,
    gas_used: u64,
    receipts: Vec<ReceiptEnvelope>,
    accounts: Vec<AccountChangeRlp>,
    storage: Vec<StorageChange>,
    codes: Vec<CodeRlp>,
}

/// A record as it is encoded: [`RecordRlp`]'s fields, the receipts and slots borrowed rather
/// than copied.
#[derive(RlpEncodable)]
struct RecordRlpRef<'a> {
    number: u64,
    hash: B256,
    parent_hash: B256,
    gas_used: u64,
    receipts: RlpList<'a, ReceiptEnvelope>,
    accounts: Vec<AccountChangeRlp>,
    storage: RlpList<'a, StorageChange>,
    codes: Vec<CodeRlp>,
}

/// A borrowed slice encoded as an RLP list, as a `Vec` of the same items is.
struct RlpList<'a, T>(&'a [T]);

impl<T: Encodable> Encodable for RlpList<'_, T> {
    fn encode(&self, out: &mut dyn alloy_rlp::BufMut) {
        alloy_rlp::encode_list::<_, T>(self.0, out);
    }

    fn length(&self) -> usize {
        alloy_rlp::list_length(self.0)
    }
}

impl ExecutionRecord {
    /// Transactions in the block.
    pub fn tx_count(&self) -> usize {
        self.receipts.len()
    }

    /// The stored bytes: version byte, then the compressed RLP (the plain RLP under
    /// [`PLAIN_RECORD_VERSION`] should compression fail, which it does only without memory).
    pub fn encode(&self) -> Vec<u8> {
        let rlp = RecordRlpRef {
            number: self.number,
            hash: self.hash,
            parent_hash: self.parent_hash,
            gas_used: self.gas_used,
            receipts: RlpList(&self.receipts),
            accounts: self
                .accounts
                .iter()
                .map(|change| AccountChangeRlp {
                    address: change.address,
                    flags: (u8::from(change.pre.is_some()) * HAS_PRE)
                        | (u8::from(change.post.is_some()) * HAS_POST)
                        | (u8::from(change.storage_wiped) * WIPED),
                    pre: change.pre.unwrap_or_default(),
                    post: change.post.unwrap_or_default(),
                })
                .collect(),
            storage: RlpList(&self.storage),
            codes: self
                .codes
                .iter()
                .map(|(hash, code)| CodeRlp {
                    hash: *hash,
                    code: code.clone(),
                })
                .collect(),
        };
        let mut plain = Vec::with_capacity(rlp.length());
        rlp.encode(&mut plain);
        let (version, body) = match compress(&plain) {
            Ok(compressed) => (RECORD_VERSION, compressed),
            Err(_) => (PLAIN_RECORD_VERSION, plain),
        };
        [&[version], body.as_slice()].concat()
    }

    /// Parse stored bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordDecodeError> {
        let stored = stored_rlp(bytes)?;
        let mut rest = stored.as_ref();
        let rlp = RecordRlp::decode(&mut rest)?;
        if !rest.is_empty() {
            return Err(alloy_rlp::Error::UnexpectedLength.into());
        }
        Ok(Self {
            number: rlp.number,
            hash: rlp.hash,
            parent_hash: rlp.parent_hash,
            gas_used: rlp.gas_used,
            receipts: rlp.receipts,
            accounts: rlp
                .accounts
                .into_iter()
                .map(|a| AccountChange {
                    address: a.address,
                    pre: (a.flags & HAS_PRE != 0).then_some(a.pre),
                    post: (a.flags & HAS_POST != 0).then_some(a.post),
                    storage_wiped: a.flags & WIPED != 0,
                })
                .collect(),
            storage: rlp.storage,
            codes: rlp.codes.into_iter().map(|c| (c.hash, c.code)).collect(),
        })
    }
}

/// What pruning needs of a record: the history keys its block wrote, and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSummary {
    /// Transactions in the block.
    pub tx_count: usize,
    /// Gas the block used.
    pub gas_used: u64,
    /// Accounts the block changed.
    pub accounts: Vec<Address>,
    /// Slots the block changed.
    pub storage: Vec<(Address, U256)>,
}

impl RecordSummary {
    /// Read a stored record's summary, stepping over its receipts and code without decoding
    /// them (they are most of its bytes).
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordDecodeError> {
        let stored = stored_rlp(bytes)?;
        let mut rest = stored.as_ref();
        let record = alloy_rlp::Header::decode_bytes(&mut rest, true)?;
        if !rest.is_empty() {
            return Err(alloy_rlp::Error::UnexpectedLength.into());
        }
        let mut fields = record;
        let _number = u64::decode(&mut fields)?;
        let _hash = B256::decode(&mut fields)?;
        let _parent_hash = B256::decode(&mut fields)?;
        let gas_used = u64::decode(&mut fields)?;
        let mut receipts = alloy_rlp::Header::decode_bytes(&mut fields, true)?;
        let mut tx_count = 0;
        while !receipts.is_empty() {
            skip_item(&mut receipts)?;
            tx_count += 1;
        }
        let accounts = Vec::<AccountChangeRlp>::decode(&mut fields)?
            .into_iter()
            .map(|change| change.address)
            .collect();
        let storage = Vec::<StorageChange>::decode(&mut fields)?
            .into_iter()
            .map(|change| (change.address, change.slot))
            .collect();
        skip_item(&mut fields)?;
        if !fields.is_empty() {
            return Err(alloy_rlp::Error::UnexpectedLength.into());
        }
        Ok(Self {
            tx_count,
            gas_used,
            accounts,
            storage,
        })
    }
}

/// Step over one RLP item.
fn skip_item(buf: &mut &[u8]) -> Result<(), alloy_rlp::Error> {
    let header = alloy_rlp::Header::decode(buf)?;
    if buf.len() < header.payload_length {
        return Err(alloy_rlp::Error::InputTooShort);
    }
    *buf = &buf[header.payload_length..];
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::{Eip658Value, Receipt, ReceiptWithBloom};
    use alloy_primitives::{address, Log};

    /// A record with a receipt of each encoding, an account and a slot change, and code.
    fn sample_record() -> ExecutionRecord {
        let receipt = Receipt {
            status: Eip658Value::Eip658(true),
            cumulative_gas_used: 21_000,
            logs: vec![Log::new_unchecked(
                address!("00000000000000000000000000000000000000aa"),
                vec![B256::ZERO],
                Bytes::from_static(b"x"),
            )],
        };
        ExecutionRecord {
            number: 7,
            hash: B256::repeat_byte(1),
            parent_hash: B256::repeat_byte(2),
            gas_used: 21_000,
            receipts: vec![
                ReceiptEnvelope::Legacy(ReceiptWithBloom::from(receipt.clone())),
                ReceiptEnvelope::Eip1559(ReceiptWithBloom::from(receipt)),
            ],
            accounts: vec![AccountChange {
                address: address!("00000000000000000000000000000000000000bb"),
                pre: None,
                post: Some(AccountState {
                    balance: U256::from(5),
                    nonce: 1,
                    code_hash: B256::ZERO,
                }),
                storage_wiped: true,
            }],
            storage: vec![StorageChange {
                address: Address::ZERO,
                slot: U256::from(1),
                pre: U256::from(2),
                post: U256::ZERO,
            }],
            codes: vec![(B256::repeat_byte(3), Bytes::from_static(&[0x60, 0x00]))],
        }
    }

    /// [`sample_record`] as the binaries before compression stored it (version 1, written by
    /// commit 53a2468's `encode`).
    const SAMPLE_V1: &str = concat!(
        "01f9037b07a00101010101010101010101010101010101010101010101010101010101010101a00202020202",
        "020202020202020202020202020202020202020202020202020202825208f90290f9014301825208b9010000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000200000000000000000000000000000000000000000000000000000000000000000000000000040000000",
        "0000000000000000000000020000000000000000000800000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000080000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0020000000000000000000000000000000000000000000000000000000000000000000f83af8389400000000",
        "000000000000000000000000000000aae1a00000000000000000000000000000000000000000000000000000",
        "00000000000078b9014702f9014301825208b901000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000002000000000000000000000000000000000000000",
        "0000000000000000000000000000000000004000000000000000000000000000000200000000000000000008",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000008000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000200000000000000000000000000000000000000000",
        "00000000000000000000000000f83af8389400000000000000000000000000000000000000aae1a000000000",
        "0000000000000000000000000000000000000000000000000000000078f860f85e9400000000000000000000",
        "000000000000000000bb06e38080a00000000000000000000000000000000000000000000000000000000000",
        "000000e30501a00000000000000000000000000000000000000000000000000000000000000000d9d8940000",
        "000000000000000000000000000000000000010280e5e4a00303030303030303030303030303030303030303",
        "030303030303030303030303826000",
    );

    fn sample_v1() -> Vec<u8> {
        alloy_primitives::hex::decode(SAMPLE_V1).expect("hex")
    }

    #[test]
    fn summary_agrees_with_the_full_decode() {
        let record = sample_record();
        for bytes in [record.encode(), sample_v1()] {
            let summary = RecordSummary::decode(&bytes).expect("summary");
            assert_eq!(summary.tx_count, record.receipts.len());
            assert_eq!(summary.gas_used, record.gas_used);
            let accounts: Vec<Address> = record.accounts.iter().map(|a| a.address).collect();
            assert_eq!(summary.accounts, accounts);
            let slots: Vec<(Address, U256)> =
                record.storage.iter().map(|s| (s.address, s.slot)).collect();
            assert_eq!(summary.storage, slots);
            assert!(RecordSummary::decode(&bytes[..bytes.len() - 1]).is_err());
        }
    }

    #[test]
    fn record_round_trips_and_rejects_unknown_versions() {
        let record = sample_record();
        let bytes = record.encode();
        assert_eq!(bytes[0], RECORD_VERSION);
        assert_eq!(ExecutionRecord::decode(&bytes).unwrap(), record);
        let mut future = bytes.clone();
        future[0] = 99;
        assert!(matches!(
            ExecutionRecord::decode(&future),
            Err(RecordDecodeError::Version(99))
        ));
        assert!(ExecutionRecord::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(ExecutionRecord::decode(&[RECORD_VERSION]).is_err());
    }

    #[test]
    fn records_written_before_compression_still_decode() {
        let plain = sample_v1();
        assert_eq!(plain[0], PLAIN_RECORD_VERSION);
        assert_eq!(ExecutionRecord::decode(&plain).unwrap(), sample_record());
        // The RLP inside the frame is still exactly version 1's.
        let compressed = sample_record().encode();
        let rlp = zstd::stream::decode_all(&compressed[1..]).expect("a zstd frame");
        assert_eq!(rlp, plain[1..]);
    }

    #[test]
    fn every_damaged_byte_is_an_error() {
        let bytes = sample_record().encode();
        for at in 1..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0xff;
            assert!(
                ExecutionRecord::decode(&damaged).is_err(),
                "a flip at byte {at} of {} went unnoticed",
                bytes.len()
            );
        }
    }

    /// A block whose logs carry megabytes of zeros (memory expansion logged, as block 11 of
    /// the geth-ethtest chain does with 10.6 MB) is stored in a few kilobytes.
    #[test]
    fn logs_of_zeros_shrink_to_kilobytes() {
        let mut record = sample_record();
        let ExecutionRecord { receipts, .. } = &mut record;
        let ReceiptEnvelope::Legacy(receipt) = &mut receipts[0] else {
            unreachable!("the sample's first receipt is legacy")
        };
        receipt.receipt.logs[0].data = alloy_primitives::LogData::new_unchecked(
            vec![B256::ZERO],
            Bytes::from(vec![0u8; 4 << 20]),
        );
        let bytes = record.encode();
        assert!(bytes.len() < 4096, "{} bytes", bytes.len());
        assert_eq!(ExecutionRecord::decode(&bytes).unwrap(), record);
    }
}
