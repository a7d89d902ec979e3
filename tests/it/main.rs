//! The integration tests, one binary (so the shared harness in `common` compiles once): the
//! CLI and the daemon against real `redis-server`s and the embedded store, the conformance
//! suite, the fixture chains, generated chains, BSC rules, crash, reorg and replica tests.

#[macro_use]
mod common;

mod bench;
mod bsc_chain;
mod bsc_execution;
mod bsc_hertzfix;
mod builtin_chains;
mod chains;
mod cluster;
mod codec_roundtrip;
mod config;
mod daemon;
mod deployments;
mod ef_tests;
mod eip7610;
mod embedded_store;
mod gen;
mod head;
mod init_import;
mod reorg;
mod replicas;
mod takeover;
mod tls_acl;
mod trie;
