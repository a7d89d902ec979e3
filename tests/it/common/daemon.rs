//! The daemon as a child process the test can watch, SIGKILL or SIGTERM while it runs; polling
//! a Redis store while it works; a reference run (one uninterrupted `run --exit-at-head` on a
//! fresh store) to compare a store with; and a seeded random source for kill instants.

use super::exec::{exec_progress, without_run_times, EXEC_PROGRESS_KEY};
use super::redis_server::RedisServer;
use super::{cli_command, expect_success, import, init, Backend};
use evm_executor::gen::workload::Rng;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How often a waiting test looks at the child or the store again.
const POLL: Duration = Duration::from_millis(10);
/// The longest one `run --exit-at-head` of a test chain may take before the test fails (a
/// hung run must fail the test, not hang it).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// The environment variable that replaces the default seed of the kill instants.
pub const SEED_ENV: &str = "DAEMON_TEST_SEED";

/// `evm-executor` started in the background against a backend, its output in files.
pub struct Daemon {
    child: Child,
    status: Option<ExitStatus>,
    logs: TempDir,
    _cwd: Option<TempDir>,
}

impl Daemon {
    /// Start the binary with `args` against `backend` with `extra` overrides.
    pub fn start(backend: &Backend, extra: &[(String, String)], args: &[&str]) -> Self {
        let (command, cwd) = cli_command(&backend.env_with(extra), args);
        Self::spawn(command, Some(cwd))
    }

    /// Start `command` (an `evm-executor` the test set up itself); `cwd`, when given, is kept
    /// until the process ends.
    pub fn spawn(mut command: Command, cwd: Option<TempDir>) -> Self {
        let logs = tempfile::tempdir().expect("temp dir for the daemon's output");
        let file = |name: &str| File::create(logs.path().join(name)).expect("daemon output file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file("stdout"))
            .stderr(file("stderr"))
            .spawn()
            .expect("start evm-executor");
        Self {
            child,
            status: None,
            logs,
            _cwd: cwd,
        }
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output_file("stderr")).into_owned()
    }

    fn output_file(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.logs.path().join(name)).expect("read the daemon's output")
    }

    /// Wait for it to exit by itself and return what it did; fails the test (after a SIGKILL)
    /// when that takes longer than `timeout`.
    pub fn finish_within(mut self, timeout: Duration) -> Output {
        let Some(status) = self.wait_for_exit(timeout) else {
            self.kill9();
            panic!(
                "evm-executor did not exit within {timeout:?}; stderr:\n{}",
                self.stderr()
            )
        };
        Output {
            status,
            stdout: self.output_file("stdout"),
            stderr: self.output_file("stderr"),
        }
    }

    /// Its exit status once it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("poll evm-executor");
        }
        self.status
    }

    /// Wait up to `timeout` for it to exit; `None` when it still runs.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            std::thread::sleep(POLL.min(deadline - now));
        }
    }

    /// SIGKILL it (unless it has exited already) and return how it ended.
    pub fn kill9(&mut self) -> ExitStatus {
        if let Some(status) = self.exited() {
            return status;
        }
        self.child.kill().expect("SIGKILL evm-executor");
        let status = self.child.wait().expect("reap evm-executor");
        self.status = Some(status);
        status
    }

    /// SIGTERM it and wait up to `timeout` for it to exit; fails the test (after a SIGKILL)
    /// when it does not.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        if self.exited().is_none() {
            // Not reaped yet, so the pid is still this child's.
            let sent = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(sent.success(), "kill -TERM failed");
        }
        match self.wait_for_exit(timeout) {
            Some(status) => status,
            None => {
                self.kill9();
                panic!(
                    "evm-executor did not exit within {timeout:?} of SIGTERM; stderr:\n{}",
                    self.stderr()
                )
            }
        }
    }

    /// Fail the test, showing stderr, when the process has exited.
    pub fn assert_running(&mut self, when: &str) {
        if let Some(status) = self.exited() {
            panic!(
                "evm-executor exited with {status} {when}; stderr:\n{}",
                self.stderr()
            );
        }
    }

    /// Wait up to `timeout` until `done()`; fails the test, showing stderr, on timeout or when
    /// the process exits first.
    pub fn wait_until(&mut self, timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !done() {
            self.assert_running(&format!("while the test waited for {what}"));
            assert!(
                Instant::now() < deadline,
                "{what} did not happen within {timeout:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `idx:exec:progress.latestExecutedBlock` in a running server; `None` before the first
/// progress is written.
pub fn executed_block(server: &RedisServer) -> Option<u64> {
    let bytes = server.get(EXEC_PROGRESS_KEY)?;
    let store = BTreeMap::from([(EXEC_PROGRESS_KEY.to_string(), bytes)]);
    Some(exec_progress(&store).latest_executed_block)
}

/// The prefix of the leader lease's keys, which exist while a daemon runs.
pub const LEASE_PREFIX: &str = "lock:";

/// A snapshot without the leader lease (to compare a store while a daemon holds it).
pub fn without_lease(mut snapshot: BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    snapshot.retain(|key, _| !key.starts_with(LEASE_PREFIX));
    snapshot
}

/// The Redis server of a Redis backend; panics for the embedded one.
pub fn redis_server(backend: &Backend) -> &RedisServer {
    match backend {
        Backend::Redis(server) => server,
        Backend::Embedded(_) => panic!("this test needs the Redis backend"),
    }
}

/// `run --exit-at-head` against `backend` with `extra` overrides, failing the test when it
/// runs longer than [`RUN_TIMEOUT`].
pub fn run_to_head_with(backend: &Backend, extra: &[(String, String)]) -> Output {
    Daemon::start(backend, extra, &["run", "--exit-at-head"]).finish_within(RUN_TIMEOUT)
}

/// `init` with `genesis` and `import` of `chain_file`, both of which must succeed.
pub fn init_and_import(backend: &Backend, genesis: &Path, chain_file: &Path) {
    init_and_import_with(backend, &[], genesis, chain_file);
}

/// [`init_and_import`] with `init_env` overrides for `init`.
pub fn init_and_import_with(
    backend: &Backend,
    init_env: &[(String, String)],
    genesis: &Path,
    chain_file: &Path,
) {
    init(backend, init_env, genesis);
    expect_success(&import(backend, chain_file));
}

/// What one uninterrupted run leaves: the store without its run times, and how long the run
/// took.
#[derive(Debug)]
pub struct Reference {
    /// Every key and value after the run, `without_run_times`.
    pub snapshot: BTreeMap<String, Vec<u8>>,
    /// The wall time of `run --exit-at-head`.
    pub run_time: Duration,
}

/// `init`, `import` of `chain_file` and one `run --exit-at-head` with `extra` overrides on
/// `backend` (a fresh store), which must succeed.
pub fn uninterrupted_run(
    backend: Backend,
    genesis: &Path,
    chain_file: &Path,
    extra: &[(String, String)],
) -> Reference {
    init_and_import_with(&backend, extra, genesis, chain_file);
    let started = Instant::now();
    expect_success(&run_to_head_with(&backend, extra));
    let run_time = started.elapsed();
    Reference {
        snapshot: without_run_times(backend.snapshot()),
        run_time,
    }
}

/// `$DAEMON_TEST_SEED` (decimal or `0x` hex) when set, else `default`.
pub fn test_seed(default: u64) -> u64 {
    let Ok(text) = std::env::var(SEED_ENV) else {
        return default;
    };
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|e| panic!("{SEED_ENV}={text} is not a u64: {e}"))
}

/// Log-uniform in [`low`, `high`): every order of magnitude between them equally likely.
/// `rng` is the generator's deterministic source, so a failing sequence of kill instants can be
/// replayed from its seed.
pub fn log_uniform(rng: &mut Rng, low: Duration, high: Duration) -> Duration {
    // Uniform in [0, 1) from the top 53 bits.
    let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let (low, high) = (low.as_secs_f64(), high.as_secs_f64());
    Duration::from_secs_f64(low * (high / low).powf(unit))
}
