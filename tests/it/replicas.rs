//! Several `run` replicas on one Redis store and the leader lease `lock:leader` through the
//! built binary: exactly one replica executes while the other stands by; a SIGKILLed leader's
//! lease runs out and the standby takes over and finishes; a clean exit releases the lease; a
//! lease held by someone else holds a run off until it expires; and a leader stalled past its
//! lease writes nothing once it wakes up while another holds the lease. Every finished store
//! must equal what one uninterrupted run of the binary leaves on a fresh store, the run times
//! aside. Lease tokens are checked against the replicas' own pids and host names, read from
//! `/proc` and set by the test. On the embedded store, whose file lock admits one process, no
//! lease is taken.

use crate::common::branch::checkpoint;
use crate::common::chain::ChainFixture;
use crate::common::daemon::{
    executed_block, init_and_import, redis_server, uninterrupted_run, Daemon, Reference,
};
use crate::common::exec::{exec_progress, without_run_times, ExecProgress};
use crate::common::redis_server::RedisServer;
use crate::common::{assert_same_snapshot, var, Backend};
use evm_executor::store::embedded::EmbeddedStore;
use primitives::store::{Store, WriteBatch};
use redis::{ConnectionAddr, IntoConnectionInfo};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The lease key.
const LOCK_KEY: &str = "lock:leader";
/// `leader.lease_seconds` of every replica here.
const LEASE_SECONDS: u64 = 2;
/// `leader.lease_seconds` as a duration.
const LEASE: Duration = Duration::from_secs(LEASE_SECONDS);
/// Slack on top of a lease for a standby to notice the key is gone (it retries every quarter
/// lease) on a loaded machine.
const TAKEOVER_MARGIN: Duration = Duration::from_millis(2500);
/// The longest a test waits for a replica to reach a block.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a replica may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a replica executing blocks (its queues full) may take to exit after SIGTERM.
const MID_RUN_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The log line of a replica that found the lease taken.
const STANDBY_LOG: &str = "standby";
/// The log line of a replica that took the lease.
const ACQUIRED_LOG: &str = "leader lease acquired";

static HIVE_REFERENCE: OnceLock<Reference> = OnceLock::new();

/// hive-sync run once, uninterrupted, by a single `run --exit-at-head` on a fresh Redis store.
fn hive_reference() -> &'static Reference {
    HIVE_REFERENCE.get_or_init(|| {
        let chain = ChainFixture::hive_sync();
        uninterrupted_run(
            Backend::redis(),
            &chain.genesis_path(),
            &chain.chain_path(),
            &[],
        )
    })
}

/// A replica's overrides: a 2 s lease, a 100 ms poll, and `HOSTNAME` (the first part of its
/// lease token) set to `host`.
fn replica_env(host: &str) -> Vec<(String, String)> {
    vec![
        var(
            "EVM_EXECUTOR_LEADER_LEASE_SECONDS",
            LEASE_SECONDS.to_string(),
        ),
        var("EVM_EXECUTOR_EXECUTOR_POLL_INTERVAL_MS", "100"),
        var("HOSTNAME", host),
    ]
}

/// Unix milliseconds now.
fn unix_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.expect("the clock is after 1970").as_millis() as u64
}

/// A leader's lease token `HOSTNAME:pid:unix-ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    raw: Vec<u8>,
    host: String,
    pid: u32,
    ms: u64,
}

impl Token {
    /// Parse a token; panics on anything else.
    fn parse(raw: &[u8]) -> Self {
        let text = String::from_utf8_lossy(raw);
        let mut parts = text.rsplitn(3, ':');
        let (Some(ms), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
            panic!("{LOCK_KEY} = {text:?} is not HOSTNAME:pid:ms");
        };
        Self {
            raw: raw.to_vec(),
            host: host.to_string(),
            pid: pid.parse().unwrap_or_else(|_| panic!("pid of {text:?}")),
            ms: ms
                .parse()
                .unwrap_or_else(|_| panic!("milliseconds of {text:?}")),
        }
    }
}

/// The lease token in the store, if any.
fn lease_token(server: &RedisServer) -> Option<Token> {
    server.get(LOCK_KEY).map(|raw| Token::parse(&raw))
}

/// The pid of this test process's only child whose environment holds `HOSTNAME={host}`, read
/// from `/proc`. A child just forked still shows the test's own environment until it has
/// exec'ed, so the lookup is repeated for up to [`PROGRESS_TIMEOUT`] until one is found.
fn child_pid(host: &str) -> u32 {
    let started = Instant::now();
    loop {
        let found = children_with_host(host);
        if !found.is_empty() || started.elapsed() > PROGRESS_TIMEOUT {
            assert_eq!(found.len(), 1, "children with HOSTNAME={host}: {found:?}");
            return found[0];
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pids of this test process's children whose environment holds `HOSTNAME={host}`.
fn children_with_host(host: &str) -> Vec<u32> {
    let me = std::process::id();
    let wanted = format!("HOSTNAME={host}");
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // After the command name in parentheses: state, then the parent's pid.
            let (_, after_name) = stat.rsplit_once(')')?;
            let parent: u32 = after_name.split_whitespace().nth(1)?.parse().ok()?;
            if parent != me {
                return None;
            }
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            environ
                .split(|byte| *byte == 0)
                .any(|entry| entry == wanted.as_bytes())
                .then_some(pid)
        })
        .collect()
}

/// Send `signal` (`STOP`, `CONT`) to `pid`.
fn send_signal(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -{signal} {pid} failed");
}

/// `SET lock:leader {token} EX {seconds}`, as another replica would hold the lease.
fn hold_lease_elsewhere(server: &RedisServer, token: &str, seconds: u64) {
    let (host, port) = server.addr().rsplit_once(':').map_or_else(
        || panic!("{} is not host:port", server.addr()),
        |(host, port)| (host.to_string(), port.parse().expect("port")),
    );
    let info = ConnectionAddr::Tcp(host, port)
        .into_connection_info()
        .expect("connection info");
    // redis-server 7.0 does not know CLIENT SETINFO.
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    let client = redis::Client::open(info.set_redis_settings(settings)).expect("redis client");
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("connect to redis-server");
    redis::cmd("SET")
        .arg(LOCK_KEY)
        .arg(token)
        .arg("EX")
        .arg(seconds)
        .query::<()>(&mut con)
        .expect("SET lock:leader EX");
}

/// The execution stage's checkpoint block (0 before it has one).
fn execution_checkpoint(server: &RedisServer) -> u64 {
    checkpoint(server, "execution").map_or(0, |c| c.block)
}

/// `status` ended a replica with exit 0 and no panic.
fn assert_clean_exit(status: ExitStatus, daemon: &Daemon, what: &str) {
    let stderr = daemon.stderr();
    assert!(status.success(), "{what}: exit {status}; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{what}: a panic:\n{stderr}");
}

/// `store` (a finished Redis store) equals the hive-sync reference and holds no lease.
fn assert_same_as_one_replica(backend: &Backend, what: &str) {
    let server = redis_server(backend);
    assert_eq!(server.get(LOCK_KEY), None, "{LOCK_KEY} after {what}");
    assert_same_snapshot(
        &without_run_times(backend.snapshot()),
        &hive_reference().snapshot,
        &format!("{what} vs one uninterrupted replica"),
    );
}

/// How the leader goes away mid-run.
#[derive(Debug, Clone, Copy)]
enum LeaderEnd {
    /// SIGKILL: its lease stays until it expires.
    Killed,
    /// SIGTERM: it exits 0 and deletes its lease on the way out.
    Terminated,
}

/// Two replicas (`run`, lease 2 s) on one store with hive-sync imported: exactly one holds
/// `lock:leader` (a token of its host name and pid, set with an expiry) and the other logs
/// that it stands by. While the leader executes to block 1500, sampled every 10 ms: the token
/// never changes, its TTL stays within the lease, the execution checkpoint never goes back, and
/// the standby neither exits nor takes the lease. Then the leader ends as `end` says: SIGKILLed,
/// its token outlives it; SIGTERMed, it exits 0 within 10 s and its token is gone. Within the
/// lease and a margin the standby holds the lease with its own token and executes to 3000 by
/// itself. SIGTERM stops it with exit 0 and deletes the lease; the store equals one
/// uninterrupted replica's.
fn standby_takes_over(end: LeaderEnd) {
    let end_after_block = 1500;
    let chain = ChainFixture::hive_sync();
    let head = chain.block_count as u64;
    hive_reference();
    let backend = Backend::redis();
    init_and_import(&backend, &chain.genesis_path(), &chain.chain_path());
    let server = redis_server(&backend);
    let hosts = match end {
        LeaderEnd::Killed => ["killed-a", "killed-b"],
        LeaderEnd::Terminated => ["terminated-a", "terminated-b"],
    };
    let started_ms = unix_ms();
    let mut replicas: Vec<Daemon> = hosts
        .iter()
        .map(|host| Daemon::start(&backend, &replica_env(host), &["run"]))
        .collect();
    let pids: Vec<u32> = hosts.iter().map(|host| child_pid(host)).collect();
    let mut token = None;
    replicas[0].wait_until(PROGRESS_TIMEOUT, "a replica holds the lease", || {
        token = lease_token(server);
        token.is_some()
    });
    let token = token.expect("a token");
    let leader_index = hosts
        .iter()
        .position(|host| *host == token.host)
        .unwrap_or_else(|| panic!("{token:?} names neither replica {hosts:?}"));
    assert_eq!(token.pid, pids[leader_index], "the pid in {token:?}");
    assert!(
        (started_ms..=unix_ms()).contains(&token.ms),
        "{token:?}: milliseconds since the replicas started"
    );
    let mut standby = replicas.remove(1 - leader_index);
    let mut leader = replicas.remove(0);
    let (standby_host, standby_pid) = (hosts[1 - leader_index], pids[1 - leader_index]);

    leader.wait_until(PROGRESS_TIMEOUT, "the other replica logs standby", || {
        standby.stderr().contains(STANDBY_LOG)
    });
    let mut last_block = 0;
    let mut samples = 0;
    leader.wait_until(
        PROGRESS_TIMEOUT,
        &format!("the leader executed block {end_after_block}"),
        || {
            let holder = server.get(LOCK_KEY);
            assert_eq!(
                holder,
                Some(token.raw.clone()),
                "{LOCK_KEY} while the leader runs"
            );
            let ttl = server.ttls(&[LOCK_KEY.to_string()])[0];
            assert!(
                (0..=LEASE_SECONDS as i64).contains(&ttl),
                "{LOCK_KEY} TTL {ttl}, expected within the {LEASE_SECONDS} s lease"
            );
            let block = execution_checkpoint(server);
            assert!(
                block >= last_block,
                "the execution checkpoint went back from {last_block} to {block}"
            );
            last_block = block;
            samples += 1;
            block >= end_after_block
        },
    );
    assert!(
        last_block < head,
        "the leader reached the head ({last_block}) before it was stopped; the test needs a \
         slower run"
    );
    standby.assert_running("while the leader ran");
    assert!(
        !standby.stderr().contains(ACQUIRED_LOG),
        "the standby took the lease while the leader lived:\n{}",
        standby.stderr()
    );
    println!("{samples} samples while the leader ran to block {last_block}");

    let ended_at = Instant::now();
    match end {
        LeaderEnd::Killed => {
            assert_eq!(
                leader.kill9().signal(),
                Some(9),
                "the leader died of SIGKILL"
            );
            assert_eq!(
                server.get(LOCK_KEY),
                Some(token.raw.clone()),
                "the dead leader's lease outlives it until it expires"
            );
        }
        LeaderEnd::Terminated => {
            let status = leader.terminate(MID_RUN_STOP_TIMEOUT);
            assert_clean_exit(status, &leader, "SIGTERM to the leader mid-run");
            assert_ne!(
                server.get(LOCK_KEY),
                Some(token.raw.clone()),
                "the stopped leader's lease after its exit"
            );
        }
    }
    let mut successor = None;
    standby.wait_until(
        LEASE + TAKEOVER_MARGIN,
        "the standby holds the lease",
        || {
            successor = lease_token(server).filter(|t| t.raw != token.raw);
            successor.is_some()
        },
    );
    let successor = successor.expect("a new token");
    println!(
        "{end:?}: takeover {:?} after the leader's end",
        ended_at.elapsed()
    );
    assert_eq!(
        (successor.host.as_str(), successor.pid),
        (standby_host, standby_pid),
        "the new lease holder {successor:?}"
    );
    standby.wait_until(PROGRESS_TIMEOUT, "the new leader executed to 3000", || {
        assert_eq!(
            server.get(LOCK_KEY),
            Some(successor.raw.clone()),
            "{LOCK_KEY} while the new leader runs"
        );
        executed_block(server) == Some(head)
    });
    assert!(
        standby.stderr().contains(ACQUIRED_LOG),
        "the standby logs the takeover"
    );
    let status = standby.terminate(STOP_TIMEOUT);
    assert_clean_exit(status, &standby, "SIGTERM to the new leader");
    assert_same_as_one_replica(&backend, &format!("a takeover from a {end:?} leader"));
}

#[test]
fn standby_takes_over_from_a_killed_leader() {
    standby_takes_over(LeaderEnd::Killed);
}

#[test]
fn standby_takes_over_from_a_leader_stopped_mid_run() {
    standby_takes_over(LeaderEnd::Terminated);
}

/// `lock:leader` held by a foreign token for 3 s (`SET … EX 3`, written by the test) when
/// `run --exit-at-head` starts on geth-ethtest: while the key lives the run stays alive, logs
/// that it stands by naming the holder, and writes no execution progress or checkpoint; once
/// the key expires it takes the lease, executes to 600 (603 transactions, from the fixture
/// README) and exits 0 with the lease released.
#[test]
fn a_foreign_lease_holds_a_run_off_until_it_expires() {
    let foreign = "foreign-replica";
    let chain = ChainFixture::geth_ethtest();
    let backend = Backend::redis();
    init_and_import(&backend, &chain.genesis_path(), &chain.chain_path());
    let server = redis_server(&backend);
    let initial = server
        .get("idx:exec:progress")
        .expect("init wrote the progress");
    hold_lease_elsewhere(server, foreign, 3);
    let held_at = Instant::now();
    let mut run = Daemon::start(
        &backend,
        &replica_env("waiting"),
        &["run", "--exit-at-head"],
    );
    let mut checks = 0;
    run.wait_until(LEASE * 3, "the foreign lease expired", || {
        if server.get(LOCK_KEY).as_deref() != Some(foreign.as_bytes()) {
            return true;
        }
        assert_eq!(
            server.get("idx:exec:progress").as_ref(),
            Some(&initial),
            "the execution progress while another holds the lease"
        );
        assert_eq!(
            checkpoint(server, "execution"),
            None,
            "an execution checkpoint while another holds the lease"
        );
        checks += 1;
        false
    });
    let held = held_at.elapsed();
    println!("{checks} checks over {held:?} while the foreign lease lived");
    assert!(
        held >= Duration::from_secs(2),
        "the foreign lease lived {held:?}"
    );
    let stderr = run.stderr();
    assert!(
        stderr.contains(STANDBY_LOG) && stderr.contains(foreign),
        "the run logs that it stands by for {foreign}:\n{stderr}"
    );
    let status = run
        .wait_for_exit(PROGRESS_TIMEOUT)
        .unwrap_or_else(|| panic!("no exit after the lease expired:\n{}", run.stderr()));
    assert_clean_exit(status, &run, "run --exit-at-head after the foreign lease");
    assert_eq!(
        exec_progress(&backend.snapshot()),
        ExecProgress {
            latest_executed_block: chain.block_count as u64,
            total_txs_executed: chain.tx_count as u64,
        }
    );
    assert_eq!(server.get(LOCK_KEY), None, "{LOCK_KEY} after the run");
}

/// A leader (`run`, lease 2 s) on hive-sync is SIGSTOPped after block 300, its lease expires,
/// and another replica (the test, for 4 s) takes it; then the leader is SIGCONTed. Having gone
/// more than 2/3 of a lease without renewing, it must write nothing: the store 0.5 s and 2 s
/// after SIGCONT is the same (the lease key aside), and the leader is alive, back to standby
/// naming the other holder. Once that lease expires it takes the lease again and executes to
/// 3000; SIGTERM stops it with exit 0 and the store equals one uninterrupted replica's.
#[test]
fn a_stalled_leader_writes_nothing_after_its_lease() {
    let stall_after_block = 300;
    let other = "other-replica";
    let chain = ChainFixture::hive_sync();
    let head = chain.block_count as u64;
    hive_reference();
    let backend = Backend::redis();
    init_and_import(&backend, &chain.genesis_path(), &chain.chain_path());
    let server = redis_server(&backend);
    let host = "stalled";
    let mut leader = Daemon::start(&backend, &replica_env(host), &["run"]);
    let pid = child_pid(host);
    leader.wait_until(PROGRESS_TIMEOUT, "block 300 executed", || {
        execution_checkpoint(server) >= stall_after_block
    });
    send_signal(pid, "STOP");
    let stopped_at = Instant::now();
    while server.get(LOCK_KEY).is_some() {
        assert!(
            stopped_at.elapsed() < LEASE + TAKEOVER_MARGIN,
            "the stalled leader's lease did not expire"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    hold_lease_elsewhere(server, other, 4);
    send_signal(pid, "CONT");
    std::thread::sleep(Duration::from_millis(500));
    let mut woken = server.snapshot();
    let block = execution_checkpoint(server);
    std::thread::sleep(Duration::from_millis(1500));
    leader.assert_running("after SIGCONT while another replica held the lease");
    let mut later = server.snapshot();
    let later_block = execution_checkpoint(server);
    for store in [&mut woken, &mut later] {
        assert_eq!(store.remove(LOCK_KEY), Some(other.as_bytes().to_vec()));
    }
    assert!(
        block < head,
        "the leader reached the head ({block}) before the test looked"
    );
    assert_eq!(
        later_block, block,
        "the stalled leader went on executing after SIGCONT while {other} held the lease"
    );
    assert_same_snapshot(
        &later,
        &woken,
        &format!("1.5 s later, with the stalled leader awake past its lease (at block {block})"),
    );
    let stderr = leader.stderr();
    assert!(
        stderr.contains(STANDBY_LOG) && stderr.contains(other),
        "the woken leader stands by for {other}:\n{stderr}"
    );
    leader.wait_until(
        PROGRESS_TIMEOUT,
        "block 3000 executed after the other lease",
        || executed_block(server) == Some(head),
    );
    let status = leader.terminate(STOP_TIMEOUT);
    assert_clean_exit(status, &leader, "SIGTERM after the stall");
    assert_same_as_one_replica(&backend, "a stall past the lease");
}

/// A leader cut off from the store while it has writes to make: redis-server is stopped under
/// it (its stages start retrying), the leader is frozen (SIGSTOP) until its lease has lapsed,
/// the server comes back and another replica (the test) takes the lease, then the leader is
/// thawed. The writes it was retrying were due before its deadline and must not land now: the
/// store 2 s after SIGCONT equals the store before it, and the leader stands by for the other
/// holder instead of exiting.
#[test]
fn a_leader_cut_off_past_its_lease_drops_the_writes_it_was_retrying() {
    let outage_after_block = 300;
    let other = "other-replica";
    let chain = ChainFixture::hive_sync();
    let head = chain.block_count as u64;
    let mut backend = Backend::redis();
    init_and_import(&backend, &chain.genesis_path(), &chain.chain_path());
    let host = "cut-off";
    let mut env = replica_env(host);
    // Wait out the outage (the tests' default gives up after a few attempts), retrying often.
    env.push(var("EVM_EXECUTOR_STORAGE_PIKA_MAX_RETRIES", "0"));
    env.push(var("EVM_EXECUTOR_STORAGE_PIKA_RETRY_MAX_BACKOFF_MS", "100"));
    let mut leader = Daemon::start(&backend, &env, &["run"]);
    let pid = child_pid(host);
    let Backend::Redis(server) = &mut backend else {
        unreachable!("Backend::redis() is a Redis backend")
    };
    leader.wait_until(PROGRESS_TIMEOUT, "block 300 executed", || {
        execution_checkpoint(server) >= outage_after_block
    });
    server.stop();
    // Long enough for the stages to meet the outage and start retrying their writes.
    std::thread::sleep(Duration::from_millis(300));
    send_signal(pid, "STOP");
    std::thread::sleep(LEASE + Duration::from_millis(500));
    server.start_again();
    hold_lease_elsewhere(server, other, 5);
    let before = server.snapshot();
    let block = execution_checkpoint(server);
    assert!(
        block < head,
        "the leader reached the head ({block}) before the outage"
    );
    send_signal(pid, "CONT");
    std::thread::sleep(Duration::from_secs(2));
    leader.assert_running("after SIGCONT while another replica held the lease");
    let after = server.snapshot();
    assert_same_snapshot(
        &after,
        &before,
        &format!("2 s after the cut-off leader was thawed past its lease (at block {block})"),
    );
    let stderr = leader.stderr();
    assert!(
        stderr.contains(STANDBY_LOG) && stderr.contains(other),
        "the thawed leader stands by for {other}:\n{stderr}"
    );
    let status = leader.terminate(STOP_TIMEOUT);
    assert_clean_exit(status, &leader, "SIGTERM after the outage");
}

/// The embedded store admits one process (redb locks the file), so `run` takes no lease there:
/// a `lock:leader` left in the file, as a SIGKILLed earlier run leaves its own, holds nothing
/// off. The run goes to the head at once (a run that stood by would wait out the hour the key
/// still has), never stands by, and leaves the key as it was.
#[test]
fn a_lease_left_in_the_embedded_store_holds_no_run_off() {
    let chain = ChainFixture::hive_sync();
    let backend = Backend::embedded();
    init_and_import(&backend, &chain.genesis_path(), &chain.chain_path());
    let left = b"killed-earlier:1:1";
    {
        let store = EmbeddedStore::open(Path::new(&backend.location())).expect("open the store");
        let mut batch = WriteBatch::new();
        batch.set_with_ttl(LOCK_KEY.to_string(), left, Duration::from_secs(3600));
        store.write(&batch).expect("leave a lease in the store");
    }
    let daemon = Daemon::start(&backend, &[], &["run", "--exit-at-head"]);
    let output = daemon.finish_within(PROGRESS_TIMEOUT);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "run failed:\n{stderr}");
    assert!(
        !stderr.contains(STANDBY_LOG),
        "a run on the embedded store stood by:\n{stderr}"
    );
    let store = backend.snapshot();
    assert_eq!(
        exec_progress(&store).latest_executed_block,
        chain.block_count as u64,
        "executed to the head"
    );
    assert_eq!(
        store.get(LOCK_KEY).map(Vec::as_slice),
        Some(left.as_slice()),
        "the lease left in the store is untouched"
    );
}
