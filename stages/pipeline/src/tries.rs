//! The state tries of a whole state written at once, for a state held in memory: `ef-test`'s
//! pre-state, and a genesis held whole ([`build_genesis_tries`], the tests' reference for what
//! `init` writes); `init` builds a genesis file's tries as it streams
//! ([`crate::genesis_state`]) and `trie rebuild` a store's `st:latest`
//! ([`crate::trie_rebuild`]), both in parts. The merkle stage keeps them up to date from there.

use alloy_primitives::{map::HashMap, Address, Bytes, B256, U256};
use evm::genesis::GenesisBlock;
use primitives::keys::Keys;
use primitives::stage_id::StageId;
use primitives::store::WriteBatch;
use primitives::trie_record::TrieNodeId;
use state_trie::{build_state, AccountFields, BuildError, NodeKey};

/// Tries built from scratch: their root, every account's storage root, and their nodes.
#[derive(Debug, Clone)]
pub struct BuiltTries {
    /// The state root.
    pub state_root: B256,
    /// Every account's storage root.
    pub storage_roots: HashMap<Address, B256>,
    /// Every stored node.
    pub nodes: Vec<(TrieNodeId, Bytes)>,
}

impl BuiltTries {
    /// Queue every node into `batch`, and the merkle checkpoint at `block` (`hash`), last.
    pub fn queue(&self, keys: &Keys, block: u64, hash: B256, batch: &mut WriteBatch) {
        for (node, value) in &self.nodes {
            batch.put(keys.trie_node(node), value);
        }
        let checkpoint = primitives::contract::StageCheckpoint {
            block,
            hash,
            time: primitives::clock::unix_now(),
        };
        batch.put(keys.stage_checkpoint(StageId::Merkle), &checkpoint);
    }

    /// The storage root of `address` (the empty trie's when it has no storage).
    pub fn storage_root(&self, address: &Address) -> B256 {
        self.storage_roots
            .get(address)
            .copied()
            .unwrap_or(alloy_trie::EMPTY_ROOT_HASH)
    }
}

/// Build the tries of a state held in memory: each account's address, fields and slots.
pub fn build_tries<I, S>(accounts: I) -> Result<BuiltTries, BuildError>
where
    I: IntoIterator<Item = (Address, AccountFields, S)>,
    S: IntoIterator<Item = (B256, U256)>,
{
    let built = build_state(accounts)?;
    Ok(BuiltTries {
        state_root: built.state_root,
        storage_roots: built.storage_roots.into_iter().collect(),
        nodes: built
            .nodes
            .into_iter()
            .map(|(key, value)| (node_id(&key), value))
            .collect(),
    })
}

/// Build the tries of `genesis`'s allocation (its root not checked here).
pub fn build_genesis_tries(genesis: &GenesisBlock) -> Result<BuiltTries, BuildError> {
    build_tries(genesis.accounts().map(|account| {
        let fields = AccountFields {
            nonce: account.nonce,
            balance: account.balance,
            code_hash: account.code_hash,
        };
        (account.address, fields, account.slots)
    }))
}

/// The data contract's name of a trie node.
pub(crate) fn node_id(key: &NodeKey) -> TrieNodeId {
    TrieNodeId {
        account: key.address(),
        path: key.path().to_vec(),
    }
}
