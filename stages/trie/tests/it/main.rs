//! state-trie's tests through its public API: random states and update sequences checked
//! against alloy-trie's independent root computation and against from-scratch builds, batching
//! of reads, the cache, errors, and real fixtures (Ethereum mainnet genesis, geth's test chain).

mod batching;
mod errors;
mod fixtures;
mod model;
mod random_updates;
