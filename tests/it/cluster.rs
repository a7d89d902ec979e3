//! The `pika` backend on a real 3-master Redis Cluster (`storage.pika.cluster = true`), through
//! the built binary: the fixture chains and a generated chain leave the same store, key for key
//! and byte for byte, as on one redis-server; so do runs cut by SIGKILL at random instants, a
//! run during which a master is stopped and started again, and a run during which slots move
//! between masters (by `redis-cli --cluster reshard`, and by hand so that writes meet ASK).
//! The leader lease (one key, `SET NX EX`) is taken and released on the cluster in every run
//! that leaves it on.

use crate::common::chain::{raw_blocks, write_file, ChainFixture};
use crate::common::daemon::{
    log_uniform, redis_reference, test_seed, uninterrupted_run, Daemon, Reference, RUN_TIMEOUT,
    SEED_ENV,
};
use crate::common::exec::{exec_progress, without_run_times, EXEC_PROGRESS_KEY};
use crate::common::redis_cluster::RedisCluster;
use crate::common::{
    assert_same_snapshot, expect_success, run_cli, strip_key_prefix, var, Backend,
};
use evm_executor::config::PikaConfig;
use evm_executor::gen::workload::Rng;
use evm_executor::store::pika::PikaStore;
use pipeline::metrics::metrics;
use primitives::store::{Store, StoreError, WriteBatch};
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
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
        &[
            "gen",
            "--blocks",
            "30",
            "--txs-per-block",
            "40",
            "--out",
            &out,
        ],
    ));
    let (genesis, chain) = (
        dir.path().join("genesis.json"),
        dir.path().join("chain.rlp"),
    );
    (dir, genesis, chain)
}

/// Round trips counted so far to `node`, and failures.
fn node_meters(node: &str) -> (u64, u64) {
    let m = metrics();
    (
        m.store_node_round_trips_total
            .with_label_values(&[node])
            .get(),
        m.store_node_errors_total.with_label_values(&[node]).get(),
    )
}

/// The store trait on a cluster, in process: a batch of 3000 keys lands on every master and
/// reads back in order; writes to one key keep their order; expiry, `SET NX` and a prefix scan
/// over every master behave as on one node; every master's round trips are counted; and a
/// stopped master fails its keys (after `max_retries`, as unreachable: transient) and counts
/// the failures, while the other masters keep serving theirs.
#[test]
fn store_operations_on_a_cluster() {
    let mut cluster = RedisCluster::start(MASTERS);
    let store = PikaStore::connect(&PikaConfig {
        addr: cluster.seeds(),
        cluster: true,
        max_retries: 2,
        retry_max_backoff_ms: 100,
        ..PikaConfig::default()
    })
    .expect("connect to the cluster");
    let before: Vec<(u64, u64)> = cluster
        .nodes()
        .iter()
        .map(|node| node_meters(&node.addr()))
        .collect();
    let keys: Vec<String> = (0..3000).map(|i| format!("k:{i}")).collect();
    let mut batch = WriteBatch::new();
    for key in &keys {
        batch.set(key.clone(), format!("value of {key}"));
    }
    batch
        .set("same", "1")
        .delete("same")
        .set("same", "2")
        .set("gone", "x")
        .delete("gone")
        .set_with_ttl("brief", "y", Duration::from_secs(1));
    store.write(&batch).expect("write the batch");
    let values = store.multi_get(&keys).expect("read the batch");
    for (key, value) in keys.iter().zip(&values) {
        assert_eq!(
            value.as_deref(),
            Some(format!("value of {key}").as_bytes()),
            "{key}"
        );
    }
    assert_eq!(store.get("same").expect("GET"), Some(b"2".to_vec()));
    assert_eq!(store.get("gone").expect("GET"), None);
    assert_eq!(store.get("brief").expect("GET"), Some(b"y".to_vec()));
    assert!(
        cluster.key_counts().iter().all(|n| *n > 500),
        "{:?}",
        cluster.key_counts()
    );
    let mut scanned = store.scan_prefix("k:").expect("scan");
    scanned.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(scanned, expected);
    assert!(store
        .set_if_absent("lock", b"me", Duration::from_secs(10))
        .expect("SET NX"));
    assert!(!store
        .set_if_absent("lock", b"you", Duration::from_secs(10))
        .expect("SET NX"));
    assert_eq!(store.get("lock").expect("GET"), Some(b"me".to_vec()));
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(store.get("brief").expect("GET"), None, "expired");
    for (node, (round_trips, _)) in cluster.nodes().iter().zip(&before) {
        let (now, _) = node_meters(&node.addr());
        assert!(
            now > *round_trips,
            "no round trip counted for {}",
            node.addr()
        );
    }

    let stopped = cluster.owner_of(cluster.key_slot("k:0"));
    let stopped_addr = cluster.nodes()[stopped].addr();
    let errors_before = node_meters(&stopped_addr).1;
    cluster.node_mut(stopped).stop();
    match store.get("k:0") {
        Err(error @ StoreError::Unavailable { .. }) => {
            assert!(error.is_transient());
            assert!(error.to_string().contains(&stopped_addr), "{error}");
        }
        other => panic!("a GET from a stopped master gave {other:?}"),
    }
    assert!(
        node_meters(&stopped_addr).1 > errors_before,
        "no failure counted"
    );
    let elsewhere = keys
        .iter()
        .find(|key| cluster.owner_of(cluster.key_slot(key)) != stopped)
        .expect("a key on another master");
    assert!(store
        .get(elsewhere)
        .expect("GET from a running master")
        .is_some());
    cluster.node_mut(stopped).start_again();
    cluster.wait_until_settled();
    assert_eq!(
        store.get("k:0").expect("GET after the restart"),
        Some(b"value of k:0".to_vec())
    );
}

/// A batch of 1000 keys, written as `value {round} of {key}`.
fn values_batch(keys: &[String], round: u32) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for key in keys {
        batch.set(key.clone(), format!("value {round} of {key}"));
    }
    batch
}

/// A failover between two batches (a replica of the master serving `k:0` promoted with
/// `CLUSTER FAILOVER`): the second batch reaches the new master (the old one, now a replica,
/// answers MOVED, counted as its error, and the slot map is read again) and every key reads
/// back its second value.
#[test]
fn a_failover_is_followed() {
    let mut cluster = RedisCluster::start(MASTERS);
    let store = PikaStore::connect(&PikaConfig {
        addr: cluster.seeds(),
        cluster: true,
        max_retries: 2,
        ..PikaConfig::default()
    })
    .expect("connect to the cluster");
    let keys: Vec<String> = (0..1000).map(|i| format!("k:{i}")).collect();
    store.write(&values_batch(&keys, 1)).expect("first batch");
    let slot = cluster.key_slot("k:0");
    let old_master = cluster.owner_of(slot);
    let replica = cluster.add_replica(old_master);
    cluster.failover(replica);
    assert_eq!(
        cluster.owner_of(slot),
        replica,
        "the replica serves the slot"
    );
    store.write(&values_batch(&keys, 2)).expect("second batch");
    let values = store.multi_get(&keys).expect("read back");
    for (key, value) in keys.iter().zip(values) {
        assert_eq!(
            value,
            Some(format!("value 2 of {key}").into_bytes()),
            "{key}"
        );
    }
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

/// hive-sync run once on a single redis-server (which a cluster must match:
/// [`chains_execute_on_a_cluster_as_on_one_node`]).
fn hive_reference() -> &'static Reference {
    redis_reference(&ChainFixture::hive_sync())
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
            &format!(
                "round {round} (seed {seed:#x}, {kills} kills so far) vs an uninterrupted run"
            ),
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
    daemon.assert_running(&format!(
        "while master {stopped} was down (progress {executed})"
    ));
    cluster.node_mut(stopped).start_again();
    cluster.wait_until_settled();
    let output = daemon.finish_within(PROGRESS_TIMEOUT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "run failed after the outage:\n{stderr}"
    );
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
    assert!(
        status.success(),
        "run failed during the migration:\n{stderr}"
    );
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

/// `deployments/docker/docker-compose.cluster.yaml`: the executor's environment loads as
/// configuration with the cluster on, its seeds are the file's node services on their port,
/// and `cluster-init` joins exactly those nodes.
#[test]
fn compose_cluster_variant_points_the_executor_at_its_nodes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose =
        std::fs::read_to_string(root.join("deployments/docker/docker-compose.cluster.yaml"))
            .expect("read the compose cluster variant");
    let services: Vec<&str> = compose
        .lines()
        .skip_while(|line| *line != "services:")
        .skip(1)
        .take_while(|line| line.is_empty() || line.starts_with(' ') || line.starts_with('#'))
        .filter_map(|line| line.strip_prefix("  ")?.strip_suffix(':'))
        .filter(|name| !name.starts_with(' '))
        .collect();
    let environment: Vec<(String, String)> = compose
        .lines()
        .skip_while(|line| *line != "  evm-executor:")
        .skip_while(|line| *line != "    environment:")
        .skip(1)
        .map_while(|line| line.strip_prefix("      "))
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_string(), value.trim_matches('"').to_string()))
        .collect();
    let config = evm_executor::config::Config::load(
        Some(&root.join("config/config.toml")),
        environment.clone(),
    )
    .unwrap_or_else(|e| panic!("{environment:?} does not load: {e}"));
    let pika = &config.storage.pika;
    assert!(pika.cluster, "{environment:?}");
    let seeds = pika.nodes().expect("seed nodes");
    assert_eq!(seeds.len(), MASTERS);
    let init = compose
        .lines()
        .skip_while(|line| *line != "  cluster-init:")
        .take_while(|line| *line != "  evm-executor:")
        .collect::<Vec<_>>()
        .join("\n");
    for (host, port) in &seeds {
        assert!(
            services.contains(&host.as_str()),
            "{host} is not a service: {services:?}"
        );
        assert_eq!(*port, 6379);
        assert!(
            init.contains(&format!("ip {host})")),
            "cluster-init does not join {host}"
        );
        assert!(
            compose.contains(&format!("\"--cluster-announce-hostname\", \"{host}\"")),
            "{host} does not announce its name"
        );
    }
}
