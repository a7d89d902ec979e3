//! The data contract of evm-executor (DESIGN §3) and the store it lives in: everything the
//! stages read and write, independent of any store client or EVM.
//!
//! - [`store`]: the small [`store::Store`] trait the stages talk to, and [`memory`], an
//!   in-memory store with the same semantics for tests.
//! - [`keys`]: every key of the contract with the type of its value; [`value`]: how each value
//!   type is stored, typed reads ([`value::ContractRead`]) and writes; [`contract`]: the JSON
//!   values.
//! - [`block`]: RLP codecs for headers, bodies, transaction and receipt lists; [`load`] reads a
//!   block as the syncer stored it and recovers its senders.
//! - [`record`]: the execution record, one block's whole outcome as one value; [`trie_record`]:
//!   the merkle stage's record of a batch's trie node changes.
//! - [`stage_id`]: the names of the pipeline stages; [`clock`]: Unix time.

pub mod block;
pub mod clock;
pub mod contract;
pub mod keys;
pub mod load;
pub mod memory;
pub mod record;
pub mod stage_id;
pub mod storage_only;
pub mod store;
pub mod trie_record;
pub mod value;
