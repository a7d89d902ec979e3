//! Configuration through the built binary: a config file's unknown keys, wrong types and
//! impossible values, and unknown `EVM_EXECUTOR_*` variables, stop it with exit code 2 and name
//! the key; environment overrides win over the file; and the shipped `config/config.toml`
//! documents exactly the built-in defaults.

use crate::common::{expect_exit_code, expect_success, run_cli, var, Backend};
use evm_executor::config::Config;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// Exit code of a configuration error.
const CONFIG_ERROR: i32 = 2;

/// A temp dir holding `config.toml` with `text`.
fn config_file(text: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

/// `status` with `--config` pointing at `path` and `env` overrides.
fn status_with_config(path: &Path, env: &[(String, String)]) -> std::process::Output {
    run_cli(
        env,
        &["--config", path.to_str().expect("utf-8 path"), "status"],
    )
}

/// A config file `text` makes `status` fail with exit code 2 and a message naming `key`.
fn assert_file_rejected_naming(text: &str, key: &str) {
    let (_dir, path) = config_file(text);
    let stderr = expect_exit_code(&status_with_config(&path, &[]), CONFIG_ERROR);
    assert!(stderr.contains(key), "`{key}` in:\n{stderr}");
}

/// The variable `name=value` makes `status` fail with exit code 2 and a message naming it.
fn assert_env_rejected_naming(name: &str, value: &str) {
    let stderr = expect_exit_code(&run_cli(&[var(name, value)], &["status"]), CONFIG_ERROR);
    assert!(stderr.contains(name), "`{name}` in:\n{stderr}");
}

#[test]
fn unknown_file_key_is_named() {
    assert_file_rejected_naming("[storage]\npipline_size = 5\n", "storage.pipline_size");
}

#[test]
fn wrongly_typed_file_value_is_named() {
    assert_file_rejected_naming("[state]\nwindow_size = \"big\"\n", "state.window_size");
}

#[test]
fn impossible_file_value_is_named() {
    assert_file_rejected_naming("[state]\nwindow_size = 0\n", "state.window_size");
}

#[test]
fn unknown_environment_variable_is_named() {
    assert_env_rejected_naming("EVM_EXECUTOR_FOO_BAR", "1");
}

#[test]
fn wrongly_typed_environment_value_is_named() {
    assert_env_rejected_naming("EVM_EXECUTOR_STATE_WINDOW_SIZE", "big");
}

#[test]
fn environment_override_wins_over_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let from_file = dir.path().join("from-file.redb");
    let from_env = dir.path().join("from-env.redb");
    let (_config_dir, config) = config_file(&format!(
        "[storage]\nbackend = \"embedded\"\n\n[storage.embedded]\npath = {:?}\n",
        from_file.display().to_string()
    ));
    let env = [var(
        "EVM_EXECUTOR_STORAGE_EMBEDDED_PATH",
        from_env.display().to_string(),
    )];
    let stdout = expect_success(&status_with_config(&config, &env));
    let backend_line = format!("embedded ({})", from_env.display());
    assert!(
        stdout.contains(&backend_line),
        "{backend_line} in:\n{stdout}"
    );
    assert!(
        from_env.exists(),
        "the store was not created at the env path"
    );
    assert!(!from_file.exists(), "the file's path was used");
}

#[test]
fn pika_address_from_the_environment_is_used() {
    let backend = Backend::redis();
    let env = [
        var("EVM_EXECUTOR_STORAGE_BACKEND", "pika"),
        var("EVM_EXECUTOR_STORAGE_PIKA_ADDR", backend.location()),
    ];
    let stdout = expect_success(&run_cli(&env, &["status"]));
    let backend_line = format!("pika ({})", backend.location());
    assert!(
        stdout.contains(&backend_line),
        "{backend_line} in:\n{stdout}"
    );
}

/// `make run` and `make test` export `EVM_EXECUTOR_FIXTURES` (the tests' fixtures path) to
/// every command they run, the binary included; it is not a config key and must not stop it.
#[test]
fn fixtures_variable_exported_by_make_is_not_a_config_error() {
    let backend = Backend::embedded();
    let fixtures = crate::common::fixtures_dir().display().to_string();
    let output = backend.cli(&[var(crate::common::FIXTURES_ENV, fixtures)], &["status"]);
    expect_success(&output);
}

#[test]
fn shipped_config_file_holds_the_built_in_defaults() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/config.toml");
    let loaded = Config::load(Some(&shipped), std::iter::empty())
        .unwrap_or_else(|e| panic!("{} does not load: {e}", shipped.display()));
    assert_eq!(loaded, Config::default());
}
