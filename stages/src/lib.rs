//! The stages crate: everything evm-executor knows about blocks, state and the store's data
//! contract, independent of any particular store client.
//!
//! - [`store`]: the small store trait the stages talk to.
//! - [`keys`] and [`contract`]: the data contract (key layout, JSON values).
//! - [`block`]: RLP codecs for headers, bodies, transaction and receipt lists.
//! - [`chain`]: chain specs (fork schedule, blob parameters).
//! - [`chain_data`]: the built-in chains' data (genesis files, BSC forks and upgrades).
//! - [`genesis`]: genesis state, state root and genesis header.
//! - [`stage_id`]: the names of the pipeline stages.

pub mod block;
pub mod bsc;
pub mod chain;
pub mod chain_data;
pub mod collision;
pub mod commit;
pub mod contract;
pub mod execute;
pub mod genesis;
pub mod keys;
pub mod load;
pub mod metrics;
pub mod pipeline;
pub mod precompiles;
pub mod record;
pub mod stage_id;
pub mod state;
pub mod store;
pub mod validate;
