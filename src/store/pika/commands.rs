//! Every command the `pika` backend sends, built in one place: GET, MGET (one node only), SET
//! (with EX, with NX EX), DEL, SCAN with MATCH, and on a cluster CLUSTER SLOTS, CLUSTER NODES
//! and ASKING. All of them exist in Pika, Redis, Valkey and Kvrocks. The README's ACL
//! rule grants exactly these, and [`probes`] checks them at start.

use primitives::store::WriteOp;
use redis::{cmd, Cmd};
use std::time::Duration;

/// Keys asked for per SCAN step.
const SCAN_COUNT: u64 = 1000;

/// `GET key`.
pub fn get(key: &str) -> Cmd {
    let mut c = cmd("GET");
    c.arg(key);
    c
}

/// `MGET key...` (all on one node).
pub fn mget(keys: &[String]) -> Cmd {
    let mut c = cmd("MGET");
    c.arg(keys);
    c
}

/// Seconds of a `SET ... EX`: at least 1, which Redis requires.
fn ttl_seconds(ttl: Duration) -> u64 {
    ttl.as_secs().max(1)
}

/// The command of one write: `SET key value`, `SET key value EX s` or `DEL key`.
pub fn write(op: &WriteOp) -> Cmd {
    match op {
        WriteOp::Set { key, value, ttl } => {
            let mut c = cmd("SET");
            c.arg(key).arg(value.as_slice());
            if let Some(ttl) = ttl {
                c.arg("EX").arg(ttl_seconds(*ttl));
            }
            c
        }
        WriteOp::Delete { key } => {
            let mut c = cmd("DEL");
            c.arg(key);
            c
        }
    }
}

/// The key a write goes to.
pub fn write_key(op: &WriteOp) -> &str {
    match op {
        WriteOp::Set { key, .. } | WriteOp::Delete { key } => key,
    }
}

/// `SET key value NX EX s`: set only when absent (the leader lease).
pub fn set_if_absent(key: &str, value: &[u8], ttl: Duration) -> Cmd {
    let mut c = cmd("SET");
    c.arg(key)
        .arg(value)
        .arg("NX")
        .arg("EX")
        .arg(ttl_seconds(ttl));
    c
}

/// `SCAN cursor MATCH pattern COUNT 1000`.
pub fn scan(cursor: u64, pattern: &str) -> Cmd {
    let mut c = cmd("SCAN");
    c.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
    c
}

/// `CLUSTER SLOTS`: the slot map.
pub fn cluster_slots() -> Cmd {
    let mut c = cmd("CLUSTER");
    c.arg("SLOTS");
    c
}

/// `CLUSTER NODES`: the node's view, with the slots it is migrating or importing.
pub fn cluster_nodes() -> Cmd {
    let mut c = cmd("CLUSTER");
    c.arg("NODES");
    c
}

/// `ASKING`: lets the next command reach a slot this node is importing.
pub fn asking() -> Cmd {
    cmd("ASKING")
}

/// Escape the glob characters of a SCAN MATCH pattern.
pub fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One command of the start-up check, in a form that changes nothing.
pub struct Probe {
    /// The command's name, for the error.
    pub name: &'static str,
    /// What is sent (one round trip).
    pub cmds: Vec<Cmd>,
    /// A server that does not know the command never needs it (`ASKING` on a cluster that
    /// never answers `ASK`, such as older Kvrocks): "unknown command" passes.
    pub if_known: bool,
}

/// Each command the backend sends: reads of `key`, `SET key "" XX EX 1` (sets only an existing
/// key, and `key` is never written), `DEL key`, a SCAN for `key`, and on a cluster the topology
/// commands and `ASKING` (followed by a GET, which consumes it).
pub fn probes(key: &str, cluster: bool) -> Vec<Probe> {
    let mut set = cmd("SET");
    set.arg(key).arg("").arg("XX").arg("EX").arg(1);
    let mut del = cmd("DEL");
    del.arg(key);
    let probe = |name, cmds| Probe {
        name,
        cmds,
        if_known: false,
    };
    let mut probes = vec![
        probe("GET", vec![get(key)]),
        probe("SET", vec![set]),
        probe("DEL", vec![del]),
        probe("SCAN", vec![scan(0, &glob_escape(key))]),
    ];
    match cluster {
        false => probes.push(probe("MGET", vec![mget(&[key.to_string()])])),
        true => probes.extend([
            probe("CLUSTER SLOTS", vec![cluster_slots()]),
            probe("CLUSTER NODES", vec![cluster_nodes()]),
            Probe {
                if_known: true,
                ..probe("ASKING", vec![asking(), get(key)])
            },
        ]),
    }
    probes
}
