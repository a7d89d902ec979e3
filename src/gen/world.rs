//! The generator's world state: accounts, storage and code in memory, readable by revm, with
//! the Merkle-Patricia state root kept incrementally: each account's storage root and trie leaf
//! are cached and recomputed only when a block touches the account, and the tries themselves
//! ([`Trie`]) rehash only the subtries that changed. A slot lives only in its account's storage
//! trie (read back by hashing the slot), so a state of millions of slots is held once.

use super::trie::Trie;
use alloy_genesis::GenesisAccount;
use alloy_primitives::map::HashMap;
use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_rlp::Decodable;
use alloy_trie::{TrieAccount, EMPTY_ROOT_HASH, KECCAK_EMPTY};
use revm::bytecode::Bytecode;
use revm::database::BundleState;
use revm::state::AccountInfo;
use std::convert::Infallible;

/// One account: its fields and, once it has had any, its storage.
#[derive(Debug, Clone)]
struct Account {
    balance: U256,
    nonce: u64,
    code_hash: B256,
    /// Boxed: most accounts never have storage, and a million of them should stay small.
    storage: Option<Box<Storage>>,
}

/// An account's storage: its trie of non-zero slots (keccak(slot) -> RLP of the value) and the
/// root last computed.
#[derive(Debug, Clone)]
struct Storage {
    trie: Trie,
    root: B256,
}

impl Account {
    fn new(balance: U256, nonce: u64, code_hash: B256) -> Self {
        Self {
            balance,
            nonce,
            code_hash,
            storage: None,
        }
    }

    fn set_slot(&mut self, slot: U256, value: U256) {
        let hashed = keccak256(slot.to_be_bytes::<32>());
        let storage = self.storage.get_or_insert_with(|| {
            Box::new(Storage {
                trie: Trie::default(),
                root: EMPTY_ROOT_HASH,
            })
        });
        if value.is_zero() {
            storage.trie.remove(&hashed);
        } else {
            storage.trie.insert(hashed, alloy_rlp::encode(value));
        }
    }

    fn slot(&self, slot: U256) -> U256 {
        let hashed = keccak256(slot.to_be_bytes::<32>());
        self.storage
            .as_ref()
            .and_then(|storage| storage.trie.get(&hashed))
            .and_then(|rlp| U256::decode(&mut &rlp[..]).ok())
            .unwrap_or_default()
    }

    fn clear_storage(&mut self) {
        self.storage = None;
    }

    fn compute_storage_root(&mut self) {
        if let Some(storage) = &mut self.storage {
            storage.root = storage.trie.root();
        }
    }

    fn leaf(&self) -> Vec<u8> {
        alloy_rlp::encode(TrieAccount {
            nonce: self.nonce,
            balance: self.balance,
            storage_root: self
                .storage
                .as_ref()
                .map_or(EMPTY_ROOT_HASH, |storage| storage.root),
            code_hash: self.code_hash,
        })
    }
}

/// Accounts, code and block hashes in memory, with cached trie leaves.
#[derive(Debug, Default)]
pub struct World {
    accounts: HashMap<Address, Account>,
    codes: HashMap<B256, Bytecode>,
    block_hashes: Vec<B256>,
    /// keccak(address) -> RLP of the account.
    account_trie: Trie,
}

impl World {
    /// Add a genesis account (code and storage included) and cache its leaf.
    pub fn insert_account(
        &mut self,
        address: Address,
        balance: U256,
        nonce: u64,
        code: &[u8],
        storage: impl IntoIterator<Item = (U256, U256)>,
    ) {
        let code_hash = if code.is_empty() {
            KECCAK_EMPTY
        } else {
            let hash = keccak256(code);
            self.codes
                .insert(hash, Bytecode::new_raw(code.to_vec().into()));
            hash
        };
        let mut account = Account::new(balance, nonce, code_hash);
        for (slot, value) in storage {
            account.set_slot(slot, value);
        }
        account.compute_storage_root();
        self.account_trie.insert(keccak256(address), account.leaf());
        self.accounts.insert(address, account);
    }

    /// Add an account of a genesis allocation.
    pub fn insert_genesis_account(&mut self, address: Address, account: &GenesisAccount) {
        let storage = account
            .storage
            .iter()
            .flatten()
            .map(|(slot, value)| (U256::from_be_bytes(slot.0), U256::from_be_bytes(value.0)));
        self.insert_account(
            address,
            account.balance,
            account.nonce.unwrap_or_default(),
            account.code.as_ref().map_or(&[][..], |code| &code[..]),
            storage,
        );
    }

    /// Record the hash of the next block (block numbers start at 0).
    pub fn push_block_hash(&mut self, hash: B256) {
        self.block_hashes.push(hash);
    }

    /// Apply a block's changes (a bundle merged with plain-state retention) and refresh the
    /// trie leaves of every account it touched.
    pub fn apply(&mut self, bundle: &BundleState) {
        for (hash, code) in &bundle.contracts {
            self.codes.insert(*hash, code.clone());
        }
        for (address, change) in &bundle.state {
            let hashed_address = keccak256(address);
            let Some(info) = &change.info else {
                self.accounts.remove(address);
                self.account_trie.remove(&hashed_address);
                continue;
            };
            let account = self
                .accounts
                .entry(*address)
                .or_insert_with(|| Account::new(info.balance, info.nonce, info.code_hash));
            account.balance = info.balance;
            account.nonce = info.nonce;
            account.code_hash = info.code_hash;
            let wiped = change.was_destroyed();
            if wiped {
                account.clear_storage();
            }
            let mut storage_changed = wiped;
            for (slot, value) in &change.storage {
                if wiped || value.is_changed() {
                    account.set_slot(*slot, value.present_value);
                    storage_changed = true;
                }
            }
            if storage_changed {
                account.compute_storage_root();
            }
            self.account_trie.insert(hashed_address, account.leaf());
        }
    }

    /// The state root.
    pub fn state_root(&mut self) -> B256 {
        self.account_trie.root()
    }

    /// Accounts in the state.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }
}

impl revm::DatabaseRef for World {
    type Error = Infallible;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Infallible> {
        Ok(self.accounts.get(&address).map(|account| AccountInfo {
            balance: account.balance,
            nonce: account.nonce,
            code_hash: account.code_hash,
            code: None,
            ..AccountInfo::default()
        }))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Infallible> {
        Ok(self.codes.get(&code_hash).cloned().unwrap_or_default())
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Infallible> {
        Ok(self
            .accounts
            .get(&address)
            .map_or(U256::ZERO, |account| account.slot(index)))
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Infallible> {
        Ok(usize::try_from(number)
            .ok()
            .and_then(|n| self.block_hashes.get(n).copied())
            .unwrap_or_default())
    }
}
