//! evm-executor: the binary's library half: configuration, store backends, logging and the
//! command implementations. The stage logic lives in the
//! workspace crates under `stages/` (`pipeline`, `evm`, `primitives`, `state-trie`).

/// jemalloc for every allocation of the program (and its tests).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

pub mod commands;
pub mod config;
pub mod daemon;
pub mod eftest;
pub mod gen;
pub mod http;
pub mod lease;
pub mod logging;
pub mod store;
