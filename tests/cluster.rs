//! The `pika` backend on a real 3-master Redis Cluster (`storage.pika.cluster = true`), through
//! the built binary: the fixture chains and a generated chain leave the same store, key for key
//! and byte for byte, as on one redis-server; so do runs cut by SIGKILL at random instants, a
//! run during which a master is stopped and started again, and a run during which slots move
//! between masters (by `redis-cli --cluster reshard`, and by hand so that writes meet ASK).
//! The leader lease (one key, `SET NX EX`) is taken and released on the cluster in every run
//! that leaves it on.

#[macro_use]
mod common;

use common::chain::{raw_blocks, write_file, ChainFixture};
use common::daemon::{
    log_uniform, test_seed, uninterrupted_run, Daemon, Reference, RUN_TIMEOUT, SEED_ENV,
};
use common::exec::{exec_progress, without_run_times, EXEC_PROGRESS_KEY};
use common::redis_cluster::RedisCluster;
use common::{
    assert_same_snapshot, expect_success, run_cli, strip_key_prefix, var, Backend,
};
use evm_executor::gen::workload::Rng;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

type Snapshot = BTreeMap<String, Vec<u8>>;

/// Masters of the test cluster.
const MASTERS: usize = 3;

/// `leader.enabled = false`: a killed daemon's lease would make the next one wait it out.
fn without_leader_lease() -> (String, String) {
    var("EVM_EXECUTOR_LEADER_ENABLED", "false")
}

/// `storage.pika.max_retries = 0`: an outage is waited out.
fn retry_for_ever() -> (String, String) {
    var("EVM_EXECUTOR_STORAGE_PIKA_MAX_RETRIES", "0")
}

/// `storage.key_prefix`.
fn key_prefix(prefix: &str) -> (String, String) {
    var("EVM_EXECUTOR_STORAGE_KEY_PREFIX", prefix)
}

/// `init` and `import` of a chain through the CLI with `env`, both of which must succeed.
fn init_and_import_with(env: &[(String, String)], genesis: &Path, chain_file: &Path) {
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    expect_success(&run_cli(env, &["init", "--genesis", &path(genesis)]));
    expect_success(&run_cli(env, &["import", &path(chain_file)]));
}

/// `run --exit-at-head` with `env`, which must succeed within [`RUN_TIMEOUT`]; its stderr.
fn run_to_head(env: &[(String, String)]) -> String {
    let output = Daemon::start_with_env(env, &["run", "--exit-at-head"]).finish_within(RUN_TIMEOUT);
    expect_success(&output);
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The keys under `prefix` in `cluster`, prefix taken off, run times taken out.
fn chain_snapshot(cluster: &RedisCluster, prefix: &str) -> Snapshot {
    let mut snapshot = cluster.snapshot();
    snapshot.retain(|key, _| key.starts_with(prefix));
    without_run_times(strip_key_prefix(snapshot, prefix))
}

/// `idx:exec:progress.latestExecutedBlock` under `prefix` in the cluster, if written yet.
fn executed_block(cluster: &RedisCluster, prefix: &str) -> Option<u64> {
    let key = format!("{prefix}{EXEC_PROGRESS_KEY}");
    let bytes = cluster.nodes()[cluster.owner_of(cluster.key_slot(&key))].get(&key)?;
    let store = BTreeMap::from([(EXEC_PROGRESS_KEY.to_string(), bytes)]);
    Some(exec_progress(&store).latest_executed_block)
}

/// A generated chain (`evm-executor gen`) in a temp dir: 30 blocks of 40 transactions.
fn generated_chain() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir for the generated chain");
    let out = dir.path().to_str().expect("utf-8 path").to_string();
    expect_success(&run_cli(
        &[],
        &["gen", "--blocks", "30", "--txs-per-block", "40", "--out", &out],
    ));
    let (genesis, chain) = (dir.path().join("genesis.json"), dir.path().join("chain.rlp"));
    (dir, genesis, chain)
}

/// geth-ethtest, hive-sync and a generated chain, each under a key prefix of its own on one
/// cluster (with the leader lease on, as by default): each leaves exactly what it leaves on a
/// single redis-server. Every node ends up holding part of each chain's keys.
#[test]
fn chains_execute_on_a_cluster_as_on_one_node() {
    let cluster = RedisCluster::start(MASTERS);
    let (_generated, gen_genesis, gen_chain) = generated_chain();
    let geth = ChainFixture::geth_ethtest();
    let hive = ChainFixture::hive_sync();
    let chains = [
        ("geth", geth.genesis_path(), geth.chain_path()),
        ("hive", hive.genesis_path(), hive.chain_path()),
        ("generated", gen_genesis, gen_chain),
    ];
    for (name, genesis, chain_file) in &chains {
        let prefix = format!("{name}:");
        let env = cluster.env_with(&[key_prefix(&prefix)]);
        init_and_import_with(&env, genesis, chain_file);
        run_to_head(&env);
        let on_cluster = chain_snapshot(&cluster, &prefix);
        assert!(
            !on_cluster.keys().any(|key| key.starts_with("lock:")),
            "{name}: the leader lease was not released"
        );
        let single = uninterrupted_run(Backend::redis(), genesis, chain_file, &[]);
        assert_same_snapshot(
            &on_cluster,
            &single.snapshot,
            &format!("{name} on a {MASTERS}-master cluster vs one node"),
        );
        println!("{name}: {} keys equal", on_cluster.len());
    }
    let counts = cluster.key_counts();
    assert!(
        counts.iter().all(|n| *n > 1000),
        "keys are not spread over the masters: {counts:?}"
    );
}

static HIVE: OnceLock<Reference> = OnceLock::new();

/// hive-sync run once, uninterrupted, on a single redis-server (which a cluster must match:
/// [`chains_execute_on_a_cluster_as_on_one_node`]).
fn hive_reference() -> &'static Reference {
    HIVE.get_or_init(|| {
        let chain = ChainFixture::hive_sync();
        uninterrupted_run(
            Backend::redis(),
            &chain.genesis_path(),
            &chain.chain_path(),
            &[],
        )
    })
}

/// The shortest delay before a kill: inside process start-up.
const MIN_KILL_DELAY: Duration = Duration::from_millis(20);
/// The default seed of the kill instants (`DAEMON_TEST_SEED` replaces it).
const DEFAULT_KILL_SEED: u64 = 0x636c_7573_7465_7239;
/// SIGKILLs the run must survive.
const KILLS: usize = 10;

/// hive-sync on a cluster: `run --exit-at-head` SIGKILLed after seeded log-uniform delays
/// between 20 ms and the uninterrupted run's duration, restarted, again and again until 10
/// kills have landed, then left to finish. A run that finishes before its kill ends the round:
/// its store must equal the uninterrupted run's, key for key, and the next round starts on the
/// emptied cluster.
#[test]
fn kill_9_at_random_instants_on_a_cluster() {
    let chain = ChainFixture::hive_sync();
    let reference = hive_reference();
    let cluster = RedisCluster::start(MASTERS);
    let env = cluster.env_with(&[without_leader_lease()]);
    let seed = test_seed(DEFAULT_KILL_SEED);
    let longest = reference.run_time.max(MIN_KILL_DELAY * 2);
    println!(
        "seed {seed:#x} ({SEED_ENV} replaces it), delays log-uniform in \
         {MIN_KILL_DELAY:?}..{longest:?}"
    );
    let mut rng = Rng::new(seed, 0);
    let mut kills = 0;
    for round in 1.. {
        cluster.flush_all();
        init_and_import_with(&env, &chain.genesis_path(), &chain.chain_path());
        loop {
            if kills >= KILLS {
                run_to_head(&env);
                break;
            }
            let delay = log_uniform(&mut rng, MIN_KILL_DELAY, longest);
            let mut daemon = Daemon::start_with_env(&env, &["run", "--exit-at-head"]);
            let status = match daemon.wait_for_exit(delay) {
                Some(status) => status,
                None => daemon.kill9(),
            };
            if status.signal() == Some(9) {
                kills += 1;
                println!(
                    "round {round}: kill {kills} after {delay:?}; executed {:?}",
                    executed_block(&cluster, "")
                );
                continue;
            }
            assert!(
                status.success(),
                "round {round}: run exited with {status}; stderr:\n{}",
                daemon.stderr()
            );
            println!("round {round}: the run finished within {delay:?}");
            break;
        }
        assert_same_snapshot(
            &chain_snapshot(&cluster, ""),
            &reference.snapshot,
            &format!("round {round} (seed {seed:#x}, {kills} kills so far) vs an uninterrupted run"),
        );
        if kills >= KILLS {
            return;
        }
    }
}

/// Block the daemon must have passed before a master is stopped.
const OUTAGE_AFTER_BLOCK: u64 = 800;
/// How long the master stays down.
const OUTAGE: Duration = Duration::from_secs(1);
/// The longest a test waits for the daemon to reach a block.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(120);

/// hive-sync on a cluster with `max_retries = 0`: one master is shut down once block 800 is
/// executed, stays down for a second with the daemon alive, and comes back on its port and data.
/// The daemon finishes by itself and the store equals an uninterrupted run's.
#[test]
fn master_stopped_and_restarted_mid_run() {
    let chain = ChainFixture::hive_sync();
    let reference = hive_reference();
    let mut cluster = RedisCluster::start(MASTERS);
    let env = cluster.env_with(&[without_leader_lease(), retry_for_ever()]);
    init_and_import_with(&env, &chain.genesis_path(), &chain.chain_path());
    let mut daemon = Daemon::start_with_env(&env, &["run", "--exit-at-head"]);
    let mut before_outage = None;
    daemon.wait_until(PROGRESS_TIMEOUT, "block 800 executed", || {
        before_outage = executed_block(&cluster, "").filter(|n| *n >= OUTAGE_AFTER_BLOCK);
        before_outage.is_some()
    });
    // The master serving the execution progress: the daemon writes to it after every batch.
    let slot = cluster.key_slot(EXEC_PROGRESS_KEY);
    let stopped = cluster.owner_of(slot);
    cluster.node_mut(stopped).stop();
    let executed = before_outage.expect("progress read before the outage");
    assert!(
        executed < chain.block_count as u64,
        "the run reached the head ({executed}) before the outage; the test needs a slower run"
    );
    std::thread::sleep(OUTAGE);
    daemon.assert_running(&format!("while master {stopped} was down (progress {executed})"));
    cluster.node_mut(stopped).start_again();
    cluster.wait_until_settled();
    let output = daemon.finish_within(PROGRESS_TIMEOUT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "run failed after the outage:\n{stderr}");
    assert!(
        stderr.contains("store unreachable"),
        "the outage was not seen (no retry logged):\n{stderr}"
    );
    assert_same_snapshot(
        &chain_snapshot(&cluster, ""),
        &reference.snapshot,
        &format!("after master {stopped} was down at block {executed} vs an uninterrupted run"),
    );
}

/// The MOVED and ASK redirections a daemon's JSON log says it followed.
fn redirections(log: &str) -> (u64, u64) {
    let mut totals = (0, 0);
    for line in log.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let fields = &entry["fields"];
        if fields["message"] == "cluster redirected commands; following" {
            totals.0 += fields["moved"].as_u64().unwrap_or(0);
            totals.1 += fields["asked"].as_u64().unwrap_or(0);
        }
    }
    totals
}

/// Blocks per part of hive-sync that the test's "syncer" imports while the daemon runs.
const SYNC_STEP: usize = 100;
/// Slots `redis-cli --cluster reshard` moves mid-run.
const RESHARDED_SLOTS: usize = 300;

/// hive-sync fed to a running daemon (`run`, polling every 100 ms) 100 blocks at a time by a
/// thread standing in for the syncer, on a cluster with `max_retries = 1`, so that any failed
/// attempt reaches the pipeline and fails the run. Meanwhile the slots of the execution
/// progress and of every stage checkpoint (written after every batch) move to another master
/// key by key with pauses, then `redis-cli --cluster reshard` moves 300 slots more. The daemon
/// keeps running, logs that it followed redirections, and once stopped (and a last
/// `run --exit-at-head` found nothing left to do) the store equals an uninterrupted run's.
#[test]
fn slots_migrated_mid_run_are_followed() {
    let chain = ChainFixture::hive_sync();
    let reference = hive_reference();
    let cluster = RedisCluster::start(MASTERS);
    let env = cluster.env_with(&[
        without_leader_lease(),
        var("EVM_EXECUTOR_STORAGE_PIKA_MAX_RETRIES", "1"),
        var("EVM_EXECUTOR_EXECUTOR_POLL_INTERVAL_MS", "100"),
        var("EVM_EXECUTOR_LOG_LEVEL", "debug"),
        var("EVM_EXECUTOR_LOG_FORMAT", "json"),
    ]);
    let file = chain.chain_bytes();
    let blocks = raw_blocks(&file);
    let parts = tempfile::tempdir().expect("temp dir for the chain parts");
    let part_ends: Vec<usize> = (SYNC_STEP..blocks.len())
        .step_by(SYNC_STEP)
        .chain([blocks.len()])
        .collect();
    let part_files: Vec<PathBuf> = part_ends
        .iter()
        .map(|&end| {
            let cut = blocks.get(end).map_or(file.len(), |block| block.offset);
            write_file(&parts, &format!("to-{end}.rlp"), &file[..cut])
        })
        .collect();
    init_and_import_with(&env, &chain.genesis_path(), &part_files[0]);
    let mut daemon = Daemon::start_with_env(&env, &["run"]);
    let syncer_env = env.clone();
    let syncer = std::thread::spawn(move || {
        for part in &part_files[1..] {
            let path = part.to_str().expect("utf-8 path");
            expect_success(&run_cli(&syncer_env, &["import", path]));
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    daemon.wait_until(PROGRESS_TIMEOUT, "block 50 executed", || {
        executed_block(&cluster, "").is_some_and(|n| n >= 50)
    });
    let mut moved = Vec::new();
    for key in [
        EXEC_PROGRESS_KEY,
        "idx:stage:execution",
        "idx:stage:commit",
        "idx:stage:receipts",
    ] {
        let slot = cluster.key_slot(key);
        let from = cluster.owner_of(slot);
        let to = (from + 1) % MASTERS;
        cluster.migrate_slot(slot, from, to, Duration::from_millis(50));
        moved.push(format!("{key} (slot {slot}) {from}->{to}"));
    }
    cluster.reshard(0, 1, RESHARDED_SLOTS);
    let executed = executed_block(&cluster, "").unwrap_or(0);
    println!("moved {moved:?} and {RESHARDED_SLOTS} slots by reshard; executed {executed}");
    assert!(
        executed < chain.block_count as u64,
        "the run reached the head before the slots had moved; the test needs a slower syncer"
    );
    syncer.join().expect("the syncer thread");
    let head = chain.block_count as u64;
    daemon.wait_until(PROGRESS_TIMEOUT, "the head executed", || {
        executed_block(&cluster, "") == Some(head)
    });
    let status = daemon.terminate(PROGRESS_TIMEOUT);
    let stderr = daemon.stderr();
    assert!(status.success(), "run failed during the migration:\n{stderr}");
    let (moved, asked) = redirections(&stderr);
    println!("the daemon followed {moved} MOVED and {asked} ASK redirections");
    assert!(
        moved > 0 && asked > 0,
        "MOVED and ASK were not both met: the slots moved while nothing was read or written\n\
         {stderr}"
    );
    run_to_head(&env);
    assert_same_snapshot(
        &chain_snapshot(&cluster, ""),
        &reference.snapshot,
        "after slots moved mid-run vs an uninterrupted run",
    );
}
