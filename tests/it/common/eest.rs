//! The execution-spec-tests release archive (`eest-blockchain-tests-v5.4.0.tar.zst`), read
//! with the `zstd` and `tar` crates: counting its tests and copying some of its files out.

use super::fixtures_dir;
use serde::de::IgnoredAny;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The archive's file name under the fixtures directory.
pub const EEST_ARCHIVE: &str = "eest-blockchain-tests-v5.4.0.tar.zst";

/// The archive's path.
pub fn eest_archive() -> PathBuf {
    fixtures_dir().join(EEST_ARCHIVE)
}

/// Call `visit(path, bytes)` for every `.json` file in the archive, in archive order.
fn for_each_json(mut visit: impl FnMut(&str, &[u8])) {
    let path = eest_archive();
    let file = std::fs::File::open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    let decoder = zstd::Decoder::new(file).expect("zstd stream");
    let mut archive = tar::Archive::new(decoder);
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let name = entry.path().expect("tar path").display().to_string();
        if !name.ends_with(".json") {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read a tar entry");
        visit(&name, &bytes);
    }
}

/// How many `.json` files the archive holds and how many tests they define (each file is an
/// object of tests by name).
pub fn count_archive_tests() -> (usize, usize) {
    let (mut files, mut tests) = (0, 0);
    for_each_json(|name, bytes| {
        let file: BTreeMap<String, IgnoredAny> = serde_json::from_slice(bytes)
            .unwrap_or_else(|e| panic!("{name} is not a JSON object of tests: {e}"));
        files += 1;
        tests += file.len();
    });
    (files, tests)
}

/// The bytes of the archive's file at `path` (as the archive names it); panics when absent.
pub fn archive_file(path: &str) -> Vec<u8> {
    let mut found = None;
    for_each_json(|name, bytes| {
        if name == path {
            found = Some(bytes.to_vec());
        }
    });
    found.unwrap_or_else(|| panic!("{path} is not in {EEST_ARCHIVE}"))
}

/// The `N passed, N failed, N skipped` counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Passed tests.
    pub passed: u64,
    /// Failed tests.
    pub failed: u64,
    /// Skipped tests.
    pub skipped: u64,
}

/// Read `N passed, N failed, N skipped`; `None` when `line` is not exactly that.
pub fn parse_tally(line: &str) -> Option<Tally> {
    let words: Vec<&str> = line.trim().split(' ').collect();
    let [passed, "passed,", failed, "failed,", skipped, "skipped"] = words.as_slice() else {
        return None;
    };
    Some(Tally {
        passed: passed.parse().ok()?,
        failed: failed.parse().ok()?,
        skipped: skipped.parse().ok()?,
    })
}

/// The tally on the last line of `ef-test`'s stdout; panics when the last line is not one.
pub fn last_line_tally(stdout: &str) -> Tally {
    let last = stdout.lines().last().unwrap_or_default();
    parse_tally(last).unwrap_or_else(|| panic!("last line {last:?} is not an `ef-test` tally"))
}

/// Write `bytes` to `dir/relative`, creating the directories on the way.
pub fn write_under(dir: &Path, relative: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(relative);
    let parent = path.parent().expect("a file path has a parent");
    std::fs::create_dir_all(parent).expect("create fixture directories");
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}
