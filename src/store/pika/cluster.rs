//! The Redis Cluster protocol over per-node connections: the slot map learnt from `CLUSTER
//! SLOTS`, every command sent to the master of its key's slot, one pipeline per node sent to all
//! of them at once (never a multi-key command: reads are pipelined GETs), `MOVED` followed (and
//! the slot map read again), `ASK` followed with `ASKING`, `TRYAGAIN` retried, and prefix scans
//! run on every master.
//!
//! The `redis` crate's cluster client is not used: its pipelines say nothing of which node a
//! command went to, which the per-node round-trip and error meters need, and its own retry
//! schedule would run past the leader's write deadline.
//!
//! Order: commands to one key go to one node in one pipeline in their order, and redirected
//! commands are resent in their order, so writes to a key land in order. Across nodes there is
//! no order within a pipeline; the caller orders what must be ordered (the fenced parts of a
//! `WriteBatch`, sent one after the other by `super`).

use super::commands;
use super::node::{node_addr, Connector, Node};
use super::retry::Failure;
use super::slots::{key_slot, SlotMap};
use crate::config::parse_host_port;
use primitives::clock::unix_now_ms;
use redis::{Cmd, Connection, ErrorKind, RedisResult, ServerErrorKind, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// Rounds of redirections one attempt follows before it gives up as unsettled (the retry loop
/// then backs off): a resharding step moves a slot with ASK, then hands it over with one MOVED.
const MAX_ROUNDS: u32 = 16;
/// Pause before the next round after TRYAGAIN, or before rescanning when slots moved during a
/// scan, times the round number: a slot with few keys migrates in milliseconds.
const SETTLE_PAUSE: Duration = Duration::from_millis(20);

/// A command and the key that routes it.
pub struct Routed<'a> {
    /// The key whose slot picks the node.
    pub key: &'a str,
    /// The command.
    pub cmd: Cmd,
}

/// Where a command goes in the next round.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// The master of its key's slot in the slot map.
    Slot,
    /// This node, as a `MOVED` said.
    Moved(String),
    /// This node, after `ASKING`, as an `ASK` said.
    Ask(String),
}

/// A Redis Cluster.
pub struct Cluster {
    /// The configured nodes, asked for the slot map when the known masters do not answer.
    seeds: Vec<String>,
    connector: Connector,
    /// Every node talked to, by `host:port`.
    nodes: RwLock<BTreeMap<String, Arc<Node>>>,
    /// The slot map last read.
    map: RwLock<Option<Arc<SlotMap>>>,
    /// Commands per pipeline to one node.
    pipeline_size: usize,
}

impl Cluster {
    /// A cluster reached through `seeds`; nothing is connected yet.
    pub fn new(seeds: &[(String, u16)], connector: Connector, pipeline_size: usize) -> Self {
        Self {
            seeds: seeds.iter().map(|(h, p)| node_addr(h, *p)).collect(),
            connector,
            nodes: RwLock::new(BTreeMap::new()),
            map: RwLock::new(None),
            pipeline_size: pipeline_size.max(1),
        }
    }

    /// The node at `addr` (`host:port`), set up on first use.
    fn node(&self, addr: &str) -> Result<Arc<Node>, Failure> {
        if let Some(node) = self
            .nodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(addr)
        {
            return Ok(Arc::clone(node));
        }
        let (host, port) = parse_host_port(addr).ok_or_else(|| Failure::Protocol {
            node: addr.to_string(),
            detail: "a node address that is not host:port".into(),
        })?;
        let node = Arc::new(Node::new(&host, port, &self.connector)?);
        let mut nodes = self.nodes.write().unwrap_or_else(PoisonError::into_inner);
        Ok(Arc::clone(nodes.entry(addr.to_string()).or_insert(node)))
    }

    /// The slot map, read first if it never was.
    fn slot_map(&self) -> Result<Arc<SlotMap>, Failure> {
        let known = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match known {
            Some(map) => Ok(map),
            None => self.refresh(),
        }
    }

    /// Read the slot map again, from the first known master or seed that answers.
    pub fn refresh(&self) -> Result<Arc<SlotMap>, Failure> {
        let known: Vec<String> = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|map| map.masters().to_vec())
            .unwrap_or_default();
        let mut last = None;
        for addr in known.iter().chain(&self.seeds) {
            let node = self.node(addr)?;
            let reply = match node.call(|con| commands::cluster_slots().query::<Value>(con)) {
                Ok(reply) => reply,
                Err(failure) if failure.is_transient() => {
                    last = Some(failure);
                    continue;
                }
                Err(failure) => return Err(failure),
            };
            let host = parse_host_port(addr).map(|(h, _)| h).unwrap_or_default();
            let map = SlotMap::from_cluster_slots(&reply, &host)
                .map_err(|detail| Failure::Protocol {
                    node: addr.clone(),
                    detail,
                })
                .and_then(|map| match map.masters().is_empty() {
                    true => Err(Failure::Unsettled {
                        detail: format!("{addr} reports no slot served by any master"),
                    }),
                    false => Ok(Arc::new(map)),
                })?;
            *self.map.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&map));
            return Ok(map);
        }
        Err(last.unwrap_or_else(|| Failure::Unsettled {
            detail: "no node to ask for the slot map".into(),
        }))
    }

    /// Run `cmds` (each on the master of its key's slot, following redirections) and return
    /// their replies in order; no part of it is sent after `deadline_ms`.
    pub fn execute(
        &self,
        cmds: &[Routed<'_>],
        deadline_ms: Option<u64>,
    ) -> Result<Vec<Value>, Failure> {
        let mut replies: Vec<Option<Value>> = vec![None; cmds.len()];
        let mut pending: Vec<(usize, Target)> =
            (0..cmds.len()).map(|i| (i, Target::Slot)).collect();
        let mut map = self.slot_map()?;
        for round in 1..=MAX_ROUNDS {
            if pending.is_empty() {
                break;
            }
            let mut by_node: BTreeMap<String, Vec<(usize, bool)>> = BTreeMap::new();
            for (index, target) in &pending {
                let (addr, asking) = match target {
                    Target::Slot => {
                        let slot = key_slot(cmds[*index].key.as_bytes());
                        if map.master_of(slot).is_none() {
                            // A map read while a slot was unassigned, or a stale one.
                            map = self.refresh()?;
                        }
                        let addr = map.master_of(slot).ok_or_else(|| Failure::Unsettled {
                            detail: format!("no master serves slot {slot}"),
                        })?;
                        (addr.to_string(), false)
                    }
                    Target::Moved(addr) => (addr.clone(), false),
                    Target::Ask(addr) => (addr.clone(), true),
                };
                by_node.entry(addr).or_default().push((*index, asking));
            }
            let mut next = Vec::new();
            let (mut stale, mut busy) = (false, false);
            let (mut asked, mut moved) = (0usize, 0usize);
            for (index, addr, reply) in self.send(&by_node, cmds, deadline_ms)? {
                let error = match reply {
                    Ok(value) => {
                        replies[index] = Some(value);
                        continue;
                    }
                    Err(error) => error,
                };
                let redirect = error
                    .redirect_node()
                    .and_then(|(node, _)| parse_host_port(node))
                    .map(|(host, port)| node_addr(&host, port));
                match (error.kind(), redirect) {
                    (ErrorKind::Server(ServerErrorKind::Moved), Some(to)) => {
                        moved += 1;
                        stale = true;
                        next.push((index, Target::Moved(to)));
                    }
                    (ErrorKind::Server(ServerErrorKind::Ask), Some(to)) => {
                        asked += 1;
                        next.push((index, Target::Ask(to)));
                    }
                    // A write that reached a master demoted by a failover.
                    (ErrorKind::Server(ServerErrorKind::ReadOnly), _) => {
                        stale = true;
                        next.push((index, Target::Slot));
                    }
                    (ErrorKind::Server(ServerErrorKind::TryAgain), _) => {
                        busy = true;
                        next.push((index, Target::Slot));
                    }
                    _ => return Err(Failure::node(&addr, error)),
                }
            }
            if !next.is_empty() {
                tracing::debug!(
                    round,
                    moved,
                    asked,
                    again = next.len() - moved - asked,
                    "cluster redirected commands; following"
                );
            }
            // Resent in their first order: writes to one key stay in order.
            next.sort_by_key(|(index, _)| *index);
            pending = next;
            if stale {
                map = self.refresh()?;
            }
            if busy {
                std::thread::sleep(SETTLE_PAUSE * round);
            }
        }
        if !pending.is_empty() {
            return Err(Failure::Unsettled {
                detail: format!(
                    "{} commands still redirected after {MAX_ROUNDS} rounds",
                    pending.len()
                ),
            });
        }
        Ok(replies
            .into_iter()
            .map(|reply| reply.unwrap_or(Value::Nil))
            .collect())
    }

    /// Send each node its commands (`by_node`: command index and whether `ASKING` goes first),
    /// in pipelines of at most `pipeline_size`; every reply with its command index and node.
    #[allow(clippy::type_complexity)]
    fn send(
        &self,
        by_node: &BTreeMap<String, Vec<(usize, bool)>>,
        cmds: &[Routed<'_>],
        deadline_ms: Option<u64>,
    ) -> Result<Vec<(usize, String, RedisResult<Value>)>, Failure> {
        let nodes = by_node
            .iter()
            .map(|(addr, list)| Ok((self.node(addr)?, list.as_slice())))
            .collect::<Result<Vec<_>, Failure>>()?;
        let waves = nodes
            .iter()
            .map(|(_, list)| list.len().div_ceil(self.pipeline_size))
            .max()
            .unwrap_or(0);
        let mut out = Vec::with_capacity(cmds.len());
        for wave in 0..waves {
            if deadline_ms.is_some_and(|deadline| unix_now_ms() >= deadline) {
                return Err(Failure::DeadlinePassed);
            }
            let part: Vec<(&Node, &[(usize, bool)])> = nodes
                .iter()
                .filter_map(|(node, list)| {
                    let chunk = list.chunks(self.pipeline_size).nth(wave)?;
                    Some((node.as_ref(), chunk))
                })
                .collect();
            out.extend(round_trip(&part, cmds)?);
        }
        Ok(out)
    }

    /// Every key matching `pattern` on every master. The scan is repeated while slots move
    /// under it (the slot map changes, or a master reports a slot migrating or importing), so
    /// a key moving from a master not scanned yet to one already scanned is not missed.
    pub fn scan(&self, pattern: &str) -> Result<Vec<String>, Failure> {
        for round in 1..=MAX_ROUNDS {
            let before = self.refresh()?;
            let mut keys = Vec::new();
            let mut moving = false;
            for addr in before.masters() {
                let node = self.node(addr)?;
                moving |= migrating(&node)?;
                let mut cursor = 0;
                loop {
                    let (next, page): (u64, Vec<String>) =
                        node.call(|con| commands::scan(cursor, pattern).query(con))?;
                    keys.extend(page);
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                moving |= migrating(&node)?;
            }
            if !moving && self.refresh()? == before {
                keys.sort_unstable();
                keys.dedup();
                return Ok(keys);
            }
            tracing::debug!(round, "slots moved during a prefix scan; scanning again");
            std::thread::sleep(SETTLE_PAUSE * round);
        }
        Err(Failure::Unsettled {
            detail: format!("slots kept moving during {MAX_ROUNDS} prefix scans"),
        })
    }

    /// Run `probe` (the start-up access check) on every master.
    pub fn on_every_master(
        &self,
        mut probe: impl FnMut(&Node) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let map = self.refresh()?;
        if map.uncovered() > 0 {
            tracing::warn!(
                uncovered = map.uncovered(),
                "no master serves some slots yet; keys in them wait until one does"
            );
        }
        for addr in map.masters() {
            probe(self.node(addr)?.as_ref())?;
        }
        Ok(())
    }
}

/// True when `node` reports a slot of its own migrating or importing (`CLUSTER NODES` marks
/// them `[slot->-id]` and `[slot-<-id]` on its `myself` line).
fn migrating(node: &Node) -> Result<bool, Failure> {
    let text: String = node.call(|con| commands::cluster_nodes().query(con))?;
    Ok(text
        .lines()
        .filter(|line| line.contains("myself"))
        .any(|line| line.contains("->-") || line.contains("-<-")))
}

/// One pipeline to each node of `part` at once: all sent, then all replies read. Connections
/// are taken in address order (`part` is sorted), so threads never wait on each other in a
/// circle. A connection that failed is closed; the others go back to their pools.
#[allow(clippy::type_complexity)]
fn round_trip(
    part: &[(&Node, &[(usize, bool)])],
    cmds: &[Routed<'_>],
) -> Result<Vec<(usize, String, RedisResult<Value>)>, Failure> {
    let mut held: Vec<(&Node, Connection)> = Vec::with_capacity(part.len());
    for (node, _) in part {
        match node.checkout() {
            Ok(con) => held.push((node, con)),
            Err(failure) => {
                for (node, con) in held {
                    node.checkin(con);
                }
                return Err(failure);
            }
        }
    }
    let mut unsent = None;
    for ((node, con), (_, list)) in held.iter_mut().zip(part) {
        let mut packed = Vec::new();
        for (index, asking) in list.iter() {
            if *asking {
                commands::asking().write_packed_command(&mut packed);
            }
            cmds[*index].cmd.write_packed_command(&mut packed);
        }
        node.round_trip();
        if let Err(error) = con.send_packed_command(&packed) {
            node.failed();
            unsent = Some(Failure::node(node.addr(), error));
            break;
        }
    }
    if let Some(failure) = unsent {
        // Pipelines already sent have replies nobody will read: close every connection.
        for (node, con) in held {
            drop(con);
            node.discard();
        }
        return Err(failure);
    }
    let mut replies = Vec::new();
    let mut failure = None;
    for ((node, mut con), (_, list)) in held.into_iter().zip(part) {
        let read = read_replies(node, &mut con, list, &mut replies);
        match read {
            Ok(()) => node.checkin(con),
            Err(error) => {
                node.failed();
                node.discard();
                failure.get_or_insert(Failure::node(node.addr(), error));
            }
        }
    }
    match failure {
        Some(failure) => Err(failure),
        None => Ok(replies),
    }
}

/// Read the replies to `list` from `con` into `out`; an error reply is the command's result, a
/// failure to read is returned.
fn read_replies(
    node: &Node,
    con: &mut Connection,
    list: &[(usize, bool)],
    out: &mut Vec<(usize, String, RedisResult<Value>)>,
) -> RedisResult<()> {
    for (index, asking) in list {
        let asked = match asking {
            true => con.recv_response()?.extract_error().map(|_| ()),
            false => Ok(()),
        };
        let reply = con.recv_response()?.extract_error();
        let reply = asked.and(reply);
        if reply.is_err() {
            node.failed();
        }
        out.push((*index, node.addr().to_string(), reply));
    }
    Ok(())
}
