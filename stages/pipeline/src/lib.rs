//! evm-executor's staged pipeline (DESIGN §2): seven concerns, each in one place.
//!
//! - [`stage`]: the [`stage::Stage`] trait, the context the stages share, their errors.
//! - [`stages`]: one file per stage, each with its work and its unwind:
//!
//!   ```text
//!   headers → senders → execution → merkle ─┬→ commit ─┬→ prune
//!                                           └→ receipts ┘
//!   ```
//! - [`state`]: the state layers execution reads through (overlay, caches, store), with revm's
//!   state kept between blocks.
//! - [`startup`]: where each stage resumes, with the crash repair; [`reorg`]: the fork point
//!   and the unwind; [`serial`]: the stages on one thread, block by block; [`tries`]: a whole
//!   state's tries at once (ef-test); [`trie_rebuild`]: the tries built from an existing
//!   `st:latest` in bounded memory (`trie rebuild`); [`genesis_state`]: a genesis file's state
//!   and tries written as the file streams, in bounded memory (`init`).
//! - [`meter`], [`metrics`] and [`progress`]: where the time goes, every Prometheus metric,
//!   and the sampler that feeds them and logs progress.
//! - `test_utils` (tests only): the harness of the unit tests beside each stage, a fixture
//!   chain in the in-memory store.
//!
//! Execution writes each block's execution record as one value before anything else of the
//! block is written; commit and receipts apply records idempotently and only then move their
//! checkpoints (the crash rule). The daemon (in the binary) only spawns, connects and joins
//! the stages.

pub mod genesis_state;
pub mod meter;
pub mod metrics;
pub mod progress;
pub mod reorg;
pub mod serial;
pub mod stage;
pub mod stages;
pub mod startup;
pub mod state;
#[cfg(test)]
pub(crate) mod test_utils;
pub mod trie_rebuild;
pub mod tries;
