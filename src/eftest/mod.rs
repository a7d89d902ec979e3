//! `ef-test PATH`: the Ethereum execution-spec-tests blockchain tests run through the daemon's
//! own store, state layers, execution and commit code (see [`case`]). PATH is a directory of
//! JSON fixtures or a `.tar.zst` release archive. Prints a table by fork and a last line
//! `N passed, N failed, N skipped`.

pub mod case;
pub mod fixture;

use crate::store::embedded::EmbeddedStore;
use fixture::BlockchainTest;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A group of tests the runner does not count, and why.
#[derive(Debug, Clone, Copy)]
pub struct Skip {
    /// Tests of this network (exact), or any network when `None`.
    pub network: Option<&'static str>,
    /// Tests whose name contains this.
    pub name_contains: &'static str,
    /// Why they cannot pass here.
    pub reason: &'static str,
}

/// Tests that cannot pass on this executor, each group with its reason (none at present; the
/// runner still reports the count).
pub const SKIPPED: &[Skip] = &[];

/// The skip entry matching a test, if any.
pub fn skip_for(network: &str, name: &str) -> Option<&'static Skip> {
    SKIPPED
        .iter()
        .find(|skip| skip.network.is_none_or(|n| n == network) && name.contains(skip.name_contains))
}

/// What happened to one test.
enum Outcome {
    Skipped,
    Ran(Result<(), String>),
}

/// Per-fork counts.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Tests passed.
    pub passed: u64,
    /// Tests failed.
    pub failed: u64,
    /// Tests skipped (see [`SKIPPED`]).
    pub skipped: u64,
}

/// The outcome of a whole run.
#[derive(Debug, Default)]
pub struct Report {
    /// Counts by fork family.
    pub by_fork: BTreeMap<String, Counts>,
    /// Failed tests with the reason.
    pub failures: Vec<(String, String)>,
}

impl Report {
    /// Counts over all forks.
    pub fn total(&self) -> Counts {
        self.by_fork
            .values()
            .fold(Counts::default(), |acc, c| Counts {
                passed: acc.passed + c.passed,
                failed: acc.failed + c.failed,
                skipped: acc.skipped + c.skipped,
            })
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

    let results: Vec<(String, String, Outcome)> = files
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
                        let fork = test.fork_family().to_string();
                        if skip_for(&test.network, &name).is_some() {
                            return (fork, name, Outcome::Skipped);
                        }
                        let store_path = work_dir.join(format!(
                            "t{}.redb",
                            next_store.fetch_add(1, Ordering::Relaxed)
                        ));
                        let outcome = match EmbeddedStore::open(&store_path) {
                            Ok(store) => case::run_case(&test, Arc::new(store)),
                            Err(e) => Err(e.to_string()),
                        };
                        let _ = std::fs::remove_file(&store_path);
                        (fork, name, Outcome::Ran(outcome))
                    }
                    Err(e) => ("unparsed".to_string(), name, Outcome::Ran(Err(e))),
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let mut report = Report::default();
    for (fork, name, outcome) in results {
        let counts = report.by_fork.entry(fork).or_default();
        match outcome {
            Outcome::Skipped => counts.skipped += 1,
            Outcome::Ran(Ok(())) => counts.passed += 1,
            Outcome::Ran(Err(reason)) => {
                counts.failed += 1;
                report.failures.push((name, reason));
            }
        }
    }
    report.failures.sort();
    Ok(report)
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<22} {:>8} {:>8} {:>8}",
            "fork", "passed", "failed", "skipped"
        )?;
        for (fork, c) in &self.by_fork {
            writeln!(
                f,
                "{fork:<22} {:>8} {:>8} {:>8}",
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
