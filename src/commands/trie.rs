//! `trie rebuild`: build the state tries from the store's `st:latest` (see
//! [`pipeline::trie_rebuild`]), so a store written without them (by the original service, or
//! with `state.verify_root = "off"`) is verified from then on. Refused while a daemon holds
//! the leader lease (`lock:leader`), unless forced: a daemon committing blocks meanwhile would
//! change the state under the build.

use super::{CommandError, Context};
use pipeline::trie_rebuild::{rebuild as build, RebuildReport, RebuildSettings};
use primitives::value::ContractRead;
use std::path::PathBuf;

/// How to run `trie rebuild`.
#[derive(Debug, Clone, Default)]
pub struct RebuildOptions {
    /// Run even while `lock:leader` is held.
    pub force: bool,
    /// Where the bucket files go: a directory of their own made inside (default: the system
    /// temp dir).
    pub work_dir: Option<PathBuf>,
    /// Stop after this many buckets (a rerun continues).
    pub stop_after_buckets: Option<u32>,
}

/// Build the tries of the configured store's `st:latest`.
pub fn rebuild(ctx: &Context, options: &RebuildOptions) -> Result<RebuildReport, CommandError> {
    if ctx.chain_record()?.is_some() {
        ctx.checked_chain()?;
    }
    let lock = ctx.keys.leader_lock();
    if let Some(holder) = ctx.store.read(&lock)? {
        if !options.force {
            return Err(CommandError::LeaderActive {
                key: lock.into_string(),
                holder,
            });
        }
        tracing::warn!(%holder, "--force: rebuilding while {lock} is held");
    }
    // A directory of this process's own: a killed run leaves its directory behind, and a
    // rerun must not trip over it.
    let work_dir = options
        .work_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("evm-executor-trie-rebuild-{}", std::process::id()));
    let settings = RebuildSettings {
        work_dir,
        stop_after: options.stop_after_buckets,
    };
    Ok(build(ctx.store.as_ref(), &ctx.keys, &settings)?)
}
