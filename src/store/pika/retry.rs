//! What can go wrong talking to the store, which of it waiting can fix, how it is put in words
//! (naming the node and the cause, never a secret), and the retry loop around every operation.
//!
//! A lost connection, a refused connect, a timeout, a server still loading, a cluster that is
//! down or resharding is retried with exponential backoff capped at `retry_max_backoff_ms`, each
//! retry logged; after `max_retries` consecutive failures (0: never) the call fails as
//! [`StoreError::Unavailable`]. Refused credentials, a missing ACL permission or a TLS
//! certificate that is not trusted cannot be waited out: they fail at once as
//! [`StoreError::Backend`], with a message that says which.

use super::BACKEND;
use crate::config::PikaConfig;
use pipeline::metrics::metrics;
use primitives::clock::unix_now_ms;
use primitives::store::StoreError;
use redis::{ErrorKind, RedisError, ServerErrorKind};
use std::time::Duration;

/// First retry delay; doubled per failure up to `retry_max_backoff_ms`.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// One failed attempt.
#[derive(Debug)]
pub enum Failure {
    /// A node did not answer, or answered with an error.
    Node {
        /// `host:port`.
        node: String,
        /// What the client saw.
        error: RedisError,
    },
    /// The cluster's answers did not settle (redirections or slot map changes went on for the
    /// whole attempt: a resharding or failover in progress).
    Unsettled {
        /// What kept moving.
        detail: String,
    },
    /// The server answered, but not as the protocol says.
    Protocol {
        /// `host:port`.
        node: String,
        /// What was wrong with the answer.
        detail: String,
    },
    /// The write deadline passed before the rest of the operation could be sent.
    DeadlinePassed,
}

impl Failure {
    /// `error` from `node`.
    pub fn node(node: &str, error: RedisError) -> Self {
        Self::Node {
            node: node.to_string(),
            error,
        }
    }

    /// True when waiting can fix it.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Node { error, .. } => is_transient(error),
            Self::Unsettled { .. } => true,
            Self::Protocol { .. } | Self::DeadlinePassed => false,
        }
    }

    /// The failure in words, for the user `username` (empty: the default user).
    pub fn describe(&self, username: &str) -> String {
        match self {
            Self::Node { node, error } => describe(node, error, username),
            Self::Unsettled { detail } => format!("the cluster did not settle: {detail}"),
            Self::Protocol { node, detail } => format!("{node} answered unexpectedly: {detail}"),
            Self::DeadlinePassed => "the write deadline passed".into(),
        }
    }
}

/// The TLS error under `error`, when the failure is TLS's. The client keeps the I/O error
/// behind an `Arc`, which is what its `source` shows.
fn tls_error(error: &RedisError) -> Option<&rustls::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let source = std::error::Error::source(error)?;
    let io = match source.downcast_ref::<Shared>() {
        Some(shared) => shared.downcast_ref::<std::io::Error>()?,
        None => source.downcast_ref::<std::io::Error>()?,
    };
    io.get_ref()?.downcast_ref::<rustls::Error>()
}

/// The error code of a server's error reply (`NOPERM`, `WRONGPASS`, …).
fn server_code(error: &RedisError) -> Option<&str> {
    error.code()
}

fn is_transient(error: &RedisError) -> bool {
    if tls_error(error).is_some() {
        return false;
    }
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(
            error.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::ReadOnly
            )
        )
}

/// True when `error` is an ACL refusal.
fn is_permission_error(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::NoPerm)
        || error.detail().is_some_and(|d| d.starts_with("NOPERM"))
}

fn describe(node: &str, error: &RedisError, username: &str) -> String {
    let user = match username {
        "" => "the default user".to_string(),
        name => format!("user `{name}`"),
    };
    if let Some(tls) = tls_error(error) {
        use rustls::{AlertDescription as Alert, Error as Tls};
        let cause = match tls {
            Tls::InvalidCertificate(_) => {
                "the server's certificate is not trusted (check storage.pika.tls_ca_file and \
                 that the certificate names the host)"
            }
            Tls::AlertReceived(
                Alert::CertificateRequired | Alert::BadCertificate | Alert::UnknownCA,
            ) => "the server refused the client certificate (check storage.pika.tls_cert_file)",
            Tls::InvalidMessage(_) | Tls::InappropriateMessage { .. } => {
                "the server does not speak TLS on this port (check storage.pika.tls)"
            }
            _ => "the TLS handshake failed",
        };
        return format!("TLS with {node}: {cause}: {tls}");
    }
    if error.kind() == ErrorKind::AuthenticationFailed || server_code(error) == Some("WRONGPASS") {
        return format!(
            "{node} refused the credentials of {user} (storage.pika.username, \
             storage.pika.password): {error}"
        );
    }
    if server_code(error) == Some("NOAUTH") {
        return format!(
            "{node} requires a password and none is configured (storage.pika.password): {error}"
        );
    }
    if matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::Moved | ServerErrorKind::Ask | ServerErrorKind::CrossSlot
        )
    ) {
        return format!(
            "{node} is a Redis Cluster node (it sends keys to other nodes): set \
             storage.pika.cluster = true: {error}"
        );
    }
    if is_permission_error(error) {
        return format!(
            "{user} lacks an ACL permission on {node}: {error} (the README's \"Store access\" \
             section lists the rule the executor needs)"
        );
    }
    format!("{node}: {error}")
}

/// Runs store operations, retrying transient failures with capped exponential backoff.
pub struct Retrier {
    /// Where the store is, for log lines (`host:port`, or the cluster's seeds).
    store: String,
    username: String,
    max_backoff: Duration,
    max_retries: u32,
}

impl Retrier {
    /// The retry policy of `config`.
    pub fn new(config: &PikaConfig) -> Self {
        Self {
            store: config.addr.clone(),
            username: config.username.clone(),
            max_backoff: Duration::from_millis(config.retry_max_backoff_ms.max(1)),
            max_retries: config.max_retries,
        }
    }

    /// Run `op` until it succeeds, fails for good, or (with `deadline_ms`, Unix milliseconds) an
    /// attempt would start after the deadline.
    pub fn run<T>(
        &self,
        what: &str,
        deadline_ms: Option<u64>,
        mut op: impl FnMut() -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        let mut failures: u32 = 0;
        let mut backoff = INITIAL_BACKOFF;
        loop {
            if deadline_ms.is_some_and(|deadline| unix_now_ms() >= deadline) {
                return Err(StoreError::DeadlinePassed { backend: BACKEND });
            }
            let failure = match op() {
                Ok(value) => {
                    metrics().store_up.set(1);
                    if failures > 0 {
                        tracing::info!(store = %self.store, failures, "store reachable again");
                    }
                    return Ok(value);
                }
                Err(failure) if failure.is_transient() => failure,
                Err(Failure::DeadlinePassed) => {
                    return Err(StoreError::DeadlinePassed { backend: BACKEND })
                }
                Err(failure) => {
                    return Err(StoreError::Backend {
                        backend: BACKEND,
                        message: format!("{what}: {}", failure.describe(&self.username)),
                    })
                }
            };
            failures += 1;
            metrics().store_errors_total.inc();
            metrics().store_up.set(0);
            let cause = failure.describe(&self.username);
            if self.max_retries != 0 && failures >= self.max_retries {
                return Err(StoreError::Unavailable {
                    backend: BACKEND,
                    message: format!("{what} failed {failures} times, last: {cause}"),
                });
            }
            tracing::warn!(
                store = %self.store,
                attempt = failures,
                retry_in_ms = backoff.as_millis() as u64,
                error = %cause,
                "store unreachable during {what}; retrying"
            );
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }
}
