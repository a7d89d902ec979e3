//! TLS and ACL users, through the built binary, against a real redis-server that serves TLS only
//! (certificates made by the test with openssl; clients must present one) and knows one ACL
//! user limited to the README's rule (read from the README, so the documented rule is the one
//! tested): a chain executes to the same store as on a plain node, on one node and on a 3-master
//! cluster; a CA that did not sign the server's certificate, a wrong password and a user
//! missing any one command of the rule each stop the daemon at start with an error naming the
//! cause. The password never appears in the output, at debug level, in success or failure.
//! Settings that cannot work together are refused as configuration.

use crate::common::chain::ChainFixture;
use crate::common::daemon::{redis_reference, Daemon, Reference, RUN_TIMEOUT};
use crate::common::exec::without_run_times;
use crate::common::redis_cluster::RedisCluster;
use crate::common::redis_server::{RedisServer, ServerOptions};
use crate::common::tls::Certificates;
use crate::common::{
    assert_same_snapshot, expect_exit_code, expect_success, run_cli, var, COMMAND_FAILED,
};
use std::process::Output;
use std::time::Duration;

/// The ACL user of the tests (the README's).
const USER: &str = "evm-executor";
/// Its password: must never be printed.
const PASSWORD: &str = "Pw-5e1f0c8a-never-logged";
/// A wrong password: must never be printed either.
const WRONG_PASSWORD: &str = "Pw-wrong-77d2b3-never-logged";
/// The README's placeholder for the password.
const PLACEHOLDER: &str = ">CHANGE-ME";
/// The longest a failing start may take: failing causes are not retried.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The README's `ACL SETUSER` rules (one node, then cluster) as arguments after `ACL`, with
/// the test's password.
fn readme_rules() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let rules: Vec<Vec<String>> = readme
        .lines()
        .filter(|line| line.starts_with(&format!("ACL SETUSER {USER} ")))
        .map(|line| {
            line.split_whitespace()
                .skip(1)
                .map(|word| match word {
                    PLACEHOLDER => format!(">{PASSWORD}"),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    assert_eq!(
        rules.len(),
        2,
        "the README lists a one-node and a cluster rule"
    );
    rules
}

/// The commands a rule grants (its `+name` words).
fn granted(rule: &[String]) -> Vec<String> {
    rule.iter()
        .filter_map(|word| word.strip_prefix('+'))
        .map(String::from)
        .collect()
}

/// Set the ACL user on `server` from `rule` (arguments after `ACL`), starting from nothing.
fn set_user(server: &RedisServer, rule: &[String]) {
    let _: () = server.query(redis::cmd("ACL").arg("DELUSER").arg(USER).arg("nobody"));
    let _: () = server.query(redis::cmd("ACL").arg(rule));
}

/// A TLS-only redis-server knowing the README's one-node user.
fn tls_server(certificates: &Certificates) -> RedisServer {
    let server = RedisServer::start_with(ServerOptions {
        args: certificates.server_args(),
        tls_only: true,
    });
    set_user(&server, &readme_rules()[0]);
    server
}

/// The overrides for `addr` over TLS with `ca` as the CA file, as the ACL user with `password`,
/// logging at debug level.
fn env(certificates: &Certificates, addr: &str, ca: &str, password: &str) -> Vec<(String, String)> {
    let mut env = vec![
        var("EVM_EXECUTOR_STORAGE_BACKEND", "pika"),
        var("EVM_EXECUTOR_STORAGE_PIKA_ADDR", addr),
        var("EVM_EXECUTOR_STORAGE_PIKA_USERNAME", USER),
        var("EVM_EXECUTOR_STORAGE_PIKA_PASSWORD", password),
        var("EVM_EXECUTOR_STORAGE_PIKA_MAX_RETRIES", "3"),
        var("EVM_EXECUTOR_LOG_LEVEL", "debug"),
    ];
    env.extend(certificates.client_env(ca));
    env
}

/// Fail the test when a password shows in the command's output.
fn assert_no_secret(output: &Output, what: &str) {
    for stream in [&output.stdout, &output.stderr] {
        let text = String::from_utf8_lossy(stream);
        for secret in [PASSWORD, WRONG_PASSWORD] {
            assert!(
                !text.contains(secret),
                "{what}: a password is in the output:\n{text}"
            );
        }
    }
}

/// `init`, `import` and `run --exit-at-head` of `chain` with `env`; each must succeed without
/// printing a password.
fn execute(env: &[(String, String)], chain: &ChainFixture) {
    let genesis = chain.genesis_path();
    let file = chain.chain_path();
    let path = |p: &std::path::Path| p.to_str().expect("utf-8 path").to_string();
    for (what, output) in [
        (
            "init",
            run_cli(env, &["init", "--genesis", &path(&genesis)]),
        ),
        ("import", run_cli(env, &["import", &path(&file)])),
        (
            "run",
            Daemon::start_with_env(env, &["run", "--exit-at-head"]).finish_within(RUN_TIMEOUT),
        ),
    ] {
        expect_success(&output);
        assert_no_secret(&output, what);
    }
}

/// geth-ethtest run once on a plain redis-server.
fn plain_reference() -> &'static Reference {
    redis_reference(&ChainFixture::geth_ethtest())
}

/// geth-ethtest over TLS (client certificate presented) as the README's user leaves the same
/// store as on a plain redis-server.
#[test]
fn chain_over_tls_as_an_acl_user_matches_a_plain_node() {
    let certificates = Certificates::make();
    let server = tls_server(&certificates);
    let chain = ChainFixture::geth_ethtest();
    execute(
        &env(&certificates, &server.addr(), "ca.crt", PASSWORD),
        &chain,
    );
    assert_same_snapshot(
        &without_run_times(server.snapshot()),
        &plain_reference().snapshot,
        "over TLS as an ACL user vs a plain node",
    );
}

/// The same on a TLS-only 3-master cluster (the bus too) whose every node knows the README's
/// cluster user; and the user without one of the cluster's own commands (on one node only)
/// stops `run` at start, naming it.
#[test]
fn chain_on_a_tls_cluster_as_an_acl_user_matches_a_plain_node() {
    let certificates = Certificates::make();
    let cluster = RedisCluster::start_with(3, Some(&certificates));
    let rules = readme_rules();
    for node in cluster.nodes() {
        set_user(node, &rules[1]);
    }
    let chain = ChainFixture::geth_ethtest();
    let mut cluster_env = env(&certificates, &cluster.seeds(), "ca.crt", PASSWORD);
    cluster_env.push(var("EVM_EXECUTOR_STORAGE_PIKA_CLUSTER", "true"));
    execute(&cluster_env, &chain);
    assert_same_snapshot(
        &without_run_times(cluster.snapshot()),
        &plain_reference().snapshot,
        "on a TLS cluster as an ACL user vs a plain node",
    );
    let single_node = granted(&rules[0]);
    let last = &cluster.nodes()[2];
    for command in granted(&rules[1]) {
        if single_node.contains(&command) {
            continue;
        }
        let without: Vec<String> = rules[1]
            .iter()
            .filter(|word| word.strip_prefix('+') != Some(&command))
            .cloned()
            .collect();
        set_user(last, &without);
        let stderr = failed_start(&cluster_env, &format!("cluster without {command}"));
        assert!(
            stderr.contains(&format!(
                "user `{USER}` lacks an ACL permission on {}",
                last.addr()
            )) && stderr.contains(&format!("'{command}'")),
            "the missing {command} is not named:\n{stderr}"
        );
        set_user(last, &rules[1]);
    }
}

/// `run` with `env` (retrying transient failures for ever, so a cause taken for transient
/// would hang it) must exit 1 within [`START_TIMEOUT`] without printing a password; its stderr.
fn failed_start(env: &[(String, String)], what: &str) -> String {
    let mut env = env.to_vec();
    env.push(var("EVM_EXECUTOR_STORAGE_PIKA_MAX_RETRIES", "0"));
    let output = Daemon::start_with_env(&env, &["run"]).finish_within(START_TIMEOUT);
    assert_no_secret(&output, what);
    expect_exit_code(&output, COMMAND_FAILED)
}

/// A CA that did not sign the server's certificate, a wrong password, and the README's user
/// without any one of its commands: each stops `run` at start, naming the cause.
#[test]
fn wrong_ca_wrong_password_and_a_missing_command_fail_at_start() {
    let certificates = Certificates::make();
    let server = tls_server(&certificates);
    let addr = server.addr();

    let stderr = failed_start(
        &env(&certificates, &addr, "other-ca.crt", PASSWORD),
        "wrong CA",
    );
    assert!(
        stderr.contains("certificate is not trusted")
            && stderr.contains("storage.pika.tls_ca_file"),
        "the wrong CA is not named:\n{stderr}"
    );

    let stderr = failed_start(
        &env(&certificates, &addr, "ca.crt", WRONG_PASSWORD),
        "wrong password",
    );
    assert!(
        stderr.contains(&format!("refused the credentials of user `{USER}`"))
            && stderr.contains("storage.pika.password"),
        "the refused password is not named:\n{stderr}"
    );

    let rule = &readme_rules()[0];
    let commands = granted(rule);
    assert!(commands.len() >= 5, "the rule grants {commands:?}");
    for command in &commands {
        let without: Vec<String> = rule
            .iter()
            .filter(|word| word.strip_prefix('+') != Some(command))
            .cloned()
            .collect();
        set_user(&server, &without);
        let stderr = failed_start(
            &env(&certificates, &addr, "ca.crt", PASSWORD),
            &format!("without {command}"),
        );
        assert!(
            stderr.contains(&format!("user `{USER}` lacks an ACL permission"))
                && stderr.contains(&format!("'{command}'")),
            "the missing {command} is not named:\n{stderr}"
        );
    }
    // The full rule again: the same server accepts the daemon's start.
    set_user(&server, rule);
    let mut env = env(&certificates, &addr, "ca.crt", PASSWORD);
    env.push(var("EVM_EXECUTOR_CHAIN_NAME", "custom"));
    let output = run_cli(&env, &["status"]);
    assert_no_secret(&output, "status with the full rule");
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("start-up check"),
        "the full rule fails the start-up check:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Settings of `storage.pika` that cannot work together are refused before anything runs,
/// naming the key.
#[test]
fn impossible_store_settings_are_refused_naming_the_key() {
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("STORAGE_PIKA_ADDR", "a:1,b:2")], "storage.pika.addr"),
        (
            &[("STORAGE_PIKA_CLUSTER", "true"), ("STORAGE_PIKA_DB", "1")],
            "storage.pika.db",
        ),
        (
            &[("STORAGE_PIKA_USERNAME", "someone")],
            "storage.pika.password",
        ),
        (
            &[("STORAGE_PIKA_TLS_CA_FILE", "/etc/ca.pem")],
            "storage.pika.tls_ca_file",
        ),
        (
            &[
                ("STORAGE_PIKA_TLS", "true"),
                ("STORAGE_PIKA_TLS_CERT_FILE", "/etc/c.pem"),
            ],
            "storage.pika.tls_key_file",
        ),
    ];
    for (settings, key) in cases {
        let mut env = vec![var("EVM_EXECUTOR_STORAGE_BACKEND", "pika")];
        env.extend(
            settings
                .iter()
                .map(|(name, value)| var(&format!("EVM_EXECUTOR_{name}"), *value)),
        );
        let stderr = expect_exit_code(&run_cli(&env, &["status"]), 2);
        assert!(
            stderr.contains(&format!("`{key}`")),
            "{settings:?} is not refused naming {key}:\n{stderr}"
        );
    }
}

/// A loaded configuration printed with `{:?}` (as a log line or error might) shows that a
/// password is set, never the password.
#[test]
fn a_printed_config_hides_the_password() {
    let config = evm_executor::config::Config::load(
        None,
        [var("EVM_EXECUTOR_STORAGE_PIKA_PASSWORD", PASSWORD)],
    )
    .expect("a valid config");
    assert_eq!(config.storage.pika.password.expose(), PASSWORD);
    let printed = format!("{config:?}");
    assert!(!printed.contains(PASSWORD), "{printed}");
    assert!(printed.contains("password: <redacted>"), "{printed}");
}
