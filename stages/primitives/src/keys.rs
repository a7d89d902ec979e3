//! The data contract's key layout (DESIGN §3), in one place.
//!
//! Every key the executor or the syncer reads or writes is built here, with the optional
//! `storage.key_prefix` in front so several chains can share one Pika. Addresses are EIP-55
//! checksummed with `0x` (as go-ethereum's `Address.Hex()` prints them); hashes and slots are
//! lowercase `0x` + 64 hex digits.

use alloy_primitives::{Address, B256};

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

    fn key(&self, rest: std::fmt::Arguments<'_>) -> String {
        format!("{}{}", self.prefix, rest)
    }

    /// A key of about `len` characters after the prefix, spelled part by part: the state keys
    /// are built millions of times, and this skips the formatting machinery.
    fn spell(&self, len: usize) -> KeyText {
        let mut text = String::with_capacity(self.prefix.len() + len);
        text.push_str(&self.prefix);
        KeyText(text)
    }

    /// `idx:sync:progress`: JSON `{"latestSyncedBlock": N}`, written by the syncer.
    pub fn sync_progress(&self) -> String {
        self.key(format_args!("idx:sync:progress"))
    }

    /// `blk:hdr:{n}`: the header, consensus RLP.
    pub fn header(&self, number: u64) -> String {
        self.key(format_args!("blk:hdr:{number}"))
    }

    /// `blk:txs:{n}`: RLP list of the block's transactions in block-body encoding.
    pub fn transactions(&self, number: u64) -> String {
        self.key(format_args!("blk:txs:{number}"))
    }

    /// `blk:body:{n}`: optional full body RLP `[txs, ommers, withdrawals?]`.
    pub fn body(&self, number: u64) -> String {
        self.key(format_args!("blk:body:{number}"))
    }

    /// `blk:txhash:{0xhash}`: the decimal number of the block holding the transaction.
    pub fn tx_block(&self, tx_hash: &B256) -> String {
        self.key(format_args!("blk:txhash:{tx_hash:#x}"))
    }

    /// `blk:rcpt:{n}`: RLP list of the block's receipts, wrapped like the transactions list.
    pub fn receipts(&self, number: u64) -> String {
        self.key(format_args!("blk:rcpt:{number}"))
    }

    /// `st:latest:acc:{Addr}`: the account's latest state as JSON.
    pub fn latest_account(&self, address: &Address) -> String {
        self.spell("st:latest:acc:".len() + ADDRESS_TEXT)
            .text("st:latest:acc:")
            .address(address)
            .done()
    }

    /// `st:latest:stor:{Addr}:{slot}`: the slot's latest value, `0x` + 64 hex.
    pub fn latest_storage(&self, address: &Address, slot: &B256) -> String {
        self.spell("st:latest:stor:".len() + ADDRESS_TEXT + 1 + WORD_TEXT)
            .text("st:latest:stor:")
            .address(address)
            .text(":")
            .word(slot)
            .done()
    }

    /// `st:latest:stor:{Addr}:`: the prefix of every latest storage key of one account.
    pub fn latest_storage_prefix(&self, address: &Address) -> String {
        self.spell("st:latest:stor:".len() + ADDRESS_TEXT + 1)
            .text("st:latest:stor:")
            .address(address)
            .text(":")
            .done()
    }

    /// `st:code:{codeHash}`: raw bytecode; never deleted.
    pub fn code(&self, code_hash: &B256) -> String {
        self.spell("st:code:".len() + WORD_TEXT)
            .text("st:code:")
            .word(code_hash)
            .done()
    }

    /// `st:{n}:acc:{Addr}`: the account as block `n` left it (history, with TTL).
    pub fn history_account(&self, number: u64, address: &Address) -> String {
        self.spell("st::acc:".len() + NUMBER_TEXT + ADDRESS_TEXT)
            .text("st:")
            .number(number)
            .text(":acc:")
            .address(address)
            .done()
    }

    /// `st:{n}:stor:{Addr}:{slot}`: the slot as block `n` left it (history, with TTL).
    pub fn history_storage(&self, number: u64, address: &Address, slot: &B256) -> String {
        self.spell("st::stor::".len() + NUMBER_TEXT + ADDRESS_TEXT + WORD_TEXT)
            .text("st:")
            .number(number)
            .text(":stor:")
            .address(address)
            .text(":")
            .word(slot)
            .done()
    }

    /// `idx:exec:progress`: JSON [`crate::contract::ExecProgress`].
    pub fn exec_progress(&self) -> String {
        self.key(format_args!("idx:exec:progress"))
    }

    /// `idx:stage:{name}`: a stage's checkpoint, JSON [`crate::contract::StageCheckpoint`].
    pub fn stage_checkpoint(&self, stage: &str) -> String {
        self.key(format_args!("idx:stage:{stage}"))
    }

    /// `rec:{n}`: block n's execution record (versioned binary), pruned with the window.
    pub fn record(&self, number: u64) -> String {
        self.key(format_args!("rec:{number}"))
    }

    /// `lock:leader`: the leader lease (the holder's token, with expiry).
    pub fn leader_lock(&self) -> String {
        self.key(format_args!("lock:leader"))
    }

    /// `idx:chain`: the chain this store was initialised for, JSON [`crate::contract::ChainRecord`].
    pub fn chain(&self) -> String {
        self.key(format_args!("idx:chain"))
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

    fn word(mut self, word: &B256) -> Self {
        self.0
            .push_str(alloy_primitives::hex::Buffer::<32, true>::new().format(&word.0));
        self
    }

    fn done(self) -> String {
        self.0
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
    fn keys_follow_the_contract_spelling() {
        let keys = Keys::new("bsc:");
        // EIP-55 example address from the EIP itself.
        let addr = address!("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed");
        let slot = b256!("00000000000000000000000000000000000000000000000000000000000000ab");
        assert_eq!(
            keys.latest_account(&addr),
            "bsc:st:latest:acc:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
        );
        assert_eq!(
            keys.latest_storage(&addr, &slot),
            "bsc:st:latest:stor:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed:0x00000000000000000000000000000000000000000000000000000000000000ab"
        );
        assert_eq!(
            keys.history_account(18_446_744_073_709_551_615, &addr),
            "bsc:st:18446744073709551615:acc:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
        );
        assert_eq!(
            keys.latest_storage_prefix(&addr),
            "bsc:st:latest:stor:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed:"
        );
        assert_eq!(
            keys.code(&slot),
            "bsc:st:code:0x00000000000000000000000000000000000000000000000000000000000000ab"
        );
        assert_eq!(keys.header(7), "bsc:blk:hdr:7");
        assert_eq!(Keys::default().sync_progress(), "idx:sync:progress");
        assert_eq!(
            keys.history_storage(9, &addr, &slot),
            format!("bsc:st:9:stor:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed:{slot:#x}")
        );
    }
}
