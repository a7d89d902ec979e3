//! The Ethereum state trie kept node by node in a key-value store: the account trie and one
//! storage trie per account, updated incrementally from state changes, built from scratch in
//! bounded memory, and read level by level in batches.
//!
//! # Layout
//!
//! Every trie node is stored under a [`NodeKey`]: its trie (`Account`, or `Storage(address)`)
//! and its path, the nibbles from its trie's root to the node (empty for the root). Stored are
//! the nodes Ethereum references by hash, i.e. whose RLP is 32 bytes or more, and each trie's
//! root whatever its size; a node under 32 bytes lives inlined in its parent's RLP, as Ethereum
//! encodes it, and has no key of its own. An empty trie has no node.
//!
//! The value of a node is its RLP, exactly as Ethereum hashes it: keccak256 of the value is the
//! hash its parent references (for a root: the trie's root hash, so the account trie's root
//! node hashes to the state root and a storage trie's to the account's `storageRoot`). Account
//! trie keys are keccak256(address), leaves hold the RLP account `[nonce, balance, storageRoot,
//! codeHash]`; storage trie keys are keccak256(slot), leaves hold the RLP of the value.
//!
//! The layout is canonical: the set of (key, value) pairs depends on the state alone, so tries
//! updated block by block and tries built from scratch over the same state are byte-identical.
//!
//! # Use
//!
//! - [`StateTrie::update`] applies a [`StateChanges`] to the stored tries through a
//!   [`NodeSource`] and returns a [`TrieUpdate`]: the state root, the touched accounts' storage
//!   roots and the [`NodeChange`]s with pre-values (write them, undo them with the pre-values).
//!   [`StateTrie::root_after`] gives the root only (no writes). Both read one level per call.
//! - [`AccountTrieBuilder`] and [`StorageTrieBuilder`] build tries from leaves in hashed-key
//!   order, handing out nodes as they complete; [`build_state`] builds a small state in memory.
//! - [`storage_trie_nodes`] lists one storage trie's nodes.
//! - [`MemoryNodes`] is a source in memory for tests.

#![warn(missing_docs)]

mod builder;
mod cache;
mod error;
mod key;
mod level;
mod memory;
mod node;
mod partial;
mod reveal;
mod source;
mod state_changes;
mod update;
mod walk;

pub use builder::{build_state, AccountTrieBuilder, BuiltState, StorageTrieBuilder};
pub use error::{BuildError, TrieError, UpdateError};
pub use key::{path_from_hex, path_to_hex, NodeKey, PathHexError, MAX_PATH_NIBBLES};
pub use memory::MemoryNodes;
pub use source::NodeSource;
pub use state_changes::{AccountChange, AccountFields, AccountUpdate, StateChanges};
pub use update::{NodeChange, StateTrie, TrieUpdate, DEFAULT_CACHED_LEVELS};
pub use walk::storage_trie_nodes;
