//! The crate's errors: [`TrieError`] for stored nodes that are not a valid trie and change sets
//! that break the contract, [`UpdateError`] adding the node source's own error, [`BuildError`]
//! for a from-scratch build fed out of order.

use alloy_primitives::{Address, B256};

use crate::NodeKey;

/// The stored trie is not consistent, or a change set breaks the update's contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrieError {
    /// A node's parent references it by hash but the source holds nothing at its key.
    #[error("{key} is missing: its parent references hash {hash}")]
    MissingNode {
        /// The missing node.
        key: NodeKey,
        /// The hash its parent references.
        hash: B256,
    },
    /// A stored node does not hash to what its parent references.
    #[error("{key} does not hash to {expected}, the hash its parent references")]
    NodeHashMismatch {
        /// The node.
        key: NodeKey,
        /// The hash its parent references.
        expected: B256,
    },
    /// A stored value is not the RLP of a trie node.
    #[error("{key} is not a trie node: {source}")]
    UndecodableNode {
        /// The node.
        key: NodeKey,
        /// The decoder's complaint.
        source: alloy_rlp::Error,
    },
    /// A stored node decodes but cannot stand where it is stored.
    #[error("{key} is not a valid node at its path: {reason}")]
    MalformedNode {
        /// The node.
        key: NodeKey,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The source answered a batch with a different number of values than keys asked.
    #[error("the node source returned {got} values for {asked} keys")]
    WrongValueCount {
        /// Keys asked.
        asked: usize,
        /// Values returned.
        got: usize,
    },
    /// An account's leaf does not hold an RLP account.
    #[error("account {address}: its leaf is not an account: {source}")]
    MalformedAccount {
        /// The account.
        address: Address,
        /// The decoder's complaint.
        source: alloy_rlp::Error,
    },
    /// An account's leaf and its storage trie disagree on the storage root.
    #[error(
        "account {address}: its leaf says storage root {in_leaf}, its stored storage trie has \
         root {in_trie}"
    )]
    StorageRootMismatch {
        /// The account.
        address: Address,
        /// The storage root in the account's leaf (the empty root for an absent account).
        in_leaf: B256,
        /// The root of the storage trie as stored.
        in_trie: B256,
    },
    /// Slots get values for an account that neither exists nor is set by the change set.
    #[error("account {address}: slots set but the account does not exist")]
    StorageWithoutAccount {
        /// The account.
        address: Address,
    },
    /// A deleted account's storage trie would not be empty after the update: the caller did not
    /// pass all its slots as zero.
    #[error(
        "account {address} is deleted but its storage trie keeps root {storage_root}: every slot \
         of a deleted account must be passed as zero"
    )]
    StorageNotCleared {
        /// The account.
        address: Address,
        /// The storage root it would keep.
        storage_root: B256,
    },
    /// An update needed a node it had not read: a defect of the crate, not of the store.
    #[error("{key} was needed but not read (internal error)")]
    NotRead {
        /// The node.
        key: NodeKey,
    },
}

/// Why an update, a dry root computation or a trie walk failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError<E> {
    /// The node source failed (a retry may help: ask the source's error).
    #[error("reading trie nodes: {0}")]
    Source(#[source] E),
    /// The stored trie or the change set is invalid (a retry does not help).
    #[error(transparent)]
    Trie(#[from] TrieError),
}

/// A from-scratch build was fed keys out of order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// Keys must be strictly ascending (hashed keys, compared as bytes).
    #[error("trie build: key {key} after {previous}: keys must be strictly ascending")]
    KeyOrder {
        /// The key before.
        previous: B256,
        /// The key given.
        key: B256,
    },
}
