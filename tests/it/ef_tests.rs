//! `ef-test` through the built binary: every test of the execution-spec-tests release passes,
//! none skipped, and a fixture whose expected post-state is wrong is reported as the one failure
//! (so the runner can fail); the same tests in the ethereum/tests format (no `config`) pass
//! under that suite's name; blocks forming two branches are each executed on their parent and
//! the head ends where fork choice puts it. Test counts come from reading the archive with the
//! `tar` and `zstd` crates.

use crate::common::eest::{
    archive_file, count_archive_tests, eest_archive, last_line_tally, write_under, Tally,
};
use crate::common::{expect_exit_code, expect_success, mentions_number, run_cli, COMMAND_FAILED};
use alloy_consensus::constants::{EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH};
use alloy_consensus::{Block, BlockBody, Header, TxEnvelope};
use alloy_primitives::{hex, Bytes, B256, U256};
use alloy_rlp::Decodable;
use std::path::Path;
use std::process::Output;
use std::str::FromStr;

/// JSON files in the archive, from `fixtures/README.md`.
const ARCHIVE_FILES: usize = 2742;
/// The least number of passing tests the release must give (README: about 22,000 tests).
const MIN_PASSED: u64 = 21_000;
/// A small fixture file of the archive: PUSH0 contracts, 24 tests over four forks.
const SUBSET_FILE: &str = "blockchain_tests/shanghai/eip3855_push0/test_push0_contracts.json";
/// Selects the subset file's Shanghai tests.
const SUBSET_FILTER: &str = "fork_Shanghai-";

/// Run `ef-test PATH` with `args` after it, its per-test stores in a temp dir.
fn ef_test(path: &Path, args: &[&str]) -> Output {
    let work = tempfile::tempdir().expect("temp dir for ef-test stores");
    let path = path.to_str().expect("utf-8 path");
    let work_dir = work.path().to_str().expect("utf-8 path");
    let mut all = vec!["ef-test", path, "--work-dir", work_dir];
    all.extend_from_slice(args);
    run_cli(&[], &all)
}

/// The sum of the table rows (`suite fork passed failed skipped`) above the last line.
fn table_sum(stdout: &str) -> Tally {
    table_rows(stdout)
        .iter()
        .fold(Tally::default(), |sum, (_, _, row)| Tally {
            passed: sum.passed + row.passed,
            failed: sum.failed + row.failed,
            skipped: sum.skipped + row.skipped,
        })
}

/// The table rows above the last line: suite, fork and counts.
fn table_rows(stdout: &str) -> Vec<(String, String, Tally)> {
    let lines: Vec<&str> = stdout.lines().collect();
    let header = lines
        .iter()
        .position(|line| line.split_whitespace().next() == Some("suite"))
        .unwrap_or_else(|| panic!("no table header in:\n{stdout}"));
    let rows: Vec<_> = lines[header + 1..lines.len() - 1]
        .iter()
        .map(|line| parse_row(line).unwrap_or_else(|| panic!("not a table row: {line:?}")))
        .collect();
    assert!(!rows.is_empty(), "no table rows in:\n{stdout}");
    rows
}

/// A table row: suite, fork, and three counts.
fn parse_row(line: &str) -> Option<(String, String, Tally)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let [suite, fork, passed, failed, skipped] = words.as_slice() else {
        return None;
    };
    let tally = Tally {
        passed: passed.parse().ok()?,
        failed: failed.parse().ok()?,
        skipped: skipped.parse().ok()?,
    };
    Some((suite.to_string(), fork.to_string(), tally))
}

/// The whole release: exit 0, `N passed, 0 failed, 0 skipped` with N every test in the archive
/// (at least 21,000), and the table's rows adding up to it.
#[test]
fn ef_test_release_archive_passes() {
    let output = ef_test(&eest_archive(), &[]);
    let stdout = expect_success(&output);
    let tally = last_line_tally(&stdout);
    assert_eq!(tally.failed, 0, "{stdout}");
    assert_eq!(tally.skipped, 0, "{stdout}");
    assert!(
        tally.passed >= MIN_PASSED,
        "{} passed, expected at least {MIN_PASSED}",
        tally.passed
    );
    assert_eq!(table_sum(&stdout), tally, "table rows vs the last line");
    let (files, tests) = count_archive_tests();
    assert_eq!(files, ARCHIVE_FILES, "JSON files in the archive");
    assert_eq!(
        tally.passed, tests as u64,
        "every test of the archive passed"
    );
}

/// One file of the archive in a temp dir, filtered to its Shanghai tests: as released, all
/// of them pass; with one test's expected post-state balance raised by one wei, that test,
/// and only it, fails and the exit code is non-zero.
#[test]
fn ef_test_fails_a_fixture_with_a_wrong_post_state() {
    let bytes = archive_file(SUBSET_FILE);
    let mut tests: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).expect("fixture JSON");
    let selected: Vec<String> = tests
        .keys()
        .filter(|name| name.contains(SUBSET_FILTER))
        .cloned()
        .collect();
    assert!(
        selected.len() >= 2 && selected.len() < tests.len(),
        "the filter selects {} of {} tests",
        selected.len(),
        tests.len()
    );
    let selected_count = selected.len() as u64;

    let genuine = tempfile::tempdir().expect("temp dir");
    write_under(genuine.path(), SUBSET_FILE, &bytes);
    let stdout = expect_success(&ef_test(genuine.path(), &["--filter", SUBSET_FILTER]));
    assert_eq!(
        last_line_tally(&stdout),
        Tally {
            passed: selected_count,
            ..Tally::default()
        },
        "{stdout}"
    );

    let victim = &selected[0];
    let post_state = tests[victim]["postState"]
        .as_object_mut()
        .expect("the test has a postState");
    let balance = post_state
        .values_mut()
        .map(|account| &mut account["balance"])
        .find(|balance| balance.as_str().is_some_and(|hex| hex != "0x00"))
        .expect("an account with a balance");
    let raised =
        U256::from_str(balance.as_str().expect("hex balance")).expect("balance") + U256::from(1);
    *balance = serde_json::Value::String(format!("{raised:#x}"));
    let corrupted = tempfile::tempdir().expect("temp dir");
    write_under(
        corrupted.path(),
        SUBSET_FILE,
        &serde_json::to_vec(&tests).expect("fixture JSON"),
    );
    let output = ef_test(corrupted.path(), &["--filter", SUBSET_FILTER, "--verbose"]);
    expect_exit_code(&output, COMMAND_FAILED);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        last_line_tally(&stdout),
        Tally {
            passed: selected_count - 1,
            failed: 1,
            ..Tally::default()
        },
        "{stdout}"
    );
    let both = format!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(both.contains(victim.as_str()), "{victim} in:\n{both}");
    assert!(
        mentions_number(&both, raised.to::<u64>()) || both.contains(&format!("{raised:#x}")),
        "the expected balance {raised} in:\n{both}"
    );
    for other in &selected[1..] {
        assert!(
            !both.contains(other.as_str()),
            "{other} reported in:\n{both}"
        );
    }
}

/// The subset file's Shanghai tests as a JSON object of tests by name.
fn shanghai_tests() -> serde_json::Map<String, serde_json::Value> {
    let mut tests: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&archive_file(SUBSET_FILE)).expect("fixture JSON");
    tests.retain(|name, _| name.contains(SUBSET_FILTER));
    assert!(tests.len() >= 2, "{} Shanghai tests", tests.len());
    tests
}

/// Run `ef-test` on `tests` written as one fixture file.
fn ef_test_on(tests: &serde_json::Map<String, serde_json::Value>, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    write_under(
        dir.path(),
        "tests.json",
        &serde_json::to_vec(tests).expect("fixture JSON"),
    );
    ef_test(dir.path(), args)
}

/// The Shanghai tests without their `config` object (the ethereum/tests format, chain id 1 by
/// default: these tests use 1) pass, counted under ethereum/tests.
#[test]
fn ef_test_reads_the_ethereum_tests_format() {
    let mut tests = shanghai_tests();
    for test in tests.values_mut() {
        let config = test
            .as_object_mut()
            .and_then(|test| test.remove("config"))
            .expect("an execution-spec-tests fixture has a config");
        assert_eq!(config["chainid"], "0x01", "the tests run on chain id 1");
    }
    let stdout = expect_success(&ef_test_on(&tests, &[]));
    assert_eq!(
        last_line_tally(&stdout),
        Tally {
            passed: tests.len() as u64,
            ..Tally::default()
        },
        "{stdout}"
    );
    let rows = table_rows(&stdout);
    assert_eq!(rows.len(), 1, "{stdout}");
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str()),
        ("ethereum/tests", "Shanghai")
    );
}

/// A valid empty Shanghai block on top of `genesis`, beside the test's own first block
/// `first`: no transactions or withdrawals and no rewards after the merge, so the state (and
/// its root) stays the genesis'.
fn empty_sibling(genesis: &Header, first: &Header) -> (B256, String) {
    let header = Header {
        parent_hash: genesis.hash_slow(),
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: first.beneficiary,
        state_root: genesis.state_root,
        transactions_root: EMPTY_ROOT_HASH,
        receipts_root: EMPTY_ROOT_HASH,
        number: 1,
        gas_limit: first.gas_limit,
        timestamp: first.timestamp,
        extra_data: Bytes::from_static(b"side branch"),
        base_fee_per_gas: first.base_fee_per_gas,
        withdrawals_root: Some(EMPTY_ROOT_HASH),
        ..Header::default()
    };
    let hash = header.hash_slow();
    let block = Block {
        header,
        body: BlockBody::<TxEnvelope> {
            transactions: Vec::new(),
            ommers: Vec::new(),
            withdrawals: Some(Default::default()),
        },
    };
    (
        hash,
        format!("0x{}", hex::encode(alloy_rlp::encode(&block))),
    )
}

/// A decoded block header from a fixture's `0x…` RLP.
fn header_of(rlp: &serde_json::Value) -> Header {
    let bytes = hex::decode(rlp.as_str().expect("rlp hex").trim_start_matches("0x")).expect("hex");
    alloy_consensus::Block::<TxEnvelope>::decode(&mut bytes.as_slice())
        .expect("block rlp")
        .header
}

/// Two branches from genesis: the test's own blocks and an empty sibling of its first block.
/// After the merge the head is the last valid block imported, so: sibling first, then the
/// test's blocks (which need the sibling unwound) ends at the test's head with its post-state;
/// the test's blocks first, then the sibling (which needs all of them unwound) ends at the
/// sibling with the pre-state; and a test that still expects its own head there fails.
#[test]
fn ef_test_executes_each_branch_on_its_parent_and_follows_the_head() {
    let original = shanghai_tests();
    let mut side_first = serde_json::Map::new();
    let mut side_last = serde_json::Map::new();
    let mut wrong_head = serde_json::Map::new();
    for (name, test) in &original {
        let genesis = header_of(&test["genesisRLP"]);
        let blocks = test["blocks"].as_array().expect("blocks");
        let (hash, rlp) = empty_sibling(&genesis, &header_of(&blocks[0]["rlp"]));
        let sibling = serde_json::json!({ "rlp": rlp });

        let mut first = test.clone();
        let mut with_sibling = vec![sibling.clone()];
        with_sibling.extend(blocks.iter().cloned());
        first["blocks"] = serde_json::Value::Array(with_sibling);
        side_first.insert(name.clone(), first);

        let mut last = test.clone();
        let mut then_sibling = blocks.clone();
        then_sibling.push(sibling);
        last["blocks"] = serde_json::Value::Array(then_sibling);
        wrong_head.insert(name.clone(), last.clone());
        last["lastblockhash"] = serde_json::Value::String(format!("{hash:#x}"));
        last["postState"] = test["pre"].clone();
        side_last.insert(name.clone(), last);
    }
    let all = Tally {
        passed: original.len() as u64,
        ..Tally::default()
    };
    for (case, tests) in [("sibling first", &side_first), ("sibling last", &side_last)] {
        let stdout = expect_success(&ef_test_on(tests, &[]));
        assert_eq!(last_line_tally(&stdout), all, "{case}: {stdout}");
    }
    let output = ef_test_on(&wrong_head, &["--verbose"]);
    expect_exit_code(&output, COMMAND_FAILED);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        last_line_tally(&stdout),
        Tally {
            failed: original.len() as u64,
            ..Tally::default()
        },
        "{stdout}"
    );
    assert!(stdout.contains("expected"), "{stdout}");
}

/// The state root of every block and the post-state root are checked: a test that gives only
/// `postStateHash` (its last block's header stateRoot) passes, one whose `postStateHash` is
/// wrong fails naming both roots, and a block with a wrong stateRoot that the filler expects
/// rejected is rejected before the test's own blocks are accepted.
#[test]
fn ef_test_checks_state_roots() {
    let mut tests = shanghai_tests();
    let names: Vec<String> = tests.keys().take(3).cloned().collect();
    let header_root = |test: &serde_json::Value| {
        let blocks = test["blocks"].as_array().expect("blocks");
        let last = blocks.last().expect("a block");
        last["blockHeader"]["stateRoot"]
            .as_str()
            .expect("the last block's header stateRoot")
            .to_string()
    };
    for (name, root) in [
        (&names[0], header_root(&tests[&names[0]])),
        (&names[1], format!("{:#x}", B256::repeat_byte(7))),
    ] {
        let object = tests[name].as_object_mut().expect("test object");
        object.remove("postState").expect("a postState");
        object.insert("postStateHash".into(), root.into());
    }

    let wrong_root = &mut tests[&names[2]];
    let blocks = wrong_root["blocks"].as_array().expect("blocks").clone();
    let bytes = hex::decode(
        blocks[0]["rlp"]
            .as_str()
            .expect("rlp")
            .trim_start_matches("0x"),
    )
    .expect("hex");
    let mut block =
        alloy_consensus::Block::<TxEnvelope>::decode(&mut bytes.as_slice()).expect("block rlp");
    block.header.state_root = B256::repeat_byte(9);
    let mut with_bad_copy = vec![serde_json::json!({
        "rlp": format!("0x{}", hex::encode(alloy_rlp::encode(&block))),
        "expectException": "InvalidStateRoot",
    })];
    with_bad_copy.extend(blocks);
    wrong_root["blocks"] = serde_json::Value::Array(with_bad_copy);

    let output = ef_test_on(&tests, &["--verbose"]);
    expect_exit_code(&output, COMMAND_FAILED);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        last_line_tally(&stdout),
        Tally {
            passed: tests.len() as u64 - 1,
            failed: 1,
            ..Tally::default()
        },
        "{stdout}"
    );
    let failure = format!("FAIL {}: post-state root", names[1]);
    assert!(stdout.contains(&failure), "{failure} in:\n{stdout}");
    assert!(
        stdout.contains(&format!("expected {:#x}", B256::repeat_byte(7))),
        "{stdout}"
    );
}
