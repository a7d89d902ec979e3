//! A real Redis Cluster per test: `redis-server --cluster-enabled yes` nodes on free ports (each
//! a [`RedisServer`], so one can be stopped and started again on its port and data), joined as
//! masters by `redis-cli --cluster create`; reading back every key of every node; and moving
//! slots between masters while a daemon runs, by `redis-cli --cluster reshard` or by hand with
//! `CLUSTER SETSLOT` and `MIGRATE`.

use super::redis_server::{free_port, RedisServer, ServerOptions};
use super::tls::Certificates;
use super::{var, TEST_PIKA_MAX_RETRIES};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a new or restarted cluster has to report `cluster_state:ok` everywhere.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two polls of the cluster's state.
const POLL: Duration = Duration::from_millis(50);
/// The cluster's program for joining and resharding, looked up on PATH.
const REDIS_CLI: &str = "redis-cli";
/// Milliseconds before the nodes consider a silent node failed: long enough that a master
/// stopped for a moment is not failed (which would stop the whole cluster), short enough for a
/// test.
const NODE_TIMEOUT_MS: &str = "15000";

/// Masters of a Redis Cluster, without replicas.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

/// Run `redis-cli` with `args`; panics with its output unless it succeeds.
fn redis_cli(args: &[String]) -> String {
    let output = Command::new(REDIS_CLI)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{REDIS_CLI}` ({e}); it comes with redis-server"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "redis-cli {args:?} failed with {}:\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A reply field as `T`; panics when it is not one.
fn from_value<T: redis::FromRedisValue>(value: &redis::Value) -> T {
    redis::from_redis_value_ref(value).unwrap_or_else(|e| panic!("{value:?}: {e}"))
}

/// A `redis-server --cluster-enabled yes`, not in any cluster yet; with `tls`, serving TLS only
/// (clients and the cluster bus) with those certificates.
fn start_node(tls: Option<&Certificates>) -> RedisServer {
    let mut args: Vec<String> = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        NODE_TIMEOUT_MS,
        // The bus port is not port + 10000, which may not exist.
        "--cluster-port",
        &free_port().to_string(),
    ]
    .map(String::from)
    .to_vec();
    if let Some(certificates) = tls {
        args.extend(certificates.server_args());
        args.extend(["--tls-cluster".into(), "yes".into()]);
    }
    RedisServer::start_with(ServerOptions {
        args,
        tls_only: tls.is_some(),
    })
}

impl RedisCluster {
    /// Start `masters` nodes, join them into one cluster (the slots spread evenly) and wait
    /// until every node reports it healthy.
    pub fn start(masters: usize) -> Self {
        Self::start_with(masters, None)
    }

    /// [`RedisCluster::start`]; with `tls`, the nodes serve TLS only, clients and the cluster
    /// bus included, with those certificates.
    pub fn start_with(masters: usize, tls: Option<&Certificates>) -> Self {
        let nodes: Vec<RedisServer> = (0..masters).map(|_| start_node(tls)).collect();
        let mut args = match tls {
            None => Vec::new(),
            Some(certificates) => certificates.cli_args(),
        };
        args.extend(["--cluster".to_string(), "create".to_string()]);
        args.extend(nodes.iter().map(RedisServer::addr));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"].map(String::from));
        redis_cli(&args);
        let cluster = Self { nodes };
        cluster.wait_until_settled();
        cluster
    }

    /// Wait until every node says `cluster_state:ok` and reports the same slot map.
    pub fn wait_until_settled(&self) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let states: Vec<String> = self
                .nodes
                .iter()
                .map(|node| node.query(redis::cmd("CLUSTER").arg("INFO")))
                .collect();
            let maps: Vec<BTreeMap<i64, (i64, u16)>> =
                (0..self.nodes.len()).map(|i| self.slot_ranges(i)).collect();
            let ok = states.iter().all(|s| s.contains("cluster_state:ok"));
            if ok && maps.windows(2).all(|pair| pair[0] == pair[1]) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not settle within {SETTLE_TIMEOUT:?}: {states:?}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Node `i`'s slot map: each range's first slot, to its last slot and master's port.
    fn slot_ranges(&self, i: usize) -> BTreeMap<i64, (i64, u16)> {
        let ranges: Vec<Vec<redis::Value>> =
            self.nodes[i].query(redis::cmd("CLUSTER").arg("SLOTS"));
        ranges
            .into_iter()
            .map(|range| {
                let master: Vec<redis::Value> = from_value(&range[2]);
                (
                    from_value(&range[0]),
                    (from_value(&range[1]), from_value(&master[1])),
                )
            })
            .collect()
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Node `i`, to stop and start again.
    pub fn node_mut(&mut self, i: usize) -> &mut RedisServer {
        &mut self.nodes[i]
    }

    /// Every node's `host:port`, comma-separated (the seeds `storage.pika.addr` takes).
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::addr)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The `EVM_EXECUTOR_*` overrides that point the CLI at this cluster.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            var("EVM_EXECUTOR_STORAGE_BACKEND", "pika"),
            var("EVM_EXECUTOR_STORAGE_PIKA_CLUSTER", "true"),
            var("EVM_EXECUTOR_STORAGE_PIKA_ADDR", self.seeds()),
            var(
                "EVM_EXECUTOR_STORAGE_PIKA_MAX_RETRIES",
                TEST_PIKA_MAX_RETRIES,
            ),
        ]
    }

    /// [`RedisCluster::env`] followed by `extra` (which wins).
    pub fn env_with(&self, extra: &[(String, String)]) -> Vec<(String, String)> {
        let mut env = self.env();
        env.extend_from_slice(extra);
        env
    }

    /// Every key of every node with its value.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        let mut snapshot = BTreeMap::new();
        for node in &self.nodes {
            let keys: Vec<String> = node.keys().into_iter().collect();
            for (key, value) in keys.iter().zip(node.values(&keys)) {
                if let Some(value) = value {
                    let previous = snapshot.insert(key.clone(), value);
                    assert!(previous.is_none(), "{key} is on two nodes");
                }
            }
        }
        snapshot
    }

    /// Delete every key on every node.
    pub fn flush_all(&self) {
        for node in &self.nodes {
            let () = node.query(&redis::cmd("FLUSHALL"));
        }
    }

    /// How many keys each node holds.
    pub fn key_counts(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .map(|node| node.query(&redis::cmd("DBSIZE")))
            .collect()
    }

    /// The slot of `key`, as the server computes it.
    pub fn key_slot(&self, key: &str) -> u16 {
        self.nodes[0].query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
    }

    /// The index of the node serving `slot` (as node 0 sees the map).
    pub fn owner_of(&self, slot: u16) -> usize {
        let (_, (_, port)) = self
            .slot_ranges(0)
            .into_iter()
            .find(|(first, (last, _))| (*first..=*last).contains(&i64::from(slot)))
            .unwrap_or_else(|| panic!("no master serves slot {slot}"));
        self.nodes
            .iter()
            .position(|node| node.port() == port)
            .unwrap_or_else(|| panic!("slot {slot} is served by an unknown port {port}"))
    }

    fn node_id(&self, i: usize) -> String {
        self.nodes[i].query(redis::cmd("CLUSTER").arg("MYID"))
    }

    /// Move `slot` from node `from` to node `to` by hand, as a resharding tool does: IMPORTING
    /// on the target, MIGRATING on the source, its keys MIGRATEd one at a time with `pause`
    /// between them (so clients meet ASK redirections), then the slot handed over everywhere.
    pub fn migrate_slot(&self, slot: u16, from: usize, to: usize, pause: Duration) {
        let (source, target) = (&self.nodes[from], &self.nodes[to]);
        let (source_id, target_id) = (self.node_id(from), self.node_id(to));
        let setslot = |state: &str, id: &str| {
            let mut c = redis::cmd("CLUSTER");
            c.arg("SETSLOT").arg(slot).arg(state).arg(id);
            c
        };
        let () = target.query(&setslot("IMPORTING", &source_id));
        let () = source.query(&setslot("MIGRATING", &target_id));
        loop {
            let keys: Vec<String> =
                source.query(redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(10));
            if keys.is_empty() {
                break;
            }
            for key in keys {
                let _: redis::Value = source.query(
                    redis::cmd("MIGRATE")
                        .arg("127.0.0.1")
                        .arg(target.port())
                        .arg(&key)
                        .arg(0)
                        .arg(5000),
                );
                std::thread::sleep(pause);
            }
        }
        // The target first, then the source, then everyone (again, harmlessly).
        for node in [target, source].into_iter().chain(&self.nodes) {
            let () = node.query(&setslot("NODE", &target_id));
        }
    }

    /// Start a node, join it as a replica of node `master`, wait until it has copied the
    /// master's data; its index.
    pub fn add_replica(&mut self, master: usize) -> usize {
        let replica = start_node(None);
        redis_cli(&[
            "--cluster".into(),
            "add-node".into(),
            replica.addr(),
            self.nodes[master].addr(),
            "--cluster-slave".into(),
            "--cluster-master-id".into(),
            self.node_id(master),
        ]);
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let info: String = replica.query(redis::cmd("INFO").arg("replication"));
            if info.contains("master_link_status:up") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the replica did not sync within {SETTLE_TIMEOUT:?}: {info}"
            );
            std::thread::sleep(POLL);
        }
        self.nodes.push(replica);
        self.wait_until_settled();
        self.nodes.len() - 1
    }

    /// Promote replica `replica` to master of its master's slots (`CLUSTER FAILOVER`, the
    /// manual failover that waits for the replica to catch up) and wait until everyone agrees.
    pub fn failover(&self, replica: usize) {
        let () = self.nodes[replica].query(redis::cmd("CLUSTER").arg("FAILOVER"));
        let port = self.nodes[replica].port();
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while !(0..self.nodes.len()).all(|i| {
            self.slot_ranges(i)
                .values()
                .any(|(_, master)| *master == port)
        }) {
            assert!(
                Instant::now() < deadline,
                "node {replica} was not promoted within {SETTLE_TIMEOUT:?}"
            );
            std::thread::sleep(POLL);
        }
        self.wait_until_settled();
    }

    /// Move `slots` slots from node `from` to node `to` with `redis-cli --cluster reshard`.
    pub fn reshard(&self, from: usize, to: usize, slots: usize) {
        redis_cli(&[
            "--cluster".into(),
            "reshard".into(),
            self.nodes[0].addr(),
            "--cluster-from".into(),
            self.node_id(from),
            "--cluster-to".into(),
            self.node_id(to),
            "--cluster-slots".into(),
            slots.to_string(),
            "--cluster-yes".into(),
        ]);
    }
}
