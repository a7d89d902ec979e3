//! `ef-test PATH`: the Ethereum blockchain tests, of execution-spec-tests and of ethereum/tests,
//! run through the daemon's own store, state layers, execution and commit code (see [`case`]).
//! PATH is a directory of JSON fixtures or a `.tar.zst` release archive. Prints a table by suite
//! and fork (the test's `network`) and a last line `N passed, N failed, N skipped`.

pub mod branches;
pub mod case;
pub mod fixture;
pub mod left_out;

use crate::store::embedded::EmbeddedStore;
use fixture::BlockchainTest;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What happened to one test.
enum Outcome {
    /// Left out ([`left_out::LEFT_OUT`]).
    Skipped,
    /// Passed.
    Passed,
    /// Failed: why.
    Failed(String),
}

/// Counts of one group of tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Tests passed.
    pub passed: u64,
    /// Tests failed.
    pub failed: u64,
    /// Tests left out (see [`left_out::LEFT_OUT`]).
    pub skipped: u64,
}

impl Counts {
    fn add(self, other: Counts) -> Counts {
        Counts {
            passed: self.passed + other.passed,
            failed: self.failed + other.failed,
            skipped: self.skipped + other.skipped,
        }
    }
}

/// The group a test is counted in: its suite and its `network`.
pub type Group = (String, String);

/// The outcome of a whole run.
#[derive(Debug, Default)]
pub struct Report {
    /// Counts by suite and network.
    pub groups: BTreeMap<Group, Counts>,
    /// Failed tests with the reason.
    pub failures: Vec<(String, String)>,
}

impl Report {
    /// Counts over all groups.
    pub fn total(&self) -> Counts {
        self.groups
            .values()
            .fold(Counts::default(), |sum, counts| sum.add(*counts))
    }
}

/// An unusable fixture source.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SourceError {
    path: String,
    message: String,
}

fn source_error(path: &Path, message: impl std::fmt::Display) -> SourceError {
    SourceError {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Every fixture file under `path` as (name, JSON text).
fn fixture_files(path: &Path) -> Result<Vec<(String, Vec<u8>)>, SourceError> {
    let mut files = Vec::new();
    if path.is_dir() {
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| source_error(&dir, e))? {
                let entry_path: PathBuf = entry.map_err(|e| source_error(&dir, e))?.path();
                if entry_path.is_dir() {
                    stack.push(entry_path);
                } else if entry_path.extension().is_some_and(|e| e == "json") {
                    let text =
                        std::fs::read(&entry_path).map_err(|e| source_error(&entry_path, e))?;
                    files.push((entry_path.display().to_string(), text));
                }
            }
        }
    } else {
        let file = std::fs::File::open(path).map_err(|e| source_error(path, e))?;
        let decoder = zstd::Decoder::new(file).map_err(|e| source_error(path, e))?;
        let mut archive = tar::Archive::new(decoder);
        for entry in archive.entries().map_err(|e| source_error(path, e))? {
            let mut entry = entry.map_err(|e| source_error(path, e))?;
            let name = entry
                .path()
                .map_err(|e| source_error(path, e))?
                .display()
                .to_string();
            if name.ends_with(".json") {
                let mut text = Vec::new();
                entry
                    .read_to_end(&mut text)
                    .map_err(|e| source_error(path, e))?;
                files.push((name, text));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Run every test under `path` whose name contains `filter`; stores go in `work_dir`.
pub fn run(path: &Path, filter: Option<&str>, work_dir: &Path) -> Result<Report, SourceError> {
    let files = fixture_files(path)?;
    if files.is_empty() {
        return Err(source_error(path, "no .json fixtures found"));
    }
    std::fs::create_dir_all(work_dir).map_err(|e| source_error(work_dir, e))?;
    let next_store = AtomicU64::new(0);

    let results: Vec<(Group, String, Outcome)> = files
        .par_iter()
        .flat_map_iter(|(file, text)| {
            let tests: Result<BTreeMap<String, BlockchainTest>, _> = serde_json::from_slice(text);
            let cases: Vec<_> = match tests {
                Ok(tests) => tests
                    .into_iter()
                    .filter(|(name, _)| filter.is_none_or(|f| name.contains(f)))
                    .map(|(name, test)| (name, Ok(test)))
                    .collect(),
                Err(e) => vec![(file.clone(), Err(format!("fixture does not parse: {e}")))],
            };
            cases
                .into_iter()
                .map(|(name, test)| match test {
                    Ok(test) => {
                        let group = (test.suite().to_string(), test.network.clone());
                        let outcome = run_one(&test, &name, work_dir, &next_store);
                        (group, name, outcome)
                    }
                    Err(e) => (
                        ("unparsed".to_string(), "-".to_string()),
                        name,
                        Outcome::Failed(e),
                    ),
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let mut report = Report::default();
    for (group, name, outcome) in results {
        let counts = report.groups.entry(group).or_default();
        match outcome {
            Outcome::Skipped => counts.skipped += 1,
            Outcome::Passed => counts.passed += 1,
            Outcome::Failed(reason) => {
                counts.failed += 1;
                report.failures.push((name, reason));
            }
        }
    }
    report.failures.sort();
    Ok(report)
}

/// Run one test on a fresh store in `work_dir`, unless it is left out.
fn run_one(test: &BlockchainTest, name: &str, work_dir: &Path, next_store: &AtomicU64) -> Outcome {
    if left_out::left_out(name).is_some() {
        return Outcome::Skipped;
    }
    let store_path = work_dir.join(format!(
        "t{}.redb",
        next_store.fetch_add(1, Ordering::Relaxed)
    ));
    let outcome = match EmbeddedStore::open(&store_path) {
        Ok(store) => case::run_case(test, Arc::new(store)),
        Err(e) => Err(e.to_string()),
    };
    let _ = std::fs::remove_file(&store_path);
    match outcome {
        Ok(()) => Outcome::Passed,
        Err(reason) => Outcome::Failed(reason),
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<21} {:<31} {:>7} {:>7} {:>7}",
            "suite", "fork", "passed", "failed", "skipped"
        )?;
        for ((suite, network), c) in &self.groups {
            writeln!(
                f,
                "{suite:<21} {network:<31} {:>7} {:>7} {:>7}",
                c.passed, c.failed, c.skipped
            )?;
        }
        let total = self.total();
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            total.passed, total.failed, total.skipped
        )
    }
}
