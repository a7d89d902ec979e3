//! The built-in chains as a new user meets them. On a fresh clone (no `../shared`, no fixtures
//! variable: nothing but the built binary and the shipped `config/config.toml` in the working
//! directory) `evm-executor init` then `run` work for `bsc` (the default), `chapel` and
//! `mainnet` with nothing set but the chain name, and `init` prints the network's published
//! genesis hash. With the fixtures: the chain data under `config/chains/` is the fixtures'
//! byte for byte, `init` of a built-in chain leaves the store `init --genesis <fixture file>`
//! leaves, genesis files without a `config` work under their network's name, a chain mismatch
//! names the setting that fits, and a custom Parlia chain reads its data from `chain.data_dir`.
//!
//! The genesis hashes are the networks' own (as `fixtures/bsc/README.md` and
//! `fixtures/ethereum/README.md` give them), not computed by the project's code.

use crate::common::daemon::Daemon;
use crate::common::redis_server::free_port;
use crate::common::{expect_exit_code, expect_success, fixtures_dir, var, Backend, COMMAND_FAILED};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Each built-in chain's name, chain id and published genesis block hash.
const KNOWN_GENESIS: &[(&str, u64, &str)] = &[
    (
        "bsc",
        56,
        "0x0d21840abff46b96c84b2ac9e10e4f5cdaeb5693cb665db62a2f3b02d2d57b5b",
    ),
    (
        "chapel",
        97,
        "0x6d3c66c5357ec91d5c43af47e234a939b22557cbb552dc45bebbceeed90fbe34",
    ),
    (
        "mainnet",
        1,
        "0xd4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3",
    ),
    (
        "sepolia",
        11_155_111,
        "0x25a5cc106eea7138acab33231d7160d69cb777ee0c2c553fcddf5138993e6dd9",
    ),
    (
        "holesky",
        17_000,
        "0xb5f7f912443c940f21fd611f12828d75b534364ed9e95ca4e307729a4661bde4",
    ),
    (
        "hoodi",
        560_048,
        "0xbbe312868b376a3001692a646dd2d7d1e4406380dfd86b98aa8a34d1557c971b",
    ),
];
/// How long a started daemon has to start its pipeline.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between two looks at a starting daemon.
const POLL: Duration = Duration::from_millis(50);
/// How long it has to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The repository root.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `name`'s published genesis hash.
fn known_hash(name: &str) -> &'static str {
    KNOWN_GENESIS
        .iter()
        .find(|(known, _, _)| *known == name)
        .map(|(_, _, hash)| *hash)
        .unwrap_or_else(|| panic!("{name} is not a built-in chain"))
}

/// The hash after `genesis block hash: ` in `init`'s output.
fn printed_genesis_hash(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("genesis block hash: "))
        .unwrap_or_else(|| panic!("no `genesis block hash:` line in:\n{stdout}"))
        .trim()
        .to_string()
}

// ---- 1. a fresh clone ------------------------------------------------------------------------

/// A working directory as a fresh clone has it for the binary: `config/config.toml` as shipped,
/// nothing else (no `../shared` next to it, no data directory).
fn fresh_clone() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir for the clone");
    std::fs::create_dir(dir.path().join("config")).expect("mkdir config");
    std::fs::copy(
        repo().join("config/config.toml"),
        dir.path().join("config/config.toml"),
    )
    .expect("copy config/config.toml");
    assert!(
        !dir.path().join("../shared").exists(),
        "the clone must have no ../shared"
    );
    dir
}

/// The binary in `clone` with `args`, an empty environment but for the chain name (when not
/// the default) and the metrics address (a free port, so parallel tests do not collide on the
/// default 9091).
fn in_clone(clone: &Path, chain: Option<&str>, metrics: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_evm-executor"));
    command
        .env_clear()
        .env("EVM_EXECUTOR_METRICS_LISTEN_ADDR", metrics)
        .args(args)
        .current_dir(clone);
    if let Some(chain) = chain {
        command.env("EVM_EXECUTOR_CHAIN_NAME", chain);
    }
    command
}

/// `init` then `run` on a fresh clone for `chain` (`None`: the shipped default): `init`
/// prints the network's genesis hash, `run` starts its pipeline and serves its endpoint, and
/// ends with exit 0 on SIGTERM, at block 0.
fn runs_out_of_the_box(chain: Option<&str>, name: &str) {
    let clone = fresh_clone();
    let metrics = format!("127.0.0.1:{}", free_port());
    let init = in_clone(clone.path(), chain, &metrics, &["init"])
        .output()
        .expect("run init");
    let stdout = expect_success(&init);
    assert_eq!(printed_genesis_hash(&stdout), known_hash(name), "{stdout}");
    let (_, chain_id, _) = KNOWN_GENESIS
        .iter()
        .find(|(known, _, _)| *known == name)
        .expect("known chain");
    assert!(
        stdout.starts_with(&format!("initialised: chain id {chain_id},")),
        "{stdout}"
    );
    assert!(
        clone.path().join("data/evm-executor.redb").is_file(),
        "the default embedded store"
    );

    let run = in_clone(clone.path(), chain, &metrics, &["run"]);
    let mut daemon = Daemon::spawn(run, None);
    let deadline = Instant::now() + START_TIMEOUT;
    while !(daemon.stderr().contains("pipeline starting")
        && std::net::TcpStream::connect(&metrics).is_ok())
    {
        daemon.assert_running("before its pipeline started");
        assert!(
            Instant::now() < deadline,
            "{name}: the pipeline did not start within {START_TIMEOUT:?}; stderr:\n{}",
            daemon.stderr()
        );
        std::thread::sleep(POLL);
    }
    let status = daemon.terminate(STOP_TIMEOUT);
    assert!(
        status.success(),
        "{name}: run must exit 0 on SIGTERM, got {status}; stderr:\n{}",
        daemon.stderr()
    );
    let again = in_clone(clone.path(), chain, &metrics, &["init"])
        .output()
        .expect("run init again");
    assert!(
        expect_success(&again).starts_with("already initialised:"),
        "a second init is a no-op"
    );
}

#[test]
fn bsc_runs_out_of_the_box() {
    runs_out_of_the_box(None, "bsc");
}

#[test]
fn chapel_runs_out_of_the_box() {
    runs_out_of_the_box(Some("chapel"), "chapel");
}

#[test]
fn ethereum_mainnet_runs_out_of_the_box() {
    runs_out_of_the_box(Some("mainnet"), "mainnet");
}

// ---- 2. the shipped data is the fixtures' ----------------------------------------------------

/// Every file `config/chains/<dir>/SHA256SUMS` lists, with the fixture directory it comes from.
const DATA_DIRS: &[(&str, &str)] = &[("bsc", "bsc"), ("ethereum", "ethereum")];

/// Each shipped chain data file equals its source in the fixtures byte for byte, and
/// `sha256sum -c` accepts the manifest the README tells users to check with.
#[test]
fn shipped_chain_data_is_the_fixtures() {
    for (shipped, source) in DATA_DIRS {
        let dir = repo().join("config/chains").join(shipped);
        let manifest = std::fs::read_to_string(dir.join("SHA256SUMS")).expect("SHA256SUMS");
        let mut files = 0;
        for line in manifest.lines() {
            let (_, file) = line
                .split_once("  ")
                .unwrap_or_else(|| panic!("bad SHA256SUMS line {line:?}"));
            let ours = std::fs::read(dir.join(file)).expect("shipped file");
            let theirs = std::fs::read(fixtures_dir().join(source).join(file))
                .unwrap_or_else(|e| panic!("fixtures {source}/{file}: {e}"));
            assert!(
                ours == theirs,
                "config/chains/{shipped}/{file} differs from the fixtures"
            );
            files += 1;
        }
        assert!(files > 0, "{shipped}/SHA256SUMS lists no files");
        let check = Command::new("sha256sum")
            .args(["--check", "--quiet", "SHA256SUMS"])
            .current_dir(&dir)
            .output()
            .expect("run sha256sum");
        assert!(
            check.status.success(),
            "sha256sum --check in config/chains/{shipped}: {}",
            String::from_utf8_lossy(&check.stdout)
        );
    }
}

/// The fixture genesis file of a built-in chain.
fn fixture_genesis(name: &str) -> PathBuf {
    let file = match name {
        "bsc" => "bsc/genesis-mainnet.json",
        "chapel" => "bsc/genesis-chapel.json",
        other => return fixtures_dir().join(format!("ethereum/{other}.json")),
    };
    fixtures_dir().join(file)
}

/// `init` without a file for every built-in chain prints the published hash and leaves the
/// store key for key and byte for byte as `init --genesis <the fixture file>` under the same
/// name (sepolia and holesky ship without a `config` object: their network's rules fill it).
#[test]
fn built_in_init_writes_what_the_fixture_genesis_writes() {
    for (name, _, hash) in KNOWN_GENESIS {
        let chain = [var("EVM_EXECUTOR_CHAIN_NAME", *name)];
        let built_in = Backend::embedded();
        let stdout = expect_success(&built_in.cli(&chain, &["init"]));
        assert_eq!(printed_genesis_hash(&stdout), *hash, "{name}");
        let from_file = Backend::embedded();
        let path = fixture_genesis(name);
        let stdout = expect_success(&from_file.cli(
            &chain,
            &["init", "--genesis", path.to_str().expect("utf-8")],
        ));
        assert_eq!(printed_genesis_hash(&stdout), *hash, "{name} from its file");
        let without_times =
            |backend: &Backend| crate::common::exec::without_run_times(backend.snapshot());
        crate::common::assert_same_snapshot(
            &without_times(&built_in),
            &without_times(&from_file),
            name,
        );
    }
}

// ---- 3. errors that say what to do -----------------------------------------------------------

/// `init --genesis FILE` refused under `chain_name`, with nothing written; returns stderr.
fn init_refused(chain_name: &str, genesis: &Path) -> String {
    let backend = Backend::embedded();
    let output = backend.cli(
        &[var("EVM_EXECUTOR_CHAIN_NAME", chain_name)],
        &["init", "--genesis", genesis.to_str().expect("utf-8")],
    );
    let stderr = expect_exit_code(&output, COMMAND_FAILED);
    assert!(backend.all_keys().is_empty(), "a refused init wrote keys");
    stderr
}

/// A genesis of another chain id under `chain.name = "bsc"` names `chain.name = "custom"`;
/// Ethereum mainnet's genesis under `bsc` names `chain.name = "mainnet"`; sepolia's genesis
/// (no `config`) under `custom` names `chain.name = "sepolia"`; `init` without a file for
/// `custom` says to give one.
#[test]
fn chain_mismatch_names_the_setting_that_fits() {
    let geth = fixtures_dir().join("chains/geth-ethtest/genesis.json");
    let stderr = init_refused("bsc", &geth);
    assert!(stderr.contains("chain.name = \"custom\""), "{stderr}");

    let stderr = init_refused("bsc", &fixture_genesis("mainnet"));
    assert!(stderr.contains("chain.name = \"mainnet\""), "{stderr}");
    assert!(stderr.contains(known_hash("mainnet")), "{stderr}");

    let stderr = init_refused("custom", &fixture_genesis("sepolia"));
    assert!(stderr.contains("chain.name = \"sepolia\""), "{stderr}");

    let backend = Backend::embedded();
    let stderr = expect_exit_code(&backend.cli(&[], &["init"]), COMMAND_FAILED);
    assert!(stderr.contains("--genesis FILE"), "{stderr}");

    // A store of one chain run under another names the store's chain.
    let chain = [var("EVM_EXECUTOR_CHAIN_NAME", "chapel")];
    expect_success(&backend.cli(&chain, &["init"]));
    let bsc = [var("EVM_EXECUTOR_CHAIN_NAME", "bsc")];
    let stderr = expect_exit_code(
        &backend.cli(&bsc, &["run", "--exit-at-head"]),
        COMMAND_FAILED,
    );
    assert!(stderr.contains("chain.name = \"chapel\""), "{stderr}");
}

/// A custom Parlia chain (here BSC mainnet's genesis under `chain.name = "custom"`) takes its
/// chain data from `chain.data_dir`: without it `run` says to set it, with the fixtures' BSC
/// data it runs.
#[test]
fn custom_parlia_chain_reads_chain_data_dir() {
    let backend = Backend::embedded();
    let genesis = fixture_genesis("bsc");
    expect_success(&backend.cli(
        &[],
        &["init", "--genesis", genesis.to_str().expect("utf-8")],
    ));
    let stderr = expect_exit_code(
        &backend.cli(&[], &["run", "--exit-at-head"]),
        COMMAND_FAILED,
    );
    assert!(stderr.contains("set chain.data_dir"), "{stderr}");
    let data_dir = fixtures_dir().join("bsc");
    let with_data = [var(
        "EVM_EXECUTOR_CHAIN_DATA_DIR",
        data_dir.to_str().expect("utf-8"),
    )];
    let out = expect_success(&backend.cli(&with_data, &["run", "--exit-at-head"]));
    assert!(out.contains("head 0"), "{out}");
}
