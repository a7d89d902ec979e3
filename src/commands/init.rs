//! `init`: the genesis state into `st:latest:*` and `st:code:*` with its tries, the genesis
//! header into `blk:hdr:0`, `idx:exec:progress` at block 0, and last the chain record
//! `idx:chain` (its presence marks a complete init, so an interrupted init is simply rerun).
//!
//! The genesis is streamed into the store in bounded memory
//! ([`pipeline::genesis_state`]); this module decides whether a read writes, and checks the
//! genesis against the configured chain and the store.
//!
//! A built-in chain's genesis is built into the program ([`evm::chain_data`]); `--genesis
//! FILE` gives a custom chain's (or a built-in chain's, which must then be the network's
//! genesis). With `--adopt` nothing is written but the chain record: the store is one the
//! original service filled, taken over as [`super::adopt`] describes.

use super::{adopt, chain_record, check_config_matches, setting_for, CommandError, Context};
use crate::config::VerifyRootConfig;
use alloy_consensus::{Header, Sealed};
use alloy_primitives::B256;
use evm::chain::ChainSpec;
use evm::chain_data::{self, BuiltInChain};
use evm::genesis::stream::GenesisHead;
use evm::genesis::{GenesisError, GenesisSummary};
use pipeline::genesis_state::{load_genesis, GenesisChecks, GenesisTarget, LoadCounts, LoadError};
use pipeline::trie_rebuild::RebuildError;
use primitives::clock::unix_now;
use primitives::contract::{ExecProgress, StageCheckpoint};
use primitives::stage_id::StageId;
use primitives::store::WriteBatch;
use primitives::value::ContractRead;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where `init` takes the genesis from.
#[derive(Debug, Clone, Copy)]
pub enum GenesisSource<'a> {
    /// The genesis of the built-in chain `chain.name` names.
    BuiltIn,
    /// A geth-style genesis file.
    File(&'a Path),
}

/// What `init` did.
#[derive(Debug, Clone, PartialEq)]
pub struct InitOutcome {
    /// The chain id of the genesis.
    pub chain_id: u64,
    /// The genesis state root.
    pub state_root: B256,
    /// The genesis block hash.
    pub genesis_hash: B256,
    /// Accounts in the allocation.
    pub accounts: u64,
    /// What the load read and wrote; `None` when the store already held this genesis (or was
    /// taken over) and no state was written.
    pub written: Option<LoadCounts>,
    /// With `--adopt`: the executed block the store was taken over at, and its hash.
    pub adopted: Option<(u64, B256)>,
}

/// Initialise the store from a genesis file.
pub fn run(ctx: &Context, genesis_path: &Path) -> Result<InitOutcome, CommandError> {
    init(ctx, GenesisSource::File(genesis_path), false)
}

/// Initialise the store with the genesis from `source`, or with `adopt` take over a store the
/// original service filled for that genesis.
///
/// A store with nothing of a genesis yet (no chain record, no header 0, no executed block) is
/// written as the file is read, once; a built-in chain's file, or a store holding something
/// already, is first read without writing, so that a genesis refused for its hash writes
/// nothing. A custom chain's file whose `config` follows `alloc` is read twice too.
pub fn init(
    ctx: &Context,
    source: GenesisSource<'_>,
    adopt: bool,
) -> Result<InitOutcome, CommandError> {
    let name = ctx.config.chain.name.clone();
    let input = Input::new(&name, source)?;
    let outcome = |summary: &GenesisSummary, written, adopted| InitOutcome {
        chain_id: summary.chain_id,
        state_root: summary.header.state_root,
        genesis_hash: summary.hash,
        accounts: summary.accounts,
        written,
        adopted,
    };
    if adopt {
        let summary = input.load(ctx, Mode::Read)?.summary;
        let adoption = adopt::adopt(ctx, &name, &summary)?;
        return Ok(outcome(
            &summary,
            None,
            Some((adoption.block, adoption.hash)),
        ));
    }

    let record = ctx.chain_record()?;
    let progress = ctx.store.read(&ctx.keys.exec_progress())?;
    let stored_header = ctx.store.read(&ctx.keys.header(0))?;
    let executed = progress.as_ref().map_or(0, |p| p.latest_executed_block);
    let mode = if record.is_none() && executed == 0 && stored_header.is_none() {
        Mode::WriteIfAccepted
    } else {
        let read = input.load(ctx, Mode::Read)?.summary;
        if let Some(record) = record {
            if record.genesis_hash != read.hash {
                return Err(CommandError::ChainMismatch(format!(
                    "the store already holds genesis {:#x} (chain {:?}, id {}); {} has genesis \
                     {:#x}. Point storage at another store for this chain, or set {} to serve \
                     the store's chain",
                    record.genesis_hash,
                    record.name,
                    record.chain_id,
                    input.shown,
                    read.hash,
                    setting_for(&record.name, record.chain_id)
                )));
            }
            tracing::info!(genesis = %read.hash, "store already initialised with this genesis");
            return Ok(outcome(&read, None, None));
        }
        check_uninitialised_store(ctx, executed, stored_header, read.hash)?;
        Mode::Write(read.hash)
    };
    let mut loaded = input.load(ctx, mode)?;
    if !loaded.written {
        // Accepted by its hash (or by a `config` after `alloc`) in the read just done.
        loaded = input.load(ctx, Mode::Write(loaded.summary.hash))?;
    }
    write_genesis_block(ctx, &name, &loaded.summary, progress.is_none())?;
    let counts = loaded.counts;
    tracing::info!(
        genesis = %loaded.summary.hash,
        accounts = counts.accounts,
        slots = counts.slots,
        keys = counts.keys(),
        trie_nodes = counts.nodes,
        seconds = counts.read_seconds + counts.build_seconds,
        keys_per_sec = counts.keys_per_second() as u64,
        "genesis written"
    );
    Ok(outcome(&loaded.summary, Some(counts), None))
}

/// Refuse a store without a chain record that the genesis `genesis_hash` must not be written
/// into: one with blocks up to `executed` > 0 executed, or whose `blk:hdr:0`, `stored_header`,
/// is another genesis. (Progress at block 0 without a chain record is an init cut short.)
fn check_uninitialised_store(
    ctx: &Context,
    executed: u64,
    stored_header: Option<Sealed<Header>>,
    genesis_hash: B256,
) -> Result<(), CommandError> {
    if executed > 0 {
        return Err(CommandError::Takeover(format!(
            "{} says blocks up to {executed} are executed but there is no {} (a store the \
             original service wrote?); `init` would overwrite that state with the genesis. Take \
             the store over instead: `evm-executor init --adopt` (with `--genesis FILE` for \
             chain.name = \"custom\"; `run` does it by itself for a built-in chain)",
            ctx.keys.exec_progress(),
            ctx.keys.chain()
        )));
    }
    if let Some(stored) = stored_header {
        let stored_hash = stored.hash();
        if stored_hash != genesis_hash {
            return Err(CommandError::ChainMismatch(format!(
                "{} holds block {stored_hash:#x}, not this genesis {genesis_hash:#x}",
                ctx.keys.header(0)
            )));
        }
    }
    Ok(())
}

/// After the state: `blk:hdr:0`, the merkle checkpoint when tries are kept, the progress at
/// block 0 when `progress_missing`, and last the chain record.
fn write_genesis_block(
    ctx: &Context,
    name: &str,
    genesis: &GenesisSummary,
    progress_missing: bool,
) -> Result<(), CommandError> {
    let mut batch = WriteBatch::new();
    batch.put(
        ctx.keys.header(0),
        &Sealed::new_unchecked(genesis.header.clone(), genesis.hash),
    );
    if keeps_tries(ctx) {
        let checkpoint = StageCheckpoint {
            block: 0,
            hash: genesis.hash,
            time: unix_now(),
        };
        batch.put(ctx.keys.stage_checkpoint(StageId::Merkle), &checkpoint);
    }
    if progress_missing {
        let progress = ExecProgress {
            latest_executed_block: 0,
            last_execution_time: unix_now(),
            total_txs_executed: 0,
        };
        batch.put(ctx.keys.exec_progress(), &progress);
    }
    // Last, after everything else has landed: its presence marks a complete init.
    batch
        .fence()
        .put(ctx.keys.chain(), &chain_record(name, genesis));
    Ok(ctx.store.write(&batch)?)
}

/// Whether the store keeps state tries (the merkle stage is on).
fn keeps_tries(ctx: &Context) -> bool {
    ctx.config.state.verify_root != VerifyRootConfig::Off
}

/// What a read of the genesis does with the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Only read it (for its root and hash), writing nothing.
    Read,
    /// Write it; a read before found the genesis with this hash acceptable.
    Write(B256),
    /// Write it when the fields before `alloc` suffice to accept the genesis
    /// ([`Input::head_suffices`]); else only read it.
    WriteIfAccepted,
}

/// A genesis read with its summary.
struct Loaded {
    summary: GenesisSummary,
    counts: LoadCounts,
    written: bool,
}

/// Where the genesis `init` reads comes from.
#[derive(Debug, Clone, Copy)]
enum Origin<'a> {
    /// The built-in chain's own genesis.
    BuiltIn(&'static BuiltInChain),
    /// A file: for a built-in chain (which it must be the network's genesis of) or for a
    /// custom chain.
    File {
        path: &'a Path,
        chain: Option<&'static BuiltInChain>,
    },
}

/// The genesis `init` reads.
struct Input<'a> {
    origin: Origin<'a>,
    /// The built-in chain's rules, which fill in a file's missing `config`.
    spec: Option<ChainSpec>,
    /// How messages name the genesis.
    shown: String,
}

impl<'a> Input<'a> {
    fn new(name: &str, source: GenesisSource<'a>) -> Result<Self, CommandError> {
        let chain = chain_data::built_in(name);
        let (origin, shown) = match (source, chain) {
            (GenesisSource::BuiltIn, Some(chain)) => (
                Origin::BuiltIn(chain),
                format!("the built-in genesis of {name}"),
            ),
            (GenesisSource::BuiltIn, None) => {
                let names: Vec<_> = chain_data::BUILT_IN_CHAINS.iter().map(|c| c.name).collect();
                return Err(CommandError::GenesisNeeded(names.join(", ")));
            }
            (GenesisSource::File(path), chain) => {
                (Origin::File { path, chain }, path.display().to_string())
            }
        };
        Ok(Self {
            origin,
            spec: chain.map(BuiltInChain::spec).transpose()?,
            shown,
        })
    }

    /// The fields of `head` as this chain reads them (a built-in chain's rules fill in a
    /// missing `config`).
    fn head(&self, head: &GenesisHead) -> GenesisHead {
        match &self.spec {
            Some(spec) => head.clone().with_spec(spec),
            None => head.clone(),
        }
    }

    /// Read the genesis once in `mode`, into the store when it writes.
    fn load(&self, ctx: &Context, mode: Mode) -> Result<Loaded, CommandError> {
        // A directory of this read's own: a killed init leaves its directory behind.
        static READS: AtomicU64 = AtomicU64::new(0);
        let work_dir = std::env::temp_dir().join(format!(
            "evm-executor-init-{}-{}",
            std::process::id(),
            READS.fetch_add(1, Ordering::Relaxed)
        ));
        let target = GenesisTarget {
            store: ctx.store.as_ref(),
            keys: &ctx.keys,
            tries: keeps_tries(ctx),
            work_dir,
        };
        let mut checks = Checks {
            ctx,
            input: self,
            mode,
        };
        let (reader, size, origin): (Box<dyn Read>, u64, String) = match self.origin {
            Origin::File { path, .. } => {
                let read_error = |source| GenesisError::Read {
                    path: self.shown.clone(),
                    source,
                };
                let file = std::fs::File::open(path).map_err(read_error)?;
                let size = file.metadata().map_err(read_error)?.len();
                (Box::new(file), size, self.shown.clone())
            }
            Origin::BuiltIn(chain) => {
                let text = chain.genesis_text();
                (
                    Box::new(text.as_bytes()),
                    text.len() as u64,
                    chain.genesis_origin(),
                )
            }
        };
        let loaded =
            load_genesis(&target, &origin, reader, Some(size), &mut checks).map_err(|error| {
                match error {
                    LoadError::Refused(error) => error,
                    LoadError::Genesis(error) => CommandError::Genesis(error),
                    LoadError::Tries(RebuildError::Store(error)) => CommandError::Store(error),
                    LoadError::Tries(error) => CommandError::GenesisTries(error.to_string()),
                }
            })?;
        let head = self.head(&loaded.head);
        Ok(Loaded {
            summary: head.summary(
                loaded.state_root,
                loaded.storage_only,
                loaded.counts.accounts,
            ),
            counts: loaded.counts,
            written: loaded.written,
        })
    }

    /// Whether the fields before `alloc`, `head` (as [`Self::head`] reads them), suffice to
    /// accept the genesis before its state root is known (an error refuses it): a built-in
    /// chain's own genesis is the network's, a custom chain's file must have a `config` for the
    /// configured chain, and a file for a built-in chain is that chain's only if its hash is.
    fn head_suffices(&self, ctx: &Context, head: &GenesisHead) -> Result<bool, CommandError> {
        match self.origin {
            Origin::BuiltIn(_) => Ok(true),
            Origin::File { chain: Some(_), .. } => Ok(false),
            Origin::File { chain: None, .. } if !head.has_config() => Ok(false),
            Origin::File { chain: None, .. } => {
                let config = &ctx.config;
                check_config_matches(config, &config.chain.name, head.chain_id())?;
                Ok(true)
            }
        }
    }

    /// Check the genesis with fields `head` (as [`Self::head`] reads them) and state root
    /// `state_root` against the configured chain; its hash.
    fn check(
        &self,
        ctx: &Context,
        head: &GenesisHead,
        state_root: B256,
    ) -> Result<B256, CommandError> {
        let config = &ctx.config;
        let name = config.chain.name.as_str();
        let hash = head.header(state_root).hash_slow();
        match self.origin {
            Origin::BuiltIn(chain) => chain.check_genesis_hash(hash)?,
            Origin::File {
                path,
                chain: Some(chain),
            } => {
                check_config_matches(config, name, head.chain_id())?;
                if hash != chain.genesis_hash {
                    let fitting = chain_data::built_in_with_genesis(hash)
                        .map_or("custom", |other| other.name);
                    return Err(CommandError::ChainMismatch(format!(
                        "{} is genesis {hash:#x}, not the genesis of {name} ({:#x}); for that \
                         chain set chain.name = {fitting:?}",
                        path.display(),
                        chain.genesis_hash
                    )));
                }
            }
            Origin::File { path, chain: None } => {
                if !head.has_config() {
                    return Err(CommandError::ChainMismatch(format!(
                        "{} has no `config` object, so it does not say which chain it is; {}",
                        path.display(),
                        match network_of(head, state_root) {
                            Some(chain) => format!(
                                "it is the genesis of {0}: set chain.name = {0:?} (which needs \
                                 no --genesis)",
                                chain.name
                            ),
                            None => {
                                "add the chain's geth `config` (chainId and forks)".to_string()
                            }
                        }
                    )));
                }
                check_config_matches(config, name, head.chain_id())?;
            }
        }
        Ok(hash)
    }
}

/// The checks [`load_genesis`] runs for `init`.
struct Checks<'c> {
    ctx: &'c Context,
    input: &'c Input<'c>,
    mode: Mode,
}

impl GenesisChecks for Checks<'_> {
    type Error = CommandError;

    fn before_alloc(&mut self, head: &GenesisHead) -> Result<bool, CommandError> {
        match self.mode {
            Mode::Read => Ok(false),
            Mode::Write(_) => Ok(true),
            Mode::WriteIfAccepted => self.input.head_suffices(self.ctx, &self.input.head(head)),
        }
    }

    fn after_read(&mut self, head: &GenesisHead, state_root: B256) -> Result<(), CommandError> {
        let hash = self
            .input
            .check(self.ctx, &self.input.head(head), state_root)?;
        match self.mode {
            Mode::Write(expected) if hash != expected => Err(CommandError::ChainMismatch(format!(
                "{} changed while init read it: genesis {expected:#x} first, {hash:#x} now",
                self.input.shown
            ))),
            _ => Ok(()),
        }
    }
}

/// The built-in chain whose genesis a config-less file with fields `head` and state root
/// `state_root` is, if any.
fn network_of(head: &GenesisHead, state_root: B256) -> Option<&'static BuiltInChain> {
    chain_data::BUILT_IN_CHAINS.iter().find(|chain| {
        chain.spec().is_ok_and(|spec| {
            head.clone().with_spec(&spec).header(state_root).hash_slow() == chain.genesis_hash
        })
    })
}
