//! `gen --blocks N --txs-per-block M --out DIR [--seed S] [--accounts A]`: write a synthetic
//! workload chain (`DIR/genesis.json`, `DIR/chain.rlp`) for `bench`; see [`crate::gen`].

use super::CommandError;
use crate::gen::{generate, Options, Summary};

/// Generate the chain and return what was written.
pub fn run(options: &Options) -> Result<Summary, CommandError> {
    Ok(generate(options)?)
}
