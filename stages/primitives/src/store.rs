//! The store interface every stage talks to.
//!
//! Stage logic depends on this trait alone, never on a Redis client or an on-disk engine: the
//! `evm-executor` package provides the two backends (`pika` and `embedded`). Keys are plain
//! strings (already prefixed by [`crate::keys::Keys`]); values are raw bytes.

use std::time::Duration;

/// One write inside a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Set `key` to `value`, expiring after `ttl` when given.
    Set {
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
    },
    /// Delete `key` (a no-op when it is absent).
    Delete { key: String },
}

/// An ordered list of writes sent together (pipelined on Pika, one transaction on the embedded
/// store). Backends promise order, not atomicity: the crash rule (DESIGN §2) never relies on a
/// batch landing whole, so every batch must be safe to replay. A store that applies parts of a
/// batch in parallel (a Redis Cluster, one pipeline per node) keeps the order the crash rule
/// needs at the batch's fences ([`WriteBatch::fence`]): every write before a fence lands before
/// any write after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<WriteOp>,
    /// Positions in `ops` where an ordered part ends.
    fences: Vec<usize>,
    /// Unix milliseconds after which no part of the batch may be sent (a leader's write
    /// deadline); `None` for no limit.
    deadline_ms: Option<u64>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forbid sending any part of the batch after `unix_ms`.
    pub fn set_deadline(&mut self, unix_ms: u64) {
        self.deadline_ms = Some(unix_ms);
    }

    /// The deadline set with [`WriteBatch::set_deadline`].
    pub fn deadline(&self) -> Option<u64> {
        self.deadline_ms
    }

    /// Queue a set without expiry.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(WriteOp::Set {
            key: key.into(),
            value: value.into(),
            ttl: None,
        });
        self
    }

    /// Queue a set that expires after `ttl`.
    pub fn set_with_ttl(
        &mut self,
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
        ttl: Duration,
    ) -> &mut Self {
        self.ops.push(WriteOp::Set {
            key: key.into(),
            value: value.into(),
            ttl: Some(ttl),
        });
        self
    }

    /// Queue a delete.
    pub fn delete(&mut self, key: impl Into<String>) -> &mut Self {
        self.ops.push(WriteOp::Delete { key: key.into() });
        self
    }

    /// An ordering point: every write queued so far lands before any write queued after it,
    /// also on a store that applies parts of a batch in parallel.
    pub fn fence(&mut self) -> &mut Self {
        let at = self.ops.len();
        if at > 0 && self.fences.last() != Some(&at) {
            self.fences.push(at);
        }
        self
    }

    /// The writes in the parts the fences cut them into, in order (one part without fences).
    pub fn parts(&self) -> impl Iterator<Item = &[WriteOp]> {
        let ends = self
            .fences
            .iter()
            .copied()
            .chain(std::iter::once(self.ops.len()));
        let mut start = 0;
        ends.filter_map(move |end| {
            let part = &self.ops[start..end];
            start = end;
            (!part.is_empty()).then_some(part)
        })
    }

    /// Queue every write of `other` after these, in order, its fences kept, with a fence
    /// between the two.
    pub fn extend(&mut self, other: WriteBatch) {
        self.fence();
        let offset = self.ops.len();
        self.ops.extend(other.ops);
        self.fences
            .extend(other.fences.into_iter().map(|at| at + offset));
    }

    /// The queued writes, in order.
    pub fn ops(&self) -> &[WriteOp] {
        &self.ops
    }

    /// Number of queued writes.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A failure of the store itself (not of the data in it).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The batch's write deadline passed before (all of) it could be sent.
    #[error("store write not sent ({backend}): its deadline passed while retrying")]
    DeadlinePassed { backend: &'static str },
    /// The server could not be reached or the connection broke; waiting may fix it.
    #[error("store unreachable ({backend}): {message}")]
    Unavailable {
        backend: &'static str,
        message: String,
    },
    /// The store answered with an error or its files are damaged; waiting will not fix it.
    #[error("store error ({backend}): {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
}

impl StoreError {
    /// True when retrying later can succeed (a lost connection, a server restart).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// A key-value store with the semantics of the Redis commands Pika supports (GET, MGET, SET with
/// EX, DEL, SCAN with MATCH). Implementations are shared between threads.
pub trait Store: Send + Sync {
    /// A short name for logs and `status` (`pika`, `embedded`).
    fn backend_name(&self) -> &'static str;

    /// The value at `key`, or `None` when absent or expired.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// The values at `keys`, in the same order (one round trip where the backend allows).
    fn multi_get(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError>;

    /// Apply `batch` in order.
    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError>;

    /// True when every [`Self::write`] lands whole or not at all, even across a crash (one
    /// transaction on the embedded store). A stage may then leave out what it writes only to
    /// finish a batch a crash cut short (the merkle stage's `trie:pending` record). False by
    /// default: the crash rule assumes order only.
    fn writes_atomically(&self) -> bool {
        false
    }

    /// Every live key that starts with `prefix`, in no particular order.
    fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError>;

    /// Set `key` to `value` with expiry `ttl` only when it is absent (Redis `SET NX EX`);
    /// true when it was set. Used for the leader lease.
    fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError>;

    /// Set one key without expiry.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        batch.set(key, value);
        self.write(&batch)
    }

    /// Delete one key.
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        batch.delete(key);
        self.write(&batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_cut_a_batch_into_ordered_parts() {
        let mut batch = WriteBatch::new();
        batch.fence();
        batch.set("a", b"1".to_vec()).set("b", b"2".to_vec());
        batch.fence().fence();
        batch.delete("c");
        let mut tail = WriteBatch::new();
        tail.set("d", b"4".to_vec()).fence().set("e", b"5".to_vec());
        batch.extend(tail);
        let parts: Vec<Vec<&str>> = batch
            .parts()
            .map(|part| {
                part.iter()
                    .map(|op| match op {
                        WriteOp::Set { key, .. } | WriteOp::Delete { key } => key.as_str(),
                    })
                    .collect()
            })
            .collect();
        assert_eq!(parts, [vec!["a", "b"], vec!["c"], vec!["d"], vec!["e"]]);
        assert_eq!(WriteBatch::new().parts().count(), 0);
    }
}
