//! `gen --blocks N --txs-per-block M --out DIR [--seed S] [--accounts A] [--fork-at F
//! --fork-seed T]`: write a synthetic workload chain (`DIR/genesis.json`, `DIR/chain.rlp`) for
//! `bench`, or a second branch of one; see [`crate::gen`].

use super::CommandError;
use crate::gen::{generate_branch, Fork, Options, Summary};

/// Generate the chain (with `fork`, its second branch) and return what was written.
pub fn run(options: &Options, fork: Option<Fork>) -> Result<Summary, CommandError> {
    Ok(generate_branch(options, fork)?)
}
