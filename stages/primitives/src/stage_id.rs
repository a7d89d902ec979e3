//! The pipeline's stages by name; the name is the stable part of the checkpoint key
//! `idx:stage:{name}`.

/// One stage of the pipeline (DESIGN §2), in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StageId {
    /// Loads and checks headers and bodies.
    Headers,
    /// Recovers transaction senders.
    Senders,
    /// Executes blocks and writes execution records.
    Execution,
    /// Updates the state tries and checks each block's state root.
    Merkle,
    /// Applies records to `st:latest` and history.
    Commit,
    /// Writes `blk:rcpt`.
    Receipts,
    /// Deletes what fell out of the window.
    Prune,
}

impl StageId {
    /// Every stage, in pipeline order.
    pub const ALL: [StageId; 7] = [
        StageId::Headers,
        StageId::Senders,
        StageId::Execution,
        StageId::Merkle,
        StageId::Commit,
        StageId::Receipts,
        StageId::Prune,
    ];

    /// The stable name used in keys, logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            StageId::Headers => "headers",
            StageId::Senders => "senders",
            StageId::Execution => "execution",
            StageId::Merkle => "merkle",
            StageId::Commit => "commit",
            StageId::Receipts => "receipts",
            StageId::Prune => "prune",
        }
    }
}

impl std::fmt::Display for StageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
