//! How the crate reads stored trie nodes: [`NodeSource`], implemented by the caller over its
//! store, asked for many nodes at once (one call per trie level of an update).

use alloy_primitives::Bytes;

use crate::NodeKey;

/// Reads stored trie nodes in batches.
///
/// The value of a node is its RLP encoding, exactly as written by the crate (see the crate
/// docs for the layout). An update asks for every node it needs at one depth, across the account
/// trie and all storage tries involved, in one call, so a remote store answers one round trip
/// per level.
pub trait NodeSource {
    /// Why a read failed (the store's error; the crate passes it through untouched).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The stored values of `keys`, in the same order: `None` where no node is stored.
    fn nodes(&self, keys: &[NodeKey]) -> Result<Vec<Option<Bytes>>, Self::Error>;
}
