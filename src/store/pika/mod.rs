//! `pika`: the store on any Redis-protocol server (Pika, Redis, Kvrocks, Valkey) through the
//! synchronous `redis` client: one node (or a proxy in front of several, such as Codis), or
//! with `storage.pika.cluster` a Redis Cluster ([`cluster`]); over TLS and as an ACL user when
//! configured ([`node`]). Failures are retried as [`retry`] describes.
//!
//! On one node, batched reads are MGETs and a write batch goes out in pipelines of
//! `pipeline_size` commands, in order. On a cluster, reads are pipelined GETs and a write batch
//! is split by node and sent to all of them at once, which keeps the order of the writes to
//! each key but not across nodes. What the crash rule needs ordered is ordered: the stages
//! put fences in their batches where order matters ([`WriteBatch::fence`]: data, then the
//! records that vouch for it, then the checkpoints), and each fenced part is sent after the
//! one before is acknowledged. So a checkpoint never lands before the data and records it
//! vouches for, and a pruned block's record never goes before its history, on a cluster as on
//! one node.
//!
//! At start, every command the backend sends is tried once on every node in a form that changes
//! nothing ([`commands::probes`]): refused credentials, a missing ACL permission or an untrusted
//! certificate stop the program at once with an error that names the cause.

mod cluster;
mod commands;
mod node;
mod retry;
mod slots;

use crate::config::PikaConfig;
use cluster::{Cluster, Routed};
use node::{Connector, Node};
use primitives::store::{Store, StoreError, WriteBatch};
use redis::{ErrorKind, ServerErrorKind, Value};
use retry::{Failure, Retrier};
use std::time::Duration;

const BACKEND: &str = "pika";
/// The key the start-up check reads and deletes (under the key prefix); nothing writes it.
const PROBE_KEY: &str = "probe:access";
/// One node or a cluster.
// One value per store, made once: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Topology {
    Single(Node),
    Cluster(Cluster),
}

/// A Redis-protocol server, or a Redis Cluster, as a [`Store`].
pub struct PikaStore {
    topology: Topology,
    retrier: Retrier,
    /// Commands per pipelined round trip.
    chunk: usize,
}

/// A GET's reply as a value.
fn value_of(node: &str, reply: Value) -> Result<Option<Vec<u8>>, Failure> {
    match reply {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => Ok(Some(bytes)),
        other => Err(Failure::Protocol {
            node: node.to_string(),
            detail: format!("GET replied {other:?}"),
        }),
    }
}

/// True when `error` says the server does not know the command.
fn is_unknown_command(error: &redis::RedisError) -> bool {
    error
        .detail()
        .is_some_and(|detail| detail.to_ascii_lowercase().contains("unknown command"))
}

/// Run `probe` on `node`. On a cluster, a redirection is a pass: servers check the ACL before
/// they redirect.
fn probe_node(node: &Node, probe: &commands::Probe, cluster: bool) -> Result<(), Failure> {
    let result = match probe.cmds.as_slice() {
        [one] => node.call(|con| one.query::<Value>(con)),
        many => {
            let mut pipe = redis::pipe();
            for cmd in many {
                pipe.add_command(cmd.clone());
            }
            node.call(|con| pipe.query::<Value>(con))
        }
    };
    match result {
        Err(Failure::Node { error, .. })
            if (cluster
                && matches!(
                    error.kind(),
                    ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask)
                ))
                || (probe.if_known && is_unknown_command(&error)) =>
        {
            Ok(())
        }
        other => other.map(drop),
    }
}

impl PikaStore {
    /// Connect to the node or cluster `config` names and check access (retrying as
    /// configured); the start-up check uses [`PROBE_KEY`] without a prefix.
    pub fn connect(config: &PikaConfig) -> Result<Self, StoreError> {
        Self::connect_with_prefix(config, "")
    }

    /// [`PikaStore::connect`] for a store whose keys start with `key_prefix` (the start-up check
    /// reads a key under it, so an ACL rule limited to the prefix passes).
    pub fn connect_with_prefix(config: &PikaConfig, key_prefix: &str) -> Result<Self, StoreError> {
        let backend_error = |message: String| StoreError::Backend {
            backend: BACKEND,
            message,
        };
        let nodes = config.nodes().map_err(|e| backend_error(e.to_string()))?;
        let connector = Connector::new(config)?;
        let chunk = (config.pipeline_size as usize).max(1);
        let topology = match (config.cluster, nodes.as_slice()) {
            (true, _) => Topology::Cluster(Cluster::new(&nodes, connector.clone(), chunk)),
            (false, [(host, port)]) => Topology::Single(
                Node::new(host, *port, &connector)
                    .map_err(|f| backend_error(f.describe(connector.username())))?,
            ),
            (false, _) => {
                return Err(backend_error(format!(
                    "storage.pika.addr {:?} must name one node",
                    config.addr
                )))
            }
        };
        let store = Self {
            topology,
            retrier: Retrier::new(config),
            chunk,
        };
        let probe_key = format!("{key_prefix}{PROBE_KEY}");
        let cluster = config.cluster;
        for probe in commands::probes(&probe_key, cluster) {
            let what = format!("start-up check of {}", probe.name);
            store.retrier.run(&what, None, || match &store.topology {
                Topology::Single(node) => probe_node(node, &probe, false),
                Topology::Cluster(cluster) => {
                    cluster.on_every_master(|node| probe_node(node, &probe, true))
                }
            })?;
        }
        Ok(store)
    }

    /// The values at `keys` on a cluster, by pipelined GETs.
    fn cluster_get(
        &self,
        cluster: &Cluster,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let routed: Vec<Routed<'_>> = keys
            .iter()
            .map(|key| Routed {
                key,
                cmd: commands::get(key),
            })
            .collect();
        self.retrier.run("GET", None, || {
            cluster
                .execute(&routed, None)?
                .into_iter()
                .map(|reply| value_of("cluster", reply))
                .collect()
        })
    }
}

impl Store for PikaStore {
    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.topology {
            Topology::Single(node) => self.retrier.run("GET", None, || {
                node.call(|con| commands::get(key).query(con))
            }),
            Topology::Cluster(cluster) => Ok(self
                .cluster_get(cluster, &[key.to_string()])?
                .pop()
                .flatten()),
        }
    }

    fn multi_get(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let node = match &self.topology {
            Topology::Single(node) => node,
            Topology::Cluster(cluster) => return self.cluster_get(cluster, keys),
        };
        let mut values = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(self.chunk) {
            let part: Vec<Option<Vec<u8>>> = self.retrier.run("MGET", None, || {
                node.call(|con| commands::mget(chunk).query(con))
            })?;
            values.extend(part);
        }
        Ok(values)
    }

    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        match &self.topology {
            Topology::Single(node) => {
                for chunk in batch.ops().chunks(self.chunk) {
                    let mut pipe = redis::pipe();
                    for op in chunk {
                        pipe.add_command(commands::write(op)).ignore();
                    }
                    self.retrier.run("pipelined write", batch.deadline(), || {
                        node.call(|con| pipe.query::<()>(con))
                    })?;
                }
            }
            Topology::Cluster(cluster) => {
                for part in batch.parts() {
                    let routed: Vec<Routed<'_>> = part
                        .iter()
                        .map(|op| Routed {
                            key: commands::write_key(op),
                            cmd: commands::write(op),
                        })
                        .collect();
                    self.retrier.run("pipelined write", batch.deadline(), || {
                        cluster.execute(&routed, batch.deadline()).map(drop)
                    })?;
                }
            }
        }
        Ok(())
    }

    fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let cmd = commands::set_if_absent(key, value, ttl);
        let reply = match &self.topology {
            Topology::Single(node) => self
                .retrier
                .run("SET NX", None, || node.call(|con| cmd.query::<Value>(con)))?,
            Topology::Cluster(cluster) => {
                let routed = [Routed {
                    key,
                    cmd: cmd.clone(),
                }];
                self.retrier.run("SET NX", None, || {
                    Ok(cluster.execute(&routed, None)?.pop().unwrap_or(Value::Nil))
                })?
            }
        };
        Ok(reply != Value::Nil)
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let pattern = format!("{}*", commands::glob_escape(prefix));
        match &self.topology {
            // A scan interrupted by a lost connection restarts from cursor 0: SCAN may return a
            // key twice anyway, so duplicates are removed at the end.
            Topology::Single(node) => self.retrier.run("SCAN", None, || {
                let mut keys = Vec::new();
                let mut cursor: u64 = 0;
                loop {
                    let (next, page): (u64, Vec<String>) =
                        node.call(|con| commands::scan(cursor, &pattern).query(con))?;
                    keys.extend(page);
                    if next == 0 {
                        keys.sort_unstable();
                        keys.dedup();
                        return Ok(keys);
                    }
                    cursor = next;
                }
            }),
            Topology::Cluster(cluster) => self.retrier.run("SCAN", None, || cluster.scan(&pattern)),
        }
    }
}
