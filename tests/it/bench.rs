//! `bench --chain DIR --json` on hive-sync (3,000 blocks), on both backends and through the
//! relay: the pipeline and the in-memory ceiling cover exactly the chain's blocks, transactions
//! and gas (counted here from the chain file by the tests' own RLP reader), every stage reports
//! every block, the ratio is the quotient of the two rates, the peak RSS is reported, and the
//! bench leaves nothing behind in the store or the temp dir. The relay on its own: it carries
//! bytes both ways intact, holds them for its delay, and outlives a server restart.

use crate::common::chain::{raw_blocks, ChainFixture, HEADER_GAS_USED_INDEX};
use crate::common::redis_server::RedisServer;
use crate::common::{expect_exit_code, run_cli, var, Backend, COMMAND_FAILED};
use evm_executor::commands::bench::relay::{ping_round_trip, Relay};
use redis::{ConnectionAddr, IntoConnectionInfo};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Default `state.window_size`: blocks 1..=3000-1024 are pruned by the end of the run.
const WINDOW: u64 = 1024;
/// Blocks the sender-recovery comparison uses (from the start of the chain).
const RECOVERY_SAMPLE_BLOCKS: usize = 250;

fn bench_json(backend: &Backend, tmp: &tempfile::TempDir, extra: &[&str]) -> Value {
    let chain = ChainFixture::hive_sync();
    let mut env = backend.env();
    env.push(var("TMPDIR", tmp.path().display().to_string()));
    let dir = chain.dir.display().to_string();
    let mut args = vec!["bench", "--chain", &dir, "--json"];
    args.extend_from_slice(extra);
    let output = run_cli(&env, &args);
    assert!(
        output.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("bench --json prints JSON")
}

fn check_report(report: &Value, backend: &str) {
    let chain = ChainFixture::hive_sync();
    let bytes = chain.chain_bytes();
    let blocks = raw_blocks(&bytes);
    let txs: u64 = blocks.iter().map(|b| b.transactions().len() as u64).sum();
    let gas: u64 = blocks
        .iter()
        .map(|b| b.header_u64(HEADER_GAS_USED_INDEX))
        .sum();
    let sample_txs: u64 = blocks[..RECOVERY_SAMPLE_BLOCKS]
        .iter()
        .map(|b| b.transactions().len() as u64)
        .sum();
    let count = blocks.len() as u64;
    assert_eq!(report["backend"], backend);
    for path in ["pipeline", "in_memory"] {
        assert_eq!(report[path]["blocks"], count, "{path} blocks");
        assert_eq!(report[path]["transactions"], txs, "{path} transactions");
        assert_eq!(report[path]["gas"], gas, "{path} gas");
        assert!(report[path]["mgas_per_sec"].as_f64().unwrap_or(0.0) > 0.0);
    }
    let stages: Vec<&str> = report["stages"]
        .as_array()
        .expect("stages array")
        .iter()
        .map(|s| s["stage"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        stages,
        [
            "headers",
            "senders",
            "execution",
            "merkle",
            "commit",
            "receipts",
            "prune"
        ]
    );
    for stage in report["stages"].as_array().into_iter().flatten() {
        let name = stage["stage"].as_str().unwrap_or_default();
        let expected_blocks = if name == "prune" {
            count - WINDOW
        } else {
            count
        };
        assert_eq!(
            stage["busy_throughput"]["blocks"], expected_blocks,
            "{name} blocks"
        );
        let busy = stage["busy_percent"].as_f64().unwrap_or(-1.0);
        assert!((0.0..=100.0).contains(&busy), "{name} busy {busy}");
        if matches!(
            name,
            "headers" | "senders" | "execution" | "commit" | "receipts"
        ) {
            assert_eq!(stage["busy_throughput"]["gas"], gas, "{name} gas");
        }
    }
    let ratio = report["ratio_to_in_memory"].as_f64().unwrap_or(0.0);
    let quotient = report["pipeline"]["mgas_per_sec"].as_f64().unwrap_or(0.0)
        / report["in_memory"]["mgas_per_sec"].as_f64().unwrap_or(1.0);
    assert!((ratio - quotient).abs() < 1e-9 * quotient.max(1.0));
    let recovery = &report["sender_recovery"];
    assert_eq!(recovery["transactions"], sample_txs);
    let speedup = recovery["speedup"].as_f64().unwrap_or(0.0);
    let quotient = recovery["two_threads_tx_per_sec"].as_f64().unwrap_or(0.0)
        / recovery["one_thread_tx_per_sec"].as_f64().unwrap_or(1.0);
    assert!((speedup - quotient).abs() < 1e-9 * quotient.max(1.0));
    let init = report["init_seconds"].as_f64().unwrap_or(0.0);
    assert!(init > 0.0, "init took {init} s");
    let peak = report["peak_rss_bytes"].as_u64().unwrap_or(0);
    let pipeline_peak = report["pipeline_peak_rss_bytes"].as_u64().unwrap_or(0);
    // The binary alone maps tens of MiB; the chain's blocks are held in memory besides.
    assert!(peak > 20 << 20, "peak RSS {peak} bytes");
    assert!(
        (1..=peak).contains(&pipeline_peak),
        "pipeline peak RSS {pipeline_peak} of {peak}"
    );
}

#[test]
fn bench_on_the_embedded_store_covers_the_chain_and_cleans_up() {
    let backend = Backend::embedded();
    let tmp = tempfile::tempdir().expect("temp dir");
    let report = bench_json(&backend, &tmp, &[]);
    check_report(&report, "embedded");
    assert!(report["relay"].is_null());
    let left: Vec<_> = walk(tmp.path());
    assert!(left.is_empty(), "bench left files behind: {left:?}");
}

#[test]
fn bench_on_redis_covers_the_chain_and_removes_its_keys() {
    let backend = Backend::redis();
    let tmp = tempfile::tempdir().expect("temp dir");
    let report = bench_json(&backend, &tmp, &[]);
    check_report(&report, "pika");
    assert!(report["relay"].is_null());
    assert!(
        backend.all_keys().is_empty(),
        "bench left keys on the server"
    );
}

#[test]
fn bench_through_the_relay_covers_the_chain_and_reports_the_hop() {
    let backend = Backend::redis();
    let tmp = tempfile::tempdir().expect("temp dir");
    let report = bench_json(&backend, &tmp, &["--relay", "--relay-delay-us", "100"]);
    check_report(&report, "pika");
    let relay = &report["relay"];
    assert_eq!(relay["upstream"], backend.location());
    assert_eq!(relay["one_way_delay_us"], 100);
    let direct = relay["direct_round_trip_ms"].as_f64().unwrap_or(-1.0);
    let relayed = relay["relayed_round_trip_ms"].as_f64().unwrap_or(-1.0);
    let added = relay["added_round_trip_ms"].as_f64().unwrap_or(-1.0);
    assert!(direct > 0.0, "direct round trip {direct} ms");
    // Held 100 µs each way: at least 0.2 ms more per round trip.
    assert!(added >= 0.2, "the relay adds {added} ms");
    assert!((relayed - direct - added).abs() < 1e-9);
    assert!(
        backend.all_keys().is_empty(),
        "bench left keys on the server"
    );
}

#[test]
fn bench_relay_needs_a_server() {
    let backend = Backend::embedded();
    let dir = ChainFixture::hive_sync().dir.display().to_string();
    let output = backend.cli(&[], &["bench", "--chain", &dir, "--relay"]);
    let stderr = expect_exit_code(&output, COMMAND_FAILED);
    assert!(stderr.contains("storage.backend"), "{stderr}");
}

/// A client connection to `addr` (as the harness makes them).
fn connect(addr: SocketAddr) -> redis::Connection {
    let info = ConnectionAddr::Tcp(addr.ip().to_string(), addr.port())
        .into_connection_info()
        .expect("connection info");
    // redis-server 7.0 does not know CLIENT SETINFO.
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    redis::Client::open(info.set_redis_settings(settings))
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(5)))
        .expect("connect")
}

fn server_addr(server: &RedisServer) -> SocketAddr {
    server.addr().parse().expect("ip:port")
}

/// A value with every byte value, 1 MiB long (several of the relay's reads each way).
fn big_value() -> Vec<u8> {
    (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

#[test]
fn relay_carries_bytes_both_ways_and_holds_them_for_its_delay() {
    let server = RedisServer::start();
    for delay in [Duration::ZERO, Duration::from_micros(200)] {
        let relay = Relay::start(server_addr(&server), delay).expect("relay");
        let mut con = connect(relay.addr());
        let value = big_value();
        redis::cmd("SET")
            .arg("relayed")
            .arg(value.as_slice())
            .query::<()>(&mut con)
            .expect("SET through the relay");
        assert_eq!(server.get("relayed"), Some(value.clone()), "what arrived");
        let back: Vec<u8> = redis::cmd("GET")
            .arg("relayed")
            .query(&mut con)
            .expect("GET through the relay");
        assert!(back == value, "what came back ({} bytes)", back.len());
        let direct = ping_round_trip(server_addr(&server), 50).expect("PING");
        let relayed = ping_round_trip(relay.addr(), 50).expect("PING via the relay");
        assert!(
            relayed >= direct + 2 * delay,
            "{delay:?} each way, yet {relayed:?} through the relay vs {direct:?} direct"
        );
    }
}

#[test]
fn relay_outlives_a_server_restart() {
    let mut server = RedisServer::start();
    let relay = Relay::start(server_addr(&server), Duration::ZERO).expect("relay");
    let mut con = connect(relay.addr());
    redis::cmd("SET")
        .arg("kept")
        .arg("before the restart")
        .query::<()>(&mut con)
        .expect("SET");
    assert_eq!(relay.open_connections(), 1);
    server.restart();
    // The server closed its end: the relay closes the client's, and forgets the connection.
    let lost = redis::cmd("GET").arg("kept").query::<String>(&mut con);
    assert!(lost.is_err(), "the old connection still answers: {lost:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while relay.open_connections() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        relay.open_connections(),
        0,
        "the closed connection is forgotten"
    );
    // A new connection through the same relay reaches the restarted server (AOF kept the key).
    let mut con = connect(relay.addr());
    let kept: String = redis::cmd("GET")
        .arg("kept")
        .query(&mut con)
        .expect("GET after the restart");
    assert_eq!(kept, "before the restart");
    assert_eq!(relay.open_connections(), 1);
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
