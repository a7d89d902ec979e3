//! The stages, one file each, in pipeline order.

pub mod commit;
pub mod execution;
pub mod headers;
pub mod merkle;
pub mod prune;
pub mod receipts;
pub mod senders;
