//! The integration tests' shared harness: where the fixtures are, a real `redis-server` per
//! test, the two store backends as the CLI sees them, running the built binary, an RLP
//! framing reader written independently of the project's codecs, what execution must leave in
//! the store (`exec`), and the execution-spec-tests archive (`eest`).
//!
//! Each test binary uses a different part of the harness, so unused items are allowed here.

pub mod bsc;
pub mod chain;
pub mod daemon;
pub mod eest;
pub mod exec;
pub mod redis_server;
pub mod rlp;
pub mod trie;

use evm_executor::store::embedded::EmbeddedStore;
use primitives::store::Store;
use redis_server::RedisServer;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tempfile::TempDir;

/// The environment variable that points the tests at another copy of the fixtures.
pub const FIXTURES_ENV: &str = "EVM_EXECUTOR_FIXTURES";
/// Exit code of a command that failed (config errors exit 2, panics 101).
pub const COMMAND_FAILED: i32 = 1;
/// The prefix of the binary's configuration overrides.
const CONFIG_ENV_PREFIX: &str = "EVM_EXECUTOR_";
/// How many times the CLI retries an unreachable Redis in tests, so a lost server fails the
/// test instead of hanging it (the binary's default is to retry for ever).
pub const TEST_PIKA_MAX_RETRIES: &str = "3";

/// The shared fixtures: `$EVM_EXECUTOR_FIXTURES`, else `../shared/fixtures` next to the
/// workspace. Panics (failing the test) when the directory does not exist.
pub fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os(FIXTURES_ENV).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"),
        PathBuf::from,
    );
    assert!(
        dir.is_dir(),
        "fixtures directory {} not found; set {FIXTURES_ENV} to the shared fixtures",
        dir.display()
    );
    dir
}

/// The override that makes `init` keep no state tries: the store then executes unverified
/// (for chains whose blocks the tests build by hand, without a real stateRoot).
pub fn unverified() -> (String, String) {
    var("EVM_EXECUTOR_STATE_VERIFY_ROOT", "off")
}

/// One environment override for the CLI.
pub fn var(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_string(), value.into())
}

/// A store the CLI can be pointed at: a real Redis server or an embedded redb file.
pub enum Backend {
    /// `storage.backend = "pika"` against a server the test owns.
    Redis(RedisServer),
    /// `storage.backend = "embedded"` with the file `store.redb` in this temp dir.
    Embedded(TempDir),
}

impl Backend {
    /// A fresh, empty store of the same kind as `self` (to build a reference to compare with).
    pub fn fresh_like(&self) -> Self {
        match self {
            Self::Redis(_) => Self::redis(),
            Self::Embedded(_) => Self::embedded(),
        }
    }

    /// A fresh Redis server.
    pub fn redis() -> Self {
        Self::Redis(RedisServer::start())
    }

    /// A fresh embedded store location (the file does not exist yet).
    pub fn embedded() -> Self {
        Self::Embedded(tempfile::tempdir().expect("temp dir for the embedded store"))
    }

    /// `pika` or `embedded`, as `status` names the backend.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Redis(_) => "pika",
            Self::Embedded(_) => "embedded",
        }
    }

    /// The embedded store's file.
    fn embedded_path(dir: &TempDir) -> PathBuf {
        dir.path().join("store.redb")
    }

    /// Where the backend is, as `status` shows it: `host:port` or the file path.
    pub fn location(&self) -> String {
        match self {
            Self::Redis(server) => server.addr(),
            Self::Embedded(dir) => Self::embedded_path(dir).display().to_string(),
        }
    }

    /// The `EVM_EXECUTOR_*` overrides that select this backend.
    pub fn env(&self) -> Vec<(String, String)> {
        match self {
            Self::Redis(server) => vec![
                var("EVM_EXECUTOR_STORAGE_BACKEND", "pika"),
                var("EVM_EXECUTOR_STORAGE_PIKA_ADDR", server.addr()),
                var(
                    "EVM_EXECUTOR_STORAGE_PIKA_MAX_RETRIES",
                    TEST_PIKA_MAX_RETRIES,
                ),
            ],
            Self::Embedded(dir) => vec![
                var("EVM_EXECUTOR_STORAGE_BACKEND", "embedded"),
                var(
                    "EVM_EXECUTOR_STORAGE_EMBEDDED_PATH",
                    Self::embedded_path(dir).display().to_string(),
                ),
            ],
        }
    }

    /// This backend's overrides followed by `extra` (which win).
    pub fn env_with(&self, extra: &[(String, String)]) -> Vec<(String, String)> {
        let mut env = self.env();
        env.extend_from_slice(extra);
        env
    }

    /// Run the CLI against this backend with `extra` overrides after the backend's own.
    pub fn cli(&self, extra: &[(String, String)], args: &[&str]) -> Output {
        run_cli(&self.env_with(extra), args)
    }

    /// Every key in the store. For the embedded store, call only while no CLI process runs
    /// (redb locks the file).
    pub fn all_keys(&self) -> BTreeSet<String> {
        self.snapshot().into_keys().collect()
    }

    /// Every key with its value. For the embedded store, call only while no CLI process runs.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        match self {
            Self::Redis(server) => server.snapshot(),
            Self::Embedded(dir) => {
                let store = open_embedded(dir);
                let keys = store.scan_prefix("").expect("scan the embedded store");
                let values = store.multi_get(&keys).expect("read the embedded store");
                keys.into_iter()
                    .zip(values)
                    .filter_map(|(key, value)| Some((key, value?)))
                    .collect()
            }
        }
    }

    /// The value at `key`. For the embedded store, call only while no CLI process runs.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self {
            Self::Redis(server) => server.get(key),
            Self::Embedded(dir) => open_embedded(dir)
                .get(key)
                .expect("read the embedded store"),
        }
    }
}

/// Open the embedded store file of a backend's temp dir (creating it when absent).
fn open_embedded(dir: &TempDir) -> EmbeddedStore {
    EmbeddedStore::open(&Backend::embedded_path(dir)).expect("open the embedded store")
}

/// The built `evm-executor` with `args`, to run in the returned empty temp dir (so no
/// `config/config.toml` is picked up; keep the dir until the process ends), with no inherited
/// `EVM_EXECUTOR_*` variables, `EVM_EXECUTOR_CHAIN_NAME=custom`, the metrics endpoint off, and
/// then `env` (which may override either).
pub fn cli_command(env: &[(String, String)], args: &[&str]) -> (Command, TempDir) {
    let cwd = tempfile::tempdir().expect("temp dir for the CLI");
    let mut command = Command::new(env!("CARGO_BIN_EXE_evm-executor"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with(CONFIG_ENV_PREFIX) {
            command.env_remove(&name);
        }
    }
    command
        .env_remove("RUST_LOG")
        .env("EVM_EXECUTOR_CHAIN_NAME", "custom")
        // Parallel tests would fight over the default metrics port; tests that scrape the
        // endpoint set their own free port.
        .env("EVM_EXECUTOR_METRICS_ENABLED", "false")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .current_dir(cwd.path());
    (command, cwd)
}

/// Run [`cli_command`] to completion.
pub fn run_cli(env: &[(String, String)], args: &[&str]) -> Output {
    let (mut command, _cwd) = cli_command(env, args);
    command.output().expect("run evm-executor")
}

/// The command's stdout; panics with both streams unless it exited 0.
pub fn expect_success(output: &Output) -> String {
    assert!(
        output.status.success(),
        "evm-executor failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The command's stderr; panics with both streams unless it exited with `code`.
pub fn expect_exit_code(output: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "expected exit code {code}\nstdout:\n{}\nstderr:\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        !stderr.contains("panicked"),
        "evm-executor panicked:\n{stderr}"
    );
    stderr
}

/// True when `text` contains `number` as a whole number (not inside a longer run of digits).
pub fn mentions_number(text: &str, number: u64) -> bool {
    let needle = number.to_string();
    text.split(|c: char| !c.is_ascii_digit())
        .any(|run| run == needle)
}

/// True when `text` says `block N` for exactly `number` (so `block 30` does not match 300).
pub fn names_block(text: &str, number: u64) -> bool {
    names(text, "block", number)
}

/// True when `text` says `{word} N` for exactly `number` (`names(t, "transaction", 2)` finds
/// `transaction 2 (0x…)` but not `transaction 21`).
pub fn names(text: &str, word: &str, number: u64) -> bool {
    let phrase = format!("{word} ");
    text.match_indices(&phrase).any(|(at, found)| {
        let digits: String = text[at + found.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits == number.to_string()
    })
}

/// Run `init --genesis PATH` and return its stdout, failing the test unless it succeeds.
pub fn init(backend: &Backend, extra: &[(String, String)], genesis: &Path) -> String {
    let genesis = genesis.to_str().expect("utf-8 path");
    expect_success(&backend.cli(extra, &["init", "--genesis", genesis]))
}

/// Run `import FILE`.
pub fn import(backend: &Backend, file: &Path) -> Output {
    backend.cli(&[], &["import", file.to_str().expect("utf-8 path")])
}

/// Run `run --exit-at-head`: execute every synced block, then exit.
pub fn run_to_head(backend: &Backend) -> Output {
    backend.cli(&[], &["run", "--exit-at-head"])
}

/// Assert two key sets are equal, listing what is missing and what is unexpected.
pub fn assert_same_keys(actual: &BTreeSet<String>, expected: &BTreeSet<String>) {
    let missing: Vec<_> = expected.difference(actual).take(10).collect();
    let extra: Vec<_> = actual.difference(expected).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "store keys differ ({} expected, {} found): missing {missing:?}, unexpected {extra:?}",
        expected.len(),
        actual.len()
    );
}

/// Assert two snapshots hold the same keys with the same values, listing the first
/// differences (values shown as lossy UTF-8).
pub fn assert_same_snapshot(
    actual: &BTreeMap<String, Vec<u8>>,
    expected: &BTreeMap<String, Vec<u8>>,
    what: &str,
) {
    assert_same_keys(
        &actual.keys().cloned().collect(),
        &expected.keys().cloned().collect(),
    );
    let differing: Vec<String> = expected
        .iter()
        .filter(|(key, value)| actual.get(*key) != Some(*value))
        .take(5)
        .map(|(key, value)| {
            format!(
                "{key}: expected {:?}, found {:?}",
                String::from_utf8_lossy(value),
                String::from_utf8_lossy(&actual[key])
            )
        })
        .collect();
    assert!(
        differing.is_empty(),
        "{what}: values differ: {differing:#?}"
    );
}

/// A snapshot's keys with `prefix` taken off; panics on a key without it.
pub fn strip_key_prefix(
    snapshot: BTreeMap<String, Vec<u8>>,
    prefix: &str,
) -> BTreeMap<String, Vec<u8>> {
    snapshot
        .into_iter()
        .map(|(key, value)| match key.strip_prefix(prefix) {
            Some(rest) => (rest.to_string(), value),
            None => panic!("{key} lacks the prefix {prefix}"),
        })
        .collect()
}

/// The value at `key` in a snapshot; panics when absent.
pub fn value<'a>(store: &'a BTreeMap<String, Vec<u8>>, key: &str) -> &'a [u8] {
    store
        .get(key)
        .unwrap_or_else(|| panic!("{key} is not in the store"))
}

/// The JSON object at `key` with each top-level field's raw text (so big numbers stay exact).
pub fn raw_json_fields(store: &BTreeMap<String, Vec<u8>>, key: &str) -> BTreeMap<String, String> {
    raw_fields_of(key, value(store, key))
}

/// A JSON object's top-level fields with their raw text; `what` names it in a failure.
pub fn raw_fields_of(what: &str, json: &[u8]) -> BTreeMap<String, String> {
    let fields: BTreeMap<String, Box<serde_json::value::RawValue>> = serde_json::from_slice(json)
        .unwrap_or_else(|e| {
            panic!(
                "{what} is not a JSON object ({e}): {}",
                String::from_utf8_lossy(json)
            )
        });
    fields
        .into_iter()
        .map(|(name, raw)| (name, raw.get().to_string()))
        .collect()
}

/// Define one test per backend for each `name => scenario` pair: `name::redis` and
/// `name::embedded`, each calling the parent module's `scenario(Backend)`.
macro_rules! on_both_backends {
    ($($name:ident => $scenario:ident;)+) => {$(
        mod $name {
            #[test]
            fn redis() {
                super::$scenario($crate::common::Backend::redis());
            }

            #[test]
            fn embedded() {
                super::$scenario($crate::common::Backend::embedded());
            }
        }
    )+};
}
pub mod branch;
