//! `ef-test` through the built binary: every test of the execution-spec-tests release passes,
//! none skipped, and a fixture whose expected post-state is wrong
//! is reported as the one failure (so the runner can fail). Test counts come from reading the
//! archive with the `tar` and `zstd` crates.

use crate::common::eest::{
    archive_file, count_archive_tests, eest_archive, last_line_tally, write_under, Tally,
};
use crate::common::{expect_exit_code, expect_success, mentions_number, run_cli, COMMAND_FAILED};
use alloy_primitives::U256;
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

/// The sum of the per-fork table rows (`fork passed failed skipped`) above the last line.
fn table_sum(stdout: &str) -> Tally {
    let lines: Vec<&str> = stdout.lines().collect();
    let header = lines
        .iter()
        .position(|line| parse_row(line).is_none() && line.contains("passed"))
        .unwrap_or_else(|| panic!("no table header in:\n{stdout}"));
    let rows = &lines[header + 1..lines.len() - 1];
    assert!(!rows.is_empty(), "no table rows in:\n{stdout}");
    rows.iter().fold(
        Tally {
            passed: 0,
            failed: 0,
            skipped: 0,
        },
        |sum, line| {
            let row = parse_row(line).unwrap_or_else(|| panic!("not a table row: {line:?}"));
            Tally {
                passed: sum.passed + row.passed,
                failed: sum.failed + row.failed,
                skipped: sum.skipped + row.skipped,
            }
        },
    )
}

/// A table row: a name and three counts.
fn parse_row(line: &str) -> Option<Tally> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let [_, passed, failed, skipped] = words.as_slice() else {
        return None;
    };
    Some(Tally {
        passed: passed.parse().ok()?,
        failed: failed.parse().ok()?,
        skipped: skipped.parse().ok()?,
    })
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
            failed: 0,
            skipped: 0,
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
            skipped: 0,
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
