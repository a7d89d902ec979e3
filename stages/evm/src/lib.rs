//! Block execution for evm-executor: what a chain's rules make of a block, with no store and
//! no pipeline in sight.
//!
//! - [`chain`]: chain specs (fork schedule, blob parameters), built in or from a genesis;
//!   [`chain_data`]: the built-in chains' data (genesis files, BSC forks and upgrades).
//! - [`genesis`]: genesis state, state root and genesis header.
//! - [`validate`]: header rules relative to the parent; [`ethash`]: the proof-of-work
//!   difficulty they require; [`ommers`]: ommer validity.
//! - [`network`]: the fork schedules the Ethereum test suites name.
//! - [`execute`]: one block through revm over any revm database, verified against its header;
//!   [`verify`]: what the outcome must match in the header; [`error`]: why a block fails.
//! - [`bsc`]: BNB Smart Chain's rules (Parlia system transactions, upgrades, precompiles).
//! - [`dao`]: the DAO fork's balance move, at the start of the fork block.
//! - [`collision`]: EIP-7610's storage part, which revm does not check; [`eip1283`]:
//!   Constantinople's SSTORE metering, which revm does not have.

pub mod bsc;
pub mod chain;
pub mod chain_data;
pub mod collision;
pub mod dao;
pub mod eip1283;
pub mod error;
pub mod ethash;
pub mod execute;
pub mod genesis;
pub mod network;
pub mod ommers;
pub mod validate;
pub mod verify;
