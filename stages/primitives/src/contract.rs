//! The JSON values of the data contract (DESIGN §3): progress markers, stage checkpoints,
//! accounts and storage words, exactly as the original Go service and its consumers spell them.

use crate::storage_only::StorageOnlyAccounts;
use alloy_primitives::{B256, U256};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// keccak256 of the empty byte string: the code hash of an account without code.
pub const EMPTY_CODE_HASH: B256 = alloy_primitives::KECCAK256_EMPTY;

/// A value in the store that does not decode as the contract says.
#[derive(Debug, Clone, thiserror::Error)]
#[error("malformed value at {key}: {reason}")]
pub struct MalformedValue {
    /// The store key holding the value.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl MalformedValue {
    /// A malformed-value error for `key`.
    pub fn new(key: &str, reason: impl std::fmt::Display) -> Self {
        Self {
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// `idx:sync:progress`, written by the syncer: the highest block whose data is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncProgress {
    /// Highest block number with header and transactions in the store.
    #[serde(rename = "latestSyncedBlock")]
    pub latest_synced_block: u64,
}

/// `idx:exec:progress`, as the original service wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecProgress {
    /// The last block whose state is completely in `st:latest`.
    #[serde(rename = "latestExecutedBlock")]
    pub latest_executed_block: u64,
    /// Unix seconds of the last update.
    #[serde(rename = "lastExecutionTime")]
    pub last_execution_time: u64,
    /// Transactions executed since the store was initialised.
    #[serde(rename = "totalTxsExecuted")]
    pub total_txs_executed: u64,
}

/// `idx:stage:{name}`: how far one stage has durably got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageCheckpoint {
    /// The last block the stage finished.
    pub block: u64,
    /// That block's hash (so a reorg below the checkpoint is noticed).
    pub hash: B256,
    /// Unix seconds when the checkpoint was written.
    pub time: u64,
}

/// `idx:trie:rebuild`: how far an unfinished `trie rebuild` got. The rebuild builds the tries
/// of the state at `block` bucket by bucket (accounts grouped by the first byte of their
/// hashed address); a rerun for the same block continues after the last finished bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrieRebuildProgress {
    /// The block whose state (`st:latest`) the tries are built for.
    pub block: u64,
    /// That block's hash.
    pub hash: B256,
    /// Buckets finished: their storage tries, account-trie nodes and account JSON written.
    pub finished: u32,
}

/// `idx:chain`: the chain a store was initialised for, so later commands need no chain flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainRecord {
    /// The chain's name from the config that ran `init` (`bsc`, `mainnet`, `custom`, …).
    pub name: String,
    /// EIP-155 chain id.
    #[serde(rename = "chainId")]
    pub chain_id: u64,
    /// Hash of block 0.
    #[serde(rename = "genesisHash")]
    pub genesis_hash: B256,
    /// The genesis file's `config` object, verbatim: the fork schedule.
    pub config: serde_json::Value,
    /// EIP-7610: the genesis accounts with storage but no code or nonce, with a witness slot
    /// each (see [`crate::storage_only`]). Omitted when there are none, so such records are
    /// unchanged; a record without the field (also one written before it existed) means none.
    #[serde(
        rename = "storageOnlyAccounts",
        default,
        skip_serializing_if = "StorageOnlyAccounts::is_empty"
    )]
    pub storage_only_accounts: StorageOnlyAccounts,
}

/// `st:latest:acc:{Addr}` and `st:{n}:acc:{Addr}`: an account as JSON, the balance a decimal JSON
/// number of any size (as go-ethereum marshals a `big.Int`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountJson {
    /// Balance in wei.
    pub balance: U256,
    /// Transaction count (or creation count for contracts).
    pub nonce: u64,
    /// keccak256 of the code; [`EMPTY_CODE_HASH`] without code.
    pub code_hash: B256,
    /// The storage trie root; the zero hash unless it is computed.
    pub storage_root: B256,
}

#[derive(Deserialize)]
struct AccountJsonWire<'a> {
    #[serde(borrow)]
    balance: &'a RawValue,
    nonce: u64,
    #[serde(rename = "codeHash")]
    code_hash: B256,
    #[serde(rename = "storageRoot")]
    storage_root: B256,
}

impl AccountJson {
    /// The JSON text stored for this account.
    pub fn encode(&self) -> Vec<u8> {
        format!(
            r#"{{"balance":{},"nonce":{},"codeHash":"{:#x}","storageRoot":"{:#x}"}}"#,
            self.balance, self.nonce, self.code_hash, self.storage_root
        )
        .into_bytes()
    }

    /// Parse the JSON stored at `key`.
    pub fn decode(key: &str, bytes: &[u8]) -> Result<Self, MalformedValue> {
        let wire: AccountJsonWire<'_> =
            serde_json::from_slice(bytes).map_err(|e| MalformedValue::new(key, e))?;
        let text = wire.balance.get();
        // A decimal JSON number; tolerate a quoted decimal or 0x-hex string for robustness
        // against other writers, but never a fraction or exponent.
        let unquoted = text.trim_matches('"');
        let balance = if let Some(hex) = unquoted.strip_prefix("0x") {
            U256::from_str_radix(hex, 16)
        } else {
            U256::from_str_radix(unquoted, 10)
        }
        .map_err(|e| MalformedValue::new(key, format!("balance {text}: {e}")))?;
        Ok(Self {
            balance,
            nonce: wire.nonce,
            code_hash: wire.code_hash,
            storage_root: wire.storage_root,
        })
    }
}

/// A storage word as the contract writes it: `0x` + 64 lowercase hex digits.
pub fn encode_word(value: &U256) -> Vec<u8> {
    let word = B256::from(*value);
    alloy_primitives::hex::Buffer::<32, true>::new()
        .format(&word.0)
        .as_bytes()
        .to_vec()
}

/// Parse a storage word written by [`encode_word`] (or any `0x`-hex of at most 64 digits).
pub fn decode_word(key: &str, bytes: &[u8]) -> Result<U256, MalformedValue> {
    let text = std::str::from_utf8(bytes).map_err(|e| MalformedValue::new(key, e))?;
    let hex = text
        .strip_prefix("0x")
        .ok_or_else(|| MalformedValue::new(key, format!("storage word {text:?} lacks 0x")))?;
    if hex.is_empty() || hex.len() > 64 {
        return Err(MalformedValue::new(
            key,
            format!("storage word {text:?} has a bad length"),
        ));
    }
    U256::from_str_radix(hex, 16)
        .map_err(|e| MalformedValue::new(key, format!("storage word {text:?}: {e}")))
}

/// Parse a JSON value of the contract stored at `key`.
pub fn decode_json<T: serde::de::DeserializeOwned>(
    key: &str,
    bytes: &[u8],
) -> Result<T, MalformedValue> {
    serde_json::from_slice(bytes).map_err(|e| MalformedValue::new(key, e))
}

/// The JSON text of a contract value.
pub fn encode_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail: no maps with non-string keys, no I/O.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_balance_is_a_bare_decimal_number_of_any_size() {
        let account = AccountJson {
            balance: U256::MAX,
            nonce: 3,
            code_hash: EMPTY_CODE_HASH,
            storage_root: B256::ZERO,
        };
        let text = String::from_utf8(account.encode()).unwrap();
        assert!(text.starts_with(
            r#"{"balance":115792089237316195423570985008687907853269984665640564039457584007913129639935,"nonce":3,"#
        ));
        assert_eq!(AccountJson::decode("k", text.as_bytes()).unwrap(), account);
    }

    #[test]
    fn account_written_by_go_decodes() {
        // go-ethereum marshals big.Int as a JSON number; field order may differ.
        let go = br#"{"nonce":1,"balance":1000000000000000000000000,"storageRoot":"0x0000000000000000000000000000000000000000000000000000000000000000","codeHash":"0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"}"#;
        let account = AccountJson::decode("k", go).unwrap();
        assert_eq!(account.balance, U256::from(10u64).pow(U256::from(24)));
        assert_eq!(account.code_hash, EMPTY_CODE_HASH);
    }

    #[test]
    fn malformed_values_name_their_key() {
        let err =
            AccountJson::decode("st:latest:acc:0xAb", br#"{"balance":1.5,"nonce":0}"#).unwrap_err();
        assert!(err.to_string().contains("st:latest:acc:0xAb"), "{err}");
        let err = decode_word("st:latest:stor:x:y", b"12").unwrap_err();
        assert!(err.to_string().contains("st:latest:stor:x:y"), "{err}");
    }

    #[test]
    fn words_are_64_lowercase_hex_digits() {
        let word = encode_word(&U256::from(0xABu64));
        assert_eq!(
            word,
            b"0x00000000000000000000000000000000000000000000000000000000000000ab".to_vec()
        );
        assert_eq!(decode_word("k", &word).unwrap(), U256::from(0xABu64));
    }

    #[test]
    fn progress_json_uses_the_original_field_names() {
        let text = encode_json(&ExecProgress {
            latest_executed_block: 5,
            last_execution_time: 6,
            total_txs_executed: 7,
        });
        assert_eq!(
            text,
            br#"{"latestExecutedBlock":5,"lastExecutionTime":6,"totalTxsExecuted":7}"#.to_vec()
        );
        let sync: SyncProgress = decode_json("k", br#"{"latestSyncedBlock": 42}"#).unwrap();
        assert_eq!(sync.latest_synced_block, 42);
    }
}
