//! How each value of the data contract is stored: [`Encode`] and [`Decode`], implemented once
//! per value type, and [`Key`], a store key that knows the type of the value under it. A caller
//! reads and writes through a typed key ([`ContractRead`], [`WriteBatch::put`]), so it never
//! chooses an encoding itself.

use crate::block::{
    decode_body, decode_header, decode_receipts, decode_transactions, encode_body, encode_header,
    encode_receipts, encode_transactions, CorruptRlp,
};
use crate::contract::{
    decode_json, decode_word, encode_json, encode_word, AccountJson, ChainRecord, ExecProgress,
    MalformedValue, StageCheckpoint, SyncProgress, TrieRebuildProgress,
};
use crate::record::{ExecutionRecord, RecordSummary};
use crate::store::{Store, StoreError, WriteBatch};
use crate::trie_record::TrieRecord;
use alloy_consensus::{BlockBody, Header, ReceiptEnvelope, Sealed, TxEnvelope};
use alloy_primitives::{Bytes, U256};
use std::marker::PhantomData;
use std::time::Duration;

/// A value type of the data contract as it is written: its stored bytes.
pub trait Encode {
    /// The stored bytes.
    fn encode(&self) -> Vec<u8>;
}

/// A value type of the data contract as it is read back.
pub trait Decode: Sized {
    /// Parse the bytes stored at `key`.
    fn decode(key: &str, bytes: &[u8]) -> Result<Self, MalformedValue>;
}

/// A store key together with the type of the value it holds (built by `Keys` of the `keys` module).
pub struct Key<V> {
    text: String,
    value: PhantomData<fn() -> V>,
}

impl<V> Key<V> {
    /// A key spelled `text` (only `Keys` spells keys).
    pub(crate) fn new(text: String) -> Self {
        Self {
            text,
            value: PhantomData,
        }
    }

    /// The key as the store sees it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The key as the store sees it, owned.
    pub fn into_string(self) -> String {
        self.text
    }
}

impl<V: Decode> Key<V> {
    /// Decode `bytes` read from this key.
    pub fn decode(&self, bytes: &[u8]) -> Result<V, MalformedValue> {
        V::decode(&self.text, bytes)
    }
}

impl<V> Clone for Key<V> {
    fn clone(&self) -> Self {
        Self::new(self.text.clone())
    }
}

impl<V> PartialEq for Key<V> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl<V> Eq for Key<V> {}

impl<V> std::hash::Hash for Key<V> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state)
    }
}

impl<V> std::fmt::Debug for Key<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.text, f)
    }
}

impl<V> std::fmt::Display for Key<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A read of a contract value that failed: the store, or the value itself.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The value does not decode (the error names the key).
    #[error(transparent)]
    Malformed(#[from] MalformedValue),
}

impl ReadError {
    /// True when retrying later can succeed (a lost connection, a server restart).
    pub fn is_transient(&self) -> bool {
        matches!(self, ReadError::Store(error) if error.is_transient())
    }
}

/// Typed reads of contract values, for every [`Store`].
pub trait ContractRead {
    /// The value at `key`, or `None` when absent.
    fn read<V: Decode>(&self, key: &Key<V>) -> Result<Option<V>, ReadError>;
    /// The values at `keys`, in order, with one batched read.
    fn read_many<V: Decode>(&self, keys: &[Key<V>]) -> Result<Vec<Option<V>>, ReadError>;
}

impl<S: Store + ?Sized> ContractRead for S {
    fn read<V: Decode>(&self, key: &Key<V>) -> Result<Option<V>, ReadError> {
        match self.get(key.as_str())? {
            Some(bytes) => Ok(Some(key.decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn read_many<V: Decode>(&self, keys: &[Key<V>]) -> Result<Vec<Option<V>>, ReadError> {
        let texts: Vec<String> = keys.iter().map(|key| key.text.clone()).collect();
        let values = self.multi_get(&texts)?;
        keys.iter()
            .zip(values)
            .map(|(key, bytes)| {
                bytes
                    .map(|b| key.decode(&b))
                    .transpose()
                    .map_err(Into::into)
            })
            .collect()
    }
}

impl WriteBatch {
    /// Queue `key` set to `value` without expiry.
    pub fn put<V: Encode>(&mut self, key: Key<V>, value: &V) -> &mut Self {
        self.set(key.text, value.encode())
    }

    /// Queue `key` set to `value`, expiring after `ttl`.
    pub fn put_with_ttl<V: Encode>(&mut self, key: Key<V>, value: &V, ttl: Duration) -> &mut Self {
        self.set_with_ttl(key.text, value.encode(), ttl)
    }

    /// Queue the delete of `key`.
    pub fn remove<V>(&mut self, key: Key<V>) -> &mut Self {
        self.delete(key.text)
    }
}

impl From<CorruptRlp> for MalformedValue {
    fn from(error: CorruptRlp) -> Self {
        MalformedValue::new(
            &error.key,
            format!("corrupt {}: {}", error.what, error.reason),
        )
    }
}

/// The JSON values of the contract (serde, with the original field names).
macro_rules! json_values {
    ($($value:ty),+) => {$(
        impl Encode for $value {
            fn encode(&self) -> Vec<u8> {
                encode_json(self)
            }
        }

        impl Decode for $value {
            fn decode(key: &str, bytes: &[u8]) -> Result<Self, MalformedValue> {
                decode_json(key, bytes)
            }
        }
    )+};
}

json_values!(
    SyncProgress,
    ExecProgress,
    StageCheckpoint,
    ChainRecord,
    TrieRebuildProgress
);

impl Encode for AccountJson {
    fn encode(&self) -> Vec<u8> {
        AccountJson::encode(self)
    }
}

impl Decode for AccountJson {
    fn decode(key: &str, bytes: &[u8]) -> Result<Self, MalformedValue> {
        AccountJson::decode(key, bytes)
    }
}

/// The history value of a destroyed account.
const DESTROYED_ACCOUNT: &[u8] = b"null";

/// A history account: what block n left behind, `None` (JSON `null`) when it destroyed it.
impl Encode for Option<AccountJson> {
    fn encode(&self) -> Vec<u8> {
        self.as_ref()
            .map_or_else(|| DESTROYED_ACCOUNT.to_vec(), AccountJson::encode)
    }
}

impl Decode for Option<AccountJson> {
    fn decode(key: &str, bytes: &[u8]) -> Result<Self, MalformedValue> {
        if bytes == DESTROYED_ACCOUNT {
            return Ok(None);
        }
        AccountJson::decode(key, bytes).map(Some)
    }
}

/// A storage word: `0x` + 64 lowercase hex digits.
impl Encode for U256 {
    fn encode(&self) -> Vec<u8> {
        encode_word(self)
    }
}

impl Decode for U256 {
    fn decode(key: &str, bytes: &[u8]) -> Result<Self, MalformedValue> {
        decode_word(key, bytes)
    }
}

/// Raw bytes (bytecode under `st:code:*`).
impl Encode for Bytes {
    fn encode(&self) -> Vec<u8> {
        self.to_vec()
    }
}

impl Decode for Bytes {
    fn decode(_key: &str, bytes: &[u8]) -> Result<Self, MalformedValue> {
        Ok(Bytes::copy_from_slice(bytes))
    }
}

/// A decimal number (`blk:txhash:*`).
impl Encode for u64 {
    fn encode(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl Decode for u64 {
    fn decode(key: &str, bytes: &[u8]) -> Result<Self, MalformedValue> {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| MalformedValue::new(key, "not a decimal number"))
    }
}

/// Text (the leader lease's token).
impl Encode for String {
    fn encode(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

impl Decode for String {
    fn decode(key: &str, bytes: &[u8]) -> Result<Self, MalformedValue> {
        String::from_utf8(bytes.to_vec()).map_err(|e| MalformedValue::new(key, e))
    }
}

/// A header with its hash (keccak256 of exactly the stored bytes).
impl Encode for Sealed<Header> {
    fn encode(&self) -> Vec<u8> {
        encode_header(self.inner())
    }
}

impl Decode for Sealed<Header> {
    fn decode(key: &str, bytes: &[u8]) -> Result<Self, MalformedValue> {
        let (header, hash) = decode_header(key, bytes)?;
        Ok(Sealed::new_unchecked(header, hash))
    }
}

/// A transaction list in block-body encoding.
impl Encode for Vec<TxEnvelope> {
    fn encode(&self) -> Vec<u8> {
        encode_transactions(self)
    }
}

impl Decode for Vec<TxEnvelope> {
    fn decode(key: &str, bytes: &[u8]) -> Result<Self, MalformedValue> {
        Ok(decode_transactions(key, bytes)?)
    }
}

/// A full body `[txs, ommers, withdrawals?]`.
impl Encode for BlockBody<TxEnvelope> {
    fn encode(&self) -> Vec<u8> {
        encode_body(self)
    }
}

impl Decode for BlockBody<TxEnvelope> {
    fn decode(key: &str, bytes: &[u8]) -> Result<Self, MalformedValue> {
        Ok(decode_body(key, bytes)?)
    }
}

/// A receipt list, wrapped like the transaction list.
impl Encode for Vec<ReceiptEnvelope> {
    fn encode(&self) -> Vec<u8> {
        encode_receipts(self)
    }
}

impl Decode for Vec<ReceiptEnvelope> {
    fn decode(key: &str, bytes: &[u8]) -> Result<Self, MalformedValue> {
        Ok(decode_receipts(key, bytes)?)
    }
}

impl Encode for ExecutionRecord {
    fn encode(&self) -> Vec<u8> {
        ExecutionRecord::encode(self)
    }
}

impl Decode for ExecutionRecord {
    fn decode(key: &str, bytes: &[u8]) -> Result<Self, MalformedValue> {
        ExecutionRecord::decode(bytes).map_err(|e| MalformedValue::new(key, e))
    }
}

/// The part of an execution record pruning reads (written only as a whole record).
impl Decode for RecordSummary {
    fn decode(key: &str, bytes: &[u8]) -> Result<Self, MalformedValue> {
        RecordSummary::decode(bytes).map_err(|e| MalformedValue::new(key, e))
    }
}

impl Encode for TrieRecord {
    fn encode(&self) -> Vec<u8> {
        TrieRecord::encode(self)
    }
}

impl Decode for TrieRecord {
    fn decode(key: &str, bytes: &[u8]) -> Result<Self, MalformedValue> {
        TrieRecord::decode(bytes).map_err(|e| MalformedValue::new(key, e))
    }
}
