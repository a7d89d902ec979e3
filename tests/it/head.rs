//! Following the head at BSC's cadence: a syncer of the test's own writes one block of the
//! geth-ethtest chain every 450 ms into a real redis-server (header, transactions, body, then
//! `idx:sync:progress`), and the test times each block from that progress write to
//! `idx:exec:progress` naming it, with the daemon on its default config. p50 and p99 are
//! printed (run it alone with `--nocapture` to quote them; the target is 100 ms at p99). The
//! bounds checked are looser, p50 within 100 ms and p99 within 300 ms: the whole suite runs
//! in parallel on two cores beside it, and a timing test must not fail for the machine's load.

use crate::common::chain::{raw_blocks, ChainFixture};
use crate::common::daemon::Daemon;
use crate::common::{init, Backend};
use std::time::{Duration, Instant};

/// BSC's block time.
const CADENCE: Duration = Duration::from_millis(450);
/// Blocks followed.
const BLOCKS: usize = 30;
/// How long one block may take before the test gives up on it.
const PATIENCE: Duration = Duration::from_secs(10);

/// `latestExecutedBlock` of `idx:exec:progress`.
fn executed(server: &crate::common::redis_server::RedisServer) -> u64 {
    server
        .get("idx:exec:progress")
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|json| json["latestExecutedBlock"].as_u64())
        .unwrap_or(0)
}

#[test]
fn blocks_published_every_450_ms_are_executed_at_once() {
    let chain = ChainFixture::geth_ethtest();
    let backend = Backend::redis();
    init(&backend, &[], &chain.genesis_path());
    let file = chain.chain_bytes();
    let blocks = raw_blocks(&file);
    let Backend::Redis(server) = &backend else {
        unreachable!("a Redis backend")
    };
    let mut daemon = Daemon::start(&backend, &[], &["run"]);
    // Startup writes the consumers' first checkpoints.
    daemon.wait_until(PATIENCE, "the pipeline started", || {
        server.get("idx:stage:commit").is_some()
    });
    let mut latencies = Vec::new();
    for block in blocks.iter().take(BLOCKS) {
        let n = block.number();
        let tick = Instant::now();
        server.set_many(&[
            (format!("blk:hdr:{n}"), block.header.encoded.to_vec()),
            (
                format!("blk:txs:{n}"),
                block.transactions_list().encoded.to_vec(),
            ),
            (format!("blk:body:{n}"), block.body()),
        ]);
        let published = Instant::now();
        server.set_many(&[(
            "idx:sync:progress".to_string(),
            format!("{{\"latestSyncedBlock\":{n}}}").into_bytes(),
        )]);
        while executed(server) < n {
            assert!(
                published.elapsed() < PATIENCE,
                "block {n} not executed within {PATIENCE:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        latencies.push((published.elapsed(), n));
        std::thread::sleep(CADENCE.saturating_sub(tick.elapsed()));
    }
    daemon.assert_running("while following the head");
    latencies.sort();
    let at = |share: f64| latencies[((latencies.len() - 1) as f64 * share).round() as usize].0;
    let (p50, p99) = (at(0.5), at(0.99));
    let ms = |latency: Duration| latency.as_secs_f64() * 1e3;
    let slowest: Vec<String> = latencies
        .iter()
        .rev()
        .take(3)
        .map(|(latency, n)| format!("block {n} {:.1} ms", ms(*latency)))
        .collect();
    println!(
        "head latency over {} blocks at {CADENCE:?}: p50 {:.1} ms, p99 {:.1} ms (slowest: {})",
        latencies.len(),
        ms(p50),
        ms(p99),
        slowest.join(", ")
    );
    assert!(
        p50 <= Duration::from_millis(100) && p99 <= Duration::from_millis(300),
        "head latency p50 {p50:?}, p99 {p99:?}"
    );
}
