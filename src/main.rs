//! The `evm-executor` command line.

use clap::{Parser, Subcommand};
use evm_executor::commands::{self, CommandError, Context};
use evm_executor::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

/// Executes EVM blocks that a Block Syncer writes into Pika (or the embedded store) and writes
/// receipts and world state back.
#[derive(Parser)]
#[command(name = "evm-executor", version, about)]
struct Cli {
    /// Config file (default: config/config.toml when it exists; `EVM_EXECUTOR_*` variables
    /// override each key).
    #[arg(long, global = true, env = "EVM_EXECUTOR_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the chain's genesis into the store as block 0 and its state (the built-in genesis
    /// of chain.name, or a geth-style genesis file), or take over a store the original service
    /// filled.
    Init {
        /// A geth-style genesis file (config + alloc); needed for chain.name = "custom".
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// Take over a store the original service filled (blocks, state and
        /// idx:exec:progress, no idx:chain): check it against the genesis and write only the
        /// chain record; execution continues from idx:exec:progress.
        #[arg(long)]
        adopt: bool,
    },
    /// Import a chain file in geth `export` format into blk:* as the Block Syncer would.
    Import {
        /// The chain file (concatenated RLP blocks).
        file: PathBuf,
    },
    /// Execute every block the syncer has stored, then follow new ones.
    Run {
        /// Stop once every synced block is executed.
        #[arg(long)]
        exit_at_head: bool,
    },
    /// Measure execution throughput on a chain (DIR/genesis.json + DIR/chain.rlp) in a fresh
    /// store of the configured backend, next to revm over an in-memory database on the same
    /// blocks.
    Bench {
        /// Directory holding genesis.json and chain.rlp.
        #[arg(long)]
        chain: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Reach the store server (storage.backend = "pika") through a TCP relay of the bench's
        /// own, one network hop as to a remote Pika, and report the round trip it adds.
        #[arg(long)]
        relay: bool,
        /// The relay's one-way delay in microseconds; the timer's slack comes on top (the
        /// default adds some 0.15-0.2 ms per round trip on Linux, a cross-node hop).
        #[arg(long, default_value_t = 25, requires = "relay")]
        relay_delay_us: u64,
    },
    /// Generate a synthetic workload chain (DIR/genesis.json + DIR/chain.rlp, blocks 1..=N
    /// executed as they are built) for `bench`.
    Gen {
        /// Blocks after genesis.
        #[arg(long)]
        blocks: u64,
        /// Transactions per block.
        #[arg(long)]
        txs_per_block: usize,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Workload seed: the same arguments give byte-identical files.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Funded accounts, each holding every genesis token, in a BSC-like mix (router swaps,
        /// a hot set and cold accounts); without it, the standard 3,000-key workload.
        #[arg(long)]
        accounts: Option<usize>,
        /// Write a second branch of the chain: blocks 1..=N as without it, the blocks after N
        /// from --fork-seed.
        #[arg(long, requires = "fork_seed")]
        fork_at: Option<u64>,
        /// The seed of the blocks after --fork-at.
        #[arg(long, requires = "fork_at")]
        fork_seed: Option<u64>,
    },
    /// Run Ethereum blockchain tests (execution-spec-tests or ethereum/tests `BlockchainTests`,
    /// a directory or a .tar.zst) through the executor's store, state and execution code.
    EfTest {
        /// Directory of fixture JSON files, or a release .tar.zst.
        path: PathBuf,
        /// Only tests whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Where the tests' temporary stores go: a directory of their own is made in it and
        /// removed at the end (default: the system temp dir).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// List every failure with its reason (otherwise the first 20).
        #[arg(long)]
        verbose: bool,
    },
    /// The state tries (`trie:*`) the merkle stage verifies the state with.
    Trie {
        #[command(subcommand)]
        command: TrieCommand,
    },
    /// Show sync height, execution progress, stage checkpoints, chain and backend.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TrieCommand {
    /// Build the state tries from st:latest in bounded memory (for a store written without
    /// them: by the original service, or with state.verify_root = "off"), check their root
    /// against the executed block's header and let the merkle stage verify from then on.
    /// Resumable: a rerun continues after the last finished bucket.
    Rebuild {
        /// Run even while lock:leader is held (a stale lease; a running daemon would change
        /// the state under the build).
        #[arg(long)]
        force: bool,
        /// Where the temporary bucket files go (about the size of st:latest): a directory of
        /// their own is made inside and removed at the end (default: the system temp dir).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Stop after this many of the 256 buckets; a rerun continues.
        #[arg(long)]
        stop_after_buckets: Option<u32>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    evm_executor::logging::init(&config.log);
    match run(cli.command, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, config: Config) -> Result<(), CommandError> {
    // ef-test and bench make their own stores; every other command works on the configured one.
    let ctx = match command {
        Command::EfTest {
            path,
            filter,
            work_dir,
            verbose,
        } => return ef_test(&path, filter.as_deref(), work_dir, verbose),
        Command::Bench {
            chain,
            json,
            relay,
            relay_delay_us,
        } => {
            let work_dir = std::env::temp_dir().join("evm-executor-bench");
            let relay = relay.then(|| std::time::Duration::from_micros(relay_delay_us));
            let report = commands::bench::run(&config, &chain, &work_dir, relay)?;
            match json {
                true => println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                ),
                false => println!("{report}"),
            }
            return Ok(());
        }
        Command::Gen {
            blocks,
            txs_per_block,
            out,
            seed,
            accounts,
            fork_at,
            fork_seed,
        } => {
            let options = evm_executor::gen::Options {
                blocks,
                txs_per_block,
                out,
                seed,
                accounts,
            };
            let fork = fork_at
                .zip(fork_seed)
                .map(|(at, seed)| evm_executor::gen::Fork { at, seed });
            println!("{}", commands::gen::run(&options, fork)?);
            return Ok(());
        }
        _ => Context::open(config)?,
    };
    match command {
        Command::EfTest { .. } | Command::Bench { .. } | Command::Gen { .. } => {}
        Command::Init { genesis, adopt } => {
            let source = match &genesis {
                Some(path) => commands::init::GenesisSource::File(path),
                None => commands::init::GenesisSource::BuiltIn,
            };
            let outcome = commands::init::init(&ctx, source, adopt)?;
            let verb = match (outcome.adopted, outcome.written) {
                (Some((block, hash)), _) => format!("taken over at block {block} ({hash:#x})"),
                (None, Some(_)) => "initialised".to_string(),
                (None, None) => "already initialised".to_string(),
            };
            println!(
                "{verb}: chain id {}, {} accounts",
                outcome.chain_id, outcome.accounts
            );
            println!("genesis state root: {:#x}", outcome.state_root);
            println!("genesis block hash: {:#x}", outcome.genesis_hash);
            if let Some(counts) = outcome.written {
                println!(
                    "wrote {} keys in {:.1} s ({:.0} keys/s): {} accounts, {} storage slots, {} \
                     trie nodes",
                    counts.keys(),
                    counts.read_seconds + counts.build_seconds,
                    counts.keys_per_second(),
                    counts.accounts,
                    counts.slots,
                    counts.nodes
                );
            }
        }
        Command::Import { file } => {
            let outcome = commands::import::run(&ctx, &file)?;
            println!(
                "imported {} blocks ({}..={}), {} transactions; idx:sync:progress = {}",
                outcome.blocks, outcome.first, outcome.last, outcome.transactions, outcome.last
            );
        }
        Command::Run { exit_at_head } => {
            let outcome = commands::run::run(&ctx, exit_at_head)?;
            println!(
                "executed {} blocks, {} transactions, {} gas in {:.1} s ({:.1} Mgas/s); head {}",
                outcome.blocks,
                outcome.transactions,
                outcome.gas,
                outcome.seconds,
                outcome.gas as f64 / outcome.seconds.max(f64::EPSILON) / 1e6,
                outcome.head
            );
        }
        Command::Trie {
            command:
                TrieCommand::Rebuild {
                    force,
                    work_dir,
                    stop_after_buckets,
                },
        } => {
            let options = commands::trie::RebuildOptions {
                force,
                work_dir,
                stop_after_buckets,
            };
            let report = commands::trie::rebuild(&ctx, &options)?;
            println!(
                "scanned {} accounts in {:.1} s; built {} accounts ({} slots, {} nodes, {} \
                 accounts rewritten) in {:.1} s ({:.0} accounts/s)",
                report.accounts,
                report.scan_seconds,
                report.accounts_built,
                report.slots,
                report.nodes,
                report.rewritten,
                report.build_seconds,
                report.accounts_per_second()
            );
            match report.state_root.filter(|_| report.complete) {
                Some(root) => println!(
                    "state tries rebuilt at block {}: state root {root:#x} matches the header; \
                     the merkle stage verifies from here",
                    report.block
                ),
                None => println!(
                    "stopped after bucket {} of {}; run `trie rebuild` again to continue",
                    report.finished,
                    pipeline::trie_rebuild::spill::BUCKETS
                ),
            }
        }
        Command::Status { json } => {
            let report = commands::status::run(&ctx)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{report}");
            }
        }
    }
    Ok(())
}

fn ef_test(
    path: &std::path::Path,
    filter: Option<&str>,
    work_dir: Option<PathBuf>,
    verbose: bool,
) -> Result<(), CommandError> {
    // A directory of its own inside the one given: removing it afterwards touches nothing else.
    let work_dir = work_dir
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("evm-executor-ef-test-{}", std::process::id()));
    let report = evm_executor::eftest::run(path, filter, &work_dir)
        .map_err(|e| CommandError::EfTest(e.to_string()))?;
    let _ = std::fs::remove_dir_all(&work_dir);
    for (name, reason) in report
        .failures
        .iter()
        .take(if verbose { usize::MAX } else { 20 })
    {
        println!("FAIL {name}: {reason}");
    }
    println!("{report}");
    match report.total().failed {
        0 => Ok(()),
        failed => Err(CommandError::EfTest(format!("{failed} tests failed"))),
    }
}
