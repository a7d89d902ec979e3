//! The data contract's key layout (DESIGN §3), in one place: every key the executor or the
//! syncer reads or writes is spelled here, each with the type of the value it holds
//! ([`Key`]), with the optional `storage.key_prefix` in front so several chains can share one
//! Pika. Addresses are EIP-55 checksummed with `0x` (as go-ethereum's `Address.Hex()` prints
//! them); hashes and slots are lowercase `0x` + 64 hex digits. The few places that must take a
//! key apart again (a prefix scan's results, the embedded store's history table) ask here too.

use crate::contract::{
    AccountJson, ChainRecord, ExecProgress, StageCheckpoint, SyncProgress, TrieRebuildProgress,
};
use crate::record::{ExecutionRecord, RecordSummary};
use crate::stage_id::StageId;
use crate::trie_record::{TrieNodeId, TrieRecord};
pub use crate::value::Key;
use alloy_consensus::{BlockBody, Header, ReceiptEnvelope, Sealed, TxEnvelope};
use alloy_primitives::{Address, Bytes, B256, U256};

/// Builds the store keys of the data contract under one prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (empty for none).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix every key starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key<V>(&self, rest: std::fmt::Arguments<'_>) -> Key<V> {
        Key::new(format!("{}{}", self.prefix, rest))
    }

    /// A key of about `len` characters after the prefix, spelled part by part: the state keys
    /// are built millions of times, and this skips the formatting machinery.
    fn spell(&self, len: usize) -> KeyText {
        let mut text = String::with_capacity(self.prefix.len() + len);
        text.push_str(&self.prefix);
        KeyText(text)
    }

    /// `idx:sync:progress`: JSON `{"latestSyncedBlock": N}`, written by the syncer.
    pub fn sync_progress(&self) -> Key<SyncProgress> {
        self.key(format_args!("idx:sync:progress"))
    }

    /// `blk:hdr:{n}`: the header, consensus RLP.
    pub fn header(&self, number: u64) -> Key<Sealed<Header>> {
        self.key(format_args!("blk:hdr:{number}"))
    }

    /// `blk:txs:{n}`: RLP list of the block's transactions in block-body encoding.
    pub fn transactions(&self, number: u64) -> Key<Vec<TxEnvelope>> {
        self.key(format_args!("blk:txs:{number}"))
    }

    /// `blk:body:{n}`: optional full body RLP `[txs, ommers, withdrawals?]`.
    pub fn body(&self, number: u64) -> Key<BlockBody<TxEnvelope>> {
        self.key(format_args!("blk:body:{number}"))
    }

    /// `blk:txhash:{0xhash}`: the decimal number of the block holding the transaction.
    pub fn tx_block(&self, tx_hash: &B256) -> Key<u64> {
        self.key(format_args!("blk:txhash:{tx_hash:#x}"))
    }

    /// `blk:rcpt:{n}`: RLP list of the block's receipts, wrapped like the transactions list.
    pub fn receipts(&self, number: u64) -> Key<Vec<ReceiptEnvelope>> {
        self.key(format_args!("blk:rcpt:{number}"))
    }

    /// `st:latest:acc:{Addr}`: the account's latest state as JSON.
    pub fn latest_account(&self, address: &Address) -> Key<AccountJson> {
        self.spell("st:latest:acc:".len() + ADDRESS_TEXT)
            .text("st:latest:acc:")
            .address(address)
            .typed()
    }

    /// `st:latest:stor:{Addr}:{slot}`: the slot's latest value, `0x` + 64 hex.
    pub fn latest_storage(&self, address: &Address, slot: &B256) -> Key<U256> {
        self.spell("st:latest:stor:".len() + ADDRESS_TEXT + 1 + WORD_TEXT)
            .text("st:latest:stor:")
            .address(address)
            .text(":")
            .word(slot)
            .typed()
    }

    /// `st:latest:stor:{Addr}:`: the prefix of every latest storage key of one account.
    pub fn latest_storage_prefix(&self, address: &Address) -> String {
        self.spell("st:latest:stor:".len() + ADDRESS_TEXT + 1)
            .text("st:latest:stor:")
            .address(address)
            .text(":")
            .done()
    }

    /// `st:latest:stor:`: the prefix of every latest storage key (of every account).
    pub fn latest_storage_scan_prefix(&self) -> String {
        self.spell("st:latest:stor:".len())
            .text("st:latest:stor:")
            .done()
    }

    /// The account and slot a key found under [`Self::latest_storage_scan_prefix`] names.
    pub fn parse_latest_storage(&self, key: &str) -> Option<(Address, B256)> {
        let rest = key
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix("st:latest:stor:")?;
        let (address, slot) = rest.split_at_checked(ADDRESS_TEXT)?;
        let slot = slot.strip_prefix(':')?.strip_prefix("0x")?;
        let bytes = alloy_primitives::hex::decode(slot).ok()?;
        if bytes.len() != 32 {
            return None;
        }
        Some((address.parse().ok()?, B256::from_slice(&bytes)))
    }

    /// `st:latest:acc:`: the prefix of every latest account key.
    pub fn latest_account_prefix(&self) -> String {
        self.spell("st:latest:acc:".len())
            .text("st:latest:acc:")
            .done()
    }

    /// The account a key found under [`Self::latest_account_prefix`] names.
    pub fn parse_latest_account(&self, key: &str) -> Option<Address> {
        key.strip_prefix(self.prefix.as_str())?
            .strip_prefix("st:latest:acc:")?
            .parse()
            .ok()
    }

    /// The slot a key found under [`Self::latest_storage_prefix`] of `address` names.
    pub fn parse_latest_storage_slot(&self, address: &Address, key: &str) -> Option<B256> {
        let rest = key.strip_prefix(&self.latest_storage_prefix(address))?;
        let bytes = alloy_primitives::hex::decode(rest.strip_prefix("0x")?).ok()?;
        (bytes.len() == 32).then(|| B256::from_slice(&bytes))
    }

    /// `st:code:{codeHash}`: raw bytecode; never deleted.
    pub fn code(&self, code_hash: &B256) -> Key<Bytes> {
        self.spell("st:code:".len() + WORD_TEXT)
            .text("st:code:")
            .word(code_hash)
            .typed()
    }

    /// `st:{n}:acc:{Addr}`: the account as block `n` left it (history, with TTL).
    pub fn history_account(&self, number: u64, address: &Address) -> Key<Option<AccountJson>> {
        self.spell("st::acc:".len() + NUMBER_TEXT + ADDRESS_TEXT)
            .text("st:")
            .number(number)
            .text(":acc:")
            .address(address)
            .typed()
    }

    /// `st:{n}:stor:{Addr}:{slot}`: the slot as block `n` left it (history, with TTL).
    pub fn history_storage(&self, number: u64, address: &Address, slot: &B256) -> Key<U256> {
        self.spell("st::stor::".len() + NUMBER_TEXT + ADDRESS_TEXT + WORD_TEXT)
            .text("st:")
            .number(number)
            .text(":stor:")
            .address(address)
            .text(":")
            .word(slot)
            .typed()
    }

    /// `idx:exec:progress`: JSON [`crate::contract::ExecProgress`].
    pub fn exec_progress(&self) -> Key<ExecProgress> {
        self.key(format_args!("idx:exec:progress"))
    }

    /// `idx:stage:{name}`: a stage's checkpoint, JSON [`crate::contract::StageCheckpoint`].
    pub fn stage_checkpoint(&self, stage: StageId) -> Key<StageCheckpoint> {
        self.key(format_args!("idx:stage:{}", stage.as_str()))
    }

    /// `rec:{n}`: block n's execution record (versioned binary), pruned with the window.
    pub fn record(&self, number: u64) -> Key<ExecutionRecord> {
        self.key(format_args!("rec:{number}"))
    }

    /// `rec:{n}` read for what pruning needs of it (see [`RecordSummary`]).
    pub fn record_summary(&self, number: u64) -> Key<RecordSummary> {
        self.key(format_args!("rec:{number}"))
    }

    /// `trie:acc:{path}` (account trie) or `trie:stor:{Addr}:{path}` (an account's storage
    /// trie): one node of the state tries, its RLP; the path is one lowercase hex digit per
    /// nibble, empty for a trie's root.
    pub fn trie_node(&self, node: &TrieNodeId) -> Key<Bytes> {
        let spelled = match &node.account {
            None => self
                .spell("trie:acc:".len() + node.path.len())
                .text("trie:acc:"),
            Some(address) => self
                .spell("trie:stor::".len() + ADDRESS_TEXT + node.path.len())
                .text("trie:stor:")
                .address(address)
                .text(":"),
        };
        spelled.nibbles(&node.path).typed()
    }

    /// `trie:stor:{Addr}:`: the prefix of every node of one account's storage trie.
    pub fn storage_trie_prefix(&self, address: &Address) -> String {
        self.spell("trie:stor::".len() + ADDRESS_TEXT)
            .text("trie:stor:")
            .address(address)
            .text(":")
            .done()
    }

    /// `trie:pending`: the merkle stage's record of the trie change being written (node
    /// changes with pre-values); present only while a write is under way or was cut short.
    pub fn trie_pending(&self) -> Key<TrieRecord> {
        self.key(format_args!("trie:pending"))
    }

    /// `trie:`: the prefix of every key of the state tries (nodes and `trie:pending`).
    pub fn trie_prefix(&self) -> String {
        self.spell("trie:".len()).text("trie:").done()
    }

    /// `idx:trie:rebuild`: how far `trie rebuild` got (JSON [`TrieRebuildProgress`]), so a
    /// rerun continues after the last finished bucket; present only while a rebuild is
    /// unfinished.
    pub fn trie_rebuild(&self) -> Key<TrieRebuildProgress> {
        self.key(format_args!("idx:trie:rebuild"))
    }

    /// `lock:leader`: the leader lease (the holder's token, with expiry).
    pub fn leader_lock(&self) -> Key<String> {
        self.key(format_args!("lock:leader"))
    }

    /// `idx:chain`: the chain this store was initialised for, JSON [`crate::contract::ChainRecord`].
    pub fn chain(&self) -> Key<ChainRecord> {
        self.key(format_args!("idx:chain"))
    }
}

/// A history key (`st:{n}:acc:…`, `st:{n}:stor:…`) split after its `st:{n}:` part; the two
/// parts spell the key again. The embedded store keeps each block's history under the first
/// part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryKey<'a> {
    /// The key up to and including `st:{n}:` (with the key prefix in front).
    pub block: &'a str,
    /// The rest: `acc:{Addr}` or `stor:{Addr}:{slot}`.
    pub name: &'a str,
}

impl<'a> HistoryKey<'a> {
    /// The split of `key` when it is a history key: the first `st:` followed by a decimal
    /// block number (no leading zero), `:`, then `acc:` or `stor:`.
    pub fn split(key: &'a str) -> Option<Self> {
        let bytes = key.as_bytes();
        let mut from = 0;
        while let Some(found) = key[from..].find("st:") {
            let number_at = from + found + 3;
            let digits = bytes[number_at..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let canonical = digits == 1 || (digits > 1 && bytes[number_at] != b'0');
            let name_at = number_at + digits + 1;
            if canonical
                && bytes.get(number_at + digits) == Some(&b':')
                && (key[name_at..].starts_with("acc:") || key[name_at..].starts_with("stor:"))
            {
                return Some(Self {
                    block: &key[..name_at],
                    name: &key[name_at..],
                });
            }
            from = number_at;
        }
        None
    }
}

/// Characters of a checksummed address with `0x`.
const ADDRESS_TEXT: usize = 42;
/// Characters of a 32-byte word with `0x`.
const WORD_TEXT: usize = 66;
/// Characters of the longest decimal `u64`.
const NUMBER_TEXT: usize = 20;

/// A key under construction (see [`Keys::spell`]).
struct KeyText(String);

impl KeyText {
    fn text(mut self, part: &str) -> Self {
        self.0.push_str(part);
        self
    }

    fn number(mut self, number: u64) -> Self {
        use std::fmt::Write;
        // Writing to a String cannot fail.
        let _ = write!(self.0, "{number}");
        self
    }

    fn address(mut self, address: &Address) -> Self {
        with_checksummed(address, |spelled| self.0.push_str(spelled));
        self
    }

    fn nibbles(mut self, nibbles: &[u8]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.0.extend(
            nibbles
                .iter()
                .map(|&n| char::from(HEX[usize::from(n & 0xf)])),
        );
        self
    }

    fn word(mut self, word: &B256) -> Self {
        self.0
            .push_str(alloy_primitives::hex::Buffer::<32, true>::new().format(&word.0));
        self
    }

    fn done(self) -> String {
        self.0
    }

    fn typed<V>(self) -> Key<V> {
        Key::new(self.0)
    }
}

/// Addresses whose EIP-55 spelling each thread remembers: the spelling costs a keccak, and the
/// stages spell the same hot accounts (tokens, pools, senders) over and over.
const CHECKSUM_CACHE_ENTRIES: usize = 65_536;

thread_local! {
    static CHECKSUMS: std::cell::RefCell<lru::LruCache<Address, String>> =
        std::cell::RefCell::new(lru::LruCache::new(
            std::num::NonZeroUsize::new(CHECKSUM_CACHE_ENTRIES).unwrap_or(std::num::NonZeroUsize::MIN),
        ));
}

/// Call `use_spelling` with `address` as EIP-55 checksummed hex with `0x`.
fn with_checksummed(address: &Address, use_spelling: impl FnOnce(&str)) {
    CHECKSUMS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let spelled = cache.get_or_insert_ref(address, || address.to_checksum(None));
        use_spelling(spelled);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{address, b256};

    #[test]
    fn history_keys_split_after_the_block_part() {
        let key = "bsc:st:1024:stor:0xAb:0x01";
        assert_eq!(
            HistoryKey::split(key),
            Some(HistoryKey {
                block: "bsc:st:1024:",
                name: "stor:0xAb:0x01",
            })
        );
        let account = HistoryKey::split("st:0:acc:0xAb").expect("a history key");
        assert_eq!((account.block, account.name), ("st:0:", "acc:0xAb"));
        // A prefix that looks like a key part is skipped for the real one.
        let nested = HistoryKey::split("st:x:st:7:acc:0x1").expect("a history key");
        assert_eq!((nested.block, nested.name), ("st:x:st:7:", "acc:0x1"));
        for other in [
            "st:latest:acc:0xAb",
            "st:latest:stor:0xAb:0x01",
            "st:code:0x01",
            "st:07:acc:0xAb",
            "st:7:code:0x01",
            "st::acc:0xAb",
            "rec:7",
            "blk:hdr:7",
        ] {
            assert_eq!(HistoryKey::split(other), None, "{other}");
        }
    }

    #[test]
    fn keys_follow_the_contract_spelling() {
        let keys = Keys::new("bsc:");
        // EIP-55 example address from the EIP itself.
        let addr = address!("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed");
        let slot = b256!("00000000000000000000000000000000000000000000000000000000000000ab");
        assert_eq!(
            keys.latest_account(&addr).as_str(),
            "bsc:st:latest:acc:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
        );
        assert_eq!(
            keys.latest_storage(&addr, &slot).as_str(),
            "bsc:st:latest:stor:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed:0x00000000000000000000000000000000000000000000000000000000000000ab"
        );
        assert_eq!(
            keys.history_account(18_446_744_073_709_551_615, &addr)
                .as_str(),
            "bsc:st:18446744073709551615:acc:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
        );
        assert_eq!(
            keys.latest_storage_prefix(&addr).as_str(),
            "bsc:st:latest:stor:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed:"
        );
        assert_eq!(
            keys.code(&slot).as_str(),
            "bsc:st:code:0x00000000000000000000000000000000000000000000000000000000000000ab"
        );
        assert_eq!(keys.header(7).as_str(), "bsc:blk:hdr:7");
        assert_eq!(
            keys.parse_latest_storage(keys.latest_storage(&addr, &slot).as_str()),
            Some((addr, slot))
        );
        assert!(keys
            .latest_storage(&addr, &slot)
            .as_str()
            .starts_with(&keys.latest_storage_scan_prefix()));
        for other in [
            "st:latest:stor:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed:0x00ab",
            "bsc:st:latest:stor:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed0x00",
            "bsc:st:latest:acc:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        ] {
            assert_eq!(keys.parse_latest_storage(other), None, "{other}");
        }
        assert_eq!(keys.trie_rebuild().as_str(), "bsc:idx:trie:rebuild");
        assert_eq!(keys.trie_prefix(), "bsc:trie:");
        assert_eq!(
            Keys::default().sync_progress().as_str(),
            "idx:sync:progress"
        );
        assert_eq!(
            keys.history_storage(9, &addr, &slot).as_str(),
            format!("bsc:st:9:stor:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed:{slot:#x}")
        );
    }
}
