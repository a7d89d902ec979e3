//! `bench --chain DIR --json` on hive-sync (3,000 blocks), on both backends: the pipeline and
//! the in-memory ceiling cover exactly the chain's blocks, transactions and gas (counted here
//! from the chain file by the tests' own RLP reader), every stage reports every block, the ratio
//! is the quotient of the two rates, and the bench leaves nothing behind in the store or the
//! temp dir.

use crate::common::chain::{raw_blocks, ChainFixture, HEADER_GAS_USED_INDEX};
use crate::common::{run_cli, var, Backend};
use serde_json::Value;

/// Default `state.window_size`: blocks 1..=3000-1024 are pruned by the end of the run.
const WINDOW: u64 = 1024;
/// Blocks the sender-recovery comparison uses (from the start of the chain).
const RECOVERY_SAMPLE_BLOCKS: usize = 250;

fn bench_json(backend: &Backend, tmp: &tempfile::TempDir) -> Value {
    let chain = ChainFixture::hive_sync();
    let mut env = backend.env();
    env.push(var("TMPDIR", tmp.path().display().to_string()));
    let dir = chain.dir.display().to_string();
    let output = run_cli(&env, &["bench", "--chain", &dir, "--json"]);
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
}

#[test]
fn bench_on_the_embedded_store_covers_the_chain_and_cleans_up() {
    let backend = Backend::embedded();
    let tmp = tempfile::tempdir().expect("temp dir");
    let report = bench_json(&backend, &tmp);
    check_report(&report, "embedded");
    let left: Vec<_> = walk(tmp.path());
    assert!(left.is_empty(), "bench left files behind: {left:?}");
}

#[test]
fn bench_on_redis_covers_the_chain_and_removes_its_keys() {
    let backend = Backend::redis();
    let tmp = tempfile::tempdir().expect("temp dir");
    let report = bench_json(&backend, &tmp);
    check_report(&report, "pika");
    assert!(
        backend.all_keys().is_empty(),
        "bench left keys on the server"
    );
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
