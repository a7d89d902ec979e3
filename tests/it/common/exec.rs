//! What `run` must leave in the store, derived from the fixture files alone: receipts whose
//! trie root (computed here, by alloy-trie, over the stored bytes) is the header's
//! receiptsRoot, the latest state of a geth state dump, history entries that lead to it, and
//! the execution progress.

use super::chain::{
    consensus_bytes, latest_account_key, latest_storage_key, ordered_root, tx_type, GenesisFile,
    HeadState, RawBlock, HEADER_GAS_USED_INDEX, HEADER_RECEIPTS_ROOT_INDEX,
};
use super::redis_server::RedisServer;
use super::rlp::{first_item, RlpItem};
use super::{assert_same_keys, raw_fields_of, raw_json_fields, value};
use alloy_primitives::{keccak256, Address, B256, U256};
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

/// The all-zero hash, as account JSON spells an uncomputed storage root.
pub const ZERO_HASH: &str = "0x0000000000000000000000000000000000000000000000000000000000000000";
/// `state.history_ttl`'s default, 60 minutes, in seconds.
pub const DEFAULT_HISTORY_TTL_SECS: i64 = 3600;
/// The key `run` reports its progress under.
pub const EXEC_PROGRESS_KEY: &str = "idx:exec:progress";

/// `idx:exec:progress` as the data contract defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecProgress {
    /// `latestExecutedBlock`.
    pub latest_executed_block: u64,
    /// `totalTxsExecuted`.
    pub total_txs_executed: u64,
}

/// Read `idx:exec:progress`, checking it has exactly the contract's three integer fields.
pub fn exec_progress(store: &BTreeMap<String, Vec<u8>>) -> ExecProgress {
    let fields = raw_json_fields(store, EXEC_PROGRESS_KEY);
    let names: BTreeSet<&str> = fields.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "lastExecutionTime",
            "latestExecutedBlock",
            "totalTxsExecuted"
        ]),
        "{EXEC_PROGRESS_KEY} fields"
    );
    let integer = |name: &str| {
        fields[name].parse::<u64>().unwrap_or_else(|_| {
            panic!(
                "{EXEC_PROGRESS_KEY}.{name} = {} is no integer",
                fields[name]
            )
        })
    };
    integer("lastExecutionTime");
    ExecProgress {
        latest_executed_block: integer("latestExecutedBlock"),
        total_txs_executed: integer("totalTxsExecuted"),
    }
}

/// `idx:exec:progress.lastExecutionTime`, unix seconds.
pub fn last_execution_time(store: &BTreeMap<String, Vec<u8>>) -> u64 {
    exec_progress(store);
    let fields = raw_json_fields(store, EXEC_PROGRESS_KEY);
    fields["lastExecutionTime"]
        .parse()
        .expect("lastExecutionTime is an integer")
}

/// The current time in unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// How many transactions `blocks` carry.
pub fn tx_count(blocks: &[RawBlock<'_>]) -> u64 {
    blocks
        .iter()
        .map(|block| block.transactions().len() as u64)
        .sum()
}

/// The fields of a receipt item of `blk:rcpt:{n}`: a legacy receipt's list, or the list
/// after a typed receipt's type byte; with the receipt's type.
fn receipt_fields<'a>(receipt: &RlpItem<'a>) -> (u8, Vec<RlpItem<'a>>) {
    if receipt.is_list {
        (0, receipt.elements())
    } else {
        let (kind, rest) = receipt
            .payload
            .split_first()
            .expect("a typed receipt has a type byte");
        let list = first_item(rest);
        assert_eq!(
            list.encoded.len(),
            rest.len(),
            "bytes after a typed receipt"
        );
        (*kind, list.elements())
    }
}

/// For every block in `blocks`, `blk:rcpt:{n}` exists, is one RLP list with a receipt per
/// transaction of the same type, its last cumulative gas is the header's gasUsed, and its
/// trie root is the header's receiptsRoot. No other `blk:rcpt:*` key exists.
pub fn assert_receipts_match_headers(store: &BTreeMap<String, Vec<u8>>, blocks: &[RawBlock<'_>]) {
    let expected_keys: BTreeSet<String> = blocks
        .iter()
        .map(|block| format!("blk:rcpt:{}", block.number()))
        .collect();
    let actual_keys: BTreeSet<String> = store
        .keys()
        .filter(|key| key.starts_with("blk:rcpt:"))
        .cloned()
        .collect();
    assert_same_keys(&actual_keys, &expected_keys);
    for block in blocks {
        let n = block.number();
        let key = format!("blk:rcpt:{n}");
        let bytes = value(store, &key);
        let list = first_item(bytes);
        assert!(
            list.is_list && list.encoded.len() == bytes.len(),
            "{key} is not one RLP list"
        );
        let receipts = list.elements();
        let txs = block.transactions();
        assert_eq!(
            receipts.len(),
            txs.len(),
            "{key}: one receipt per transaction"
        );
        let mut last_cumulative_gas = 0;
        for (index, (receipt, tx)) in receipts.iter().zip(&txs).enumerate() {
            let (kind, fields) = receipt_fields(receipt);
            assert_eq!(kind, tx_type(tx), "{key}: receipt {index}'s type");
            assert_eq!(fields.len(), 4, "{key}: receipt {index}'s field count");
            last_cumulative_gas = fields[1].as_u64();
        }
        assert_eq!(
            last_cumulative_gas,
            block.header_u64(HEADER_GAS_USED_INDEX),
            "{key}: last cumulative gas vs the header's gasUsed"
        );
        let items: Vec<&[u8]> = receipts.iter().map(consensus_bytes).collect();
        assert_eq!(
            ordered_root(&items),
            block.header_hash(HEADER_RECEIPTS_ROOT_INDEX),
            "{key}: receipts trie root vs block {n}'s receiptsRoot"
        );
    }
}

/// `st:latest:*` holds exactly the dumped state: the same accounts (balance, nonce, code
/// hash, the dump's storage root), their code under `st:code`, and the same storage slots with
/// the same values; nothing else.
pub fn assert_state_is_head_state(store: &BTreeMap<String, Vec<u8>>, head: &HeadState) {
    let mut expected_keys = BTreeSet::new();
    for (address, account) in &head.accounts {
        let key = latest_account_key(address);
        expected_keys.insert(key.clone());
        let fields = raw_json_fields(store, &key);
        let names: BTreeSet<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            BTreeSet::from(["balance", "codeHash", "nonce", "storageRoot"]),
            "{key} fields"
        );
        assert_eq!(fields["balance"], account.balance, "{key} balance");
        assert_eq!(fields["nonce"], account.nonce.to_string(), "{key} nonce");
        assert_eq!(
            fields["codeHash"],
            format!("\"{}\"", account.code_hash),
            "{key} codeHash"
        );
        assert_eq!(
            fields["storageRoot"],
            format!("\"{}\"", account.storage_root),
            "{key} storageRoot"
        );
        if !account.code.is_empty() {
            assert_eq!(
                format!("{:#x}", keccak256(&account.code)),
                account.code_hash,
                "the dump's code hash of {address}"
            );
            let code_key = format!("st:code:{}", account.code_hash);
            assert_eq!(value(store, &code_key), account.code, "{code_key}");
        }
        for (slot, word) in &account.storage {
            let slot_key = latest_storage_key(address, slot);
            assert_eq!(
                String::from_utf8_lossy(value(store, &slot_key)),
                format!("{word:#x}"),
                "{slot_key}"
            );
            expected_keys.insert(slot_key);
        }
    }
    let actual_keys: BTreeSet<String> = store
        .keys()
        .filter(|key| key.starts_with("st:latest:"))
        .cloned()
        .collect();
    assert_same_keys(&actual_keys, &expected_keys);
}

/// A history key `st:{n}:{entity}` split into `n` and the entity (`acc:{Addr}` or
/// `stor:{Addr}:{slot}`); `None` for other keys, `st:latest:*` and `st:code:*` among them.
pub fn history_entry(key: &str) -> Option<(u64, &str)> {
    let rest = key.strip_prefix("st:")?;
    let (number, entity) = rest.split_once(':')?;
    Some((number.parse().ok()?, entity))
}

/// The history left by executing blocks 1..=`last_block` leads to the latest state: every
/// `st:{n}:*` key has 1 <= n <= last_block; the newest entry of each account or slot holds its
/// latest value (`null` for an account gone from the state, the zero word for a cleared slot);
/// and every account and slot whose value differs between `genesis` and `head` has history.
pub fn assert_history_leads_to_latest(
    store: &BTreeMap<String, Vec<u8>>,
    genesis: &GenesisFile,
    head: &HeadState,
    last_block: u64,
) {
    let mut newest: BTreeMap<&str, (u64, &[u8])> = BTreeMap::new();
    for (key, bytes) in store {
        let Some((n, entity)) = history_entry(key) else {
            continue;
        };
        assert!(
            (1..=last_block).contains(&n),
            "{key}: history of a block that was not executed"
        );
        assert!(
            entity.starts_with("acc:") || entity.starts_with("stor:"),
            "{key}: unknown history entity"
        );
        let entry = newest.entry(entity).or_insert((n, bytes));
        if n > entry.0 {
            *entry = (n, bytes);
        }
    }
    for (entity, (n, bytes)) in &newest {
        let latest_key = format!("st:latest:{entity}");
        let history_key = format!("st:{n}:{entity}");
        match (store.get(&latest_key), entity.starts_with("acc:")) {
            (Some(latest), true) => {
                // History values carry the zero storage root (DESIGN §3 / README contract);
                // every other field is the latest value's.
                let mut history = raw_fields_of(&history_key, bytes);
                let mut latest = raw_fields_of(&latest_key, latest);
                assert_eq!(
                    history.remove("storageRoot"),
                    Some(format!("\"{ZERO_HASH}\"")),
                    "{history_key} storageRoot"
                );
                latest.remove("storageRoot");
                assert_eq!(
                    history, latest,
                    "{history_key} is the newest history of {latest_key}"
                );
            }
            (Some(latest), false) => assert_eq!(
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(latest),
                "{history_key} is the newest history of {latest_key}"
            ),
            (None, true) => assert_eq!(
                String::from_utf8_lossy(bytes),
                "null",
                "{history_key}: the account is gone from the latest state"
            ),
            (None, false) => assert_eq!(
                String::from_utf8_lossy(bytes),
                ZERO_HASH,
                "{history_key}: the slot is gone from the latest state"
            ),
        }
    }
    let has_history = |key: &str| {
        let entity = key.strip_prefix("st:latest:").expect("a latest key");
        newest.contains_key(entity)
    };
    let genesis_accounts: BTreeMap<Address, _> = genesis
        .accounts
        .iter()
        .map(|account| (account.address, account))
        .collect();
    for (address, account) in &head.accounts {
        let before = genesis_accounts.get(address);
        let balance = U256::from_str(&account.balance).expect("decimal balance");
        let changed = before.is_none_or(|before| {
            before.balance != balance
                || before.nonce != account.nonce
                || before.code != account.code
        });
        let key = latest_account_key(address);
        assert!(
            !changed || has_history(&key),
            "{key} changed but has no history"
        );
        let genesis_storage: BTreeMap<B256, B256> = before
            .map(|before| before.storage.iter().copied().collect())
            .unwrap_or_default();
        let slots: BTreeSet<&B256> = account
            .storage
            .keys()
            .chain(genesis_storage.keys())
            .collect();
        for slot in slots {
            let key = latest_storage_key(address, slot);
            let changed = account.storage.get(slot) != genesis_storage.get(slot);
            assert!(
                !changed || has_history(&key),
                "{key} changed but has no history"
            );
        }
    }
    for (address, account) in &genesis_accounts {
        if !head.accounts.contains_key(address) {
            let key = account.account_key();
            assert!(has_history(&key), "{key} left the state but has no history");
        }
    }
}

/// In a Redis store: every history key `st:{n}:*` expires within the default history TTL,
/// and no latest state, code or receipt key expires.
pub fn assert_only_history_expires(server: &RedisServer, store: &BTreeMap<String, Vec<u8>>) {
    let (history, durable): (Vec<String>, Vec<String>) = store
        .keys()
        .filter(|key| key.starts_with("st:") || key.starts_with("blk:rcpt:"))
        .cloned()
        .partition(|key| history_entry(key).is_some());
    assert!(!history.is_empty(), "no history keys at all");
    for (key, ttl) in history.iter().zip(server.ttls(&history)) {
        assert!(
            (1..=DEFAULT_HISTORY_TTL_SECS).contains(&ttl),
            "{key} has TTL {ttl}, expected 1..={DEFAULT_HISTORY_TTL_SECS}"
        );
    }
    for (key, ttl) in durable.iter().zip(server.ttls(&durable)) {
        assert_eq!(ttl, -1, "{key} must not expire");
    }
}

/// A snapshot with the wall-clock times a run writes taken out, so two runs can be compared:
/// `lastExecutionTime` in `idx:exec:progress` and `time` in each `idx:stage:*` checkpoint
/// (the data contract's only time fields). Panics when the progress lacks its time.
pub fn without_run_times(mut snapshot: BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    for (key, bytes) in &mut snapshot {
        let field = if key == EXEC_PROGRESS_KEY {
            "lastExecutionTime"
        } else if key.starts_with("idx:stage:") {
            "time"
        } else {
            continue;
        };
        let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes)
            .unwrap_or_else(|e| panic!("{key} is not a JSON object: {e}"));
        let removed = object.remove(field);
        assert!(
            removed.as_ref().is_some_and(serde_json::Value::is_u64),
            "{key}.{field} is {removed:?}, expected unix seconds"
        );
        *bytes = serde_json::to_vec(&object).expect("re-encode JSON");
    }
    snapshot
}
