//! One store node: how a connection to it is opened (TLS, ACL user, database, timeouts), a small
//! pool of open connections, and its per-node meters (round trips, failures).

use super::retry::Failure;
use crate::config::{Password, PikaConfig};
use pipeline::metrics::metrics;
use primitives::store::StoreError;
use prometheus::IntCounter;
use redis::{
    ClientTlsConfig, Connection, ConnectionAddr, IntoConnectionInfo, RedisError, RedisResult,
    TlsCertificates,
};
use std::path::Path;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

/// How every connection is opened. Holds the password: never printed.
#[derive(Clone)]
pub struct Connector {
    username: String,
    password: Password,
    db: i64,
    /// TLS material; `None` for plain TCP.
    tls: Option<TlsCertificates>,
    connect_timeout: Duration,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    max_connections: usize,
}

/// The contents of the PEM file named by config key `key`, which must hold a `label` block
/// (`CERTIFICATE`, `PRIVATE KEY`).
fn read_pem(key: &str, path: &Path, label: &str) -> Result<Vec<u8>, StoreError> {
    let error = |message: String| StoreError::Backend {
        backend: super::BACKEND,
        message: format!("{key} {}: {message}", path.display()),
    };
    let bytes = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    let text = String::from_utf8_lossy(&bytes);
    if !text.contains("-----BEGIN ") || !text.contains(&format!("{label}-----")) {
        return Err(error(format!("holds no PEM {label}")));
    }
    Ok(bytes)
}

impl Connector {
    /// The settings of `config`, with its TLS files read.
    pub fn new(config: &PikaConfig) -> Result<Self, StoreError> {
        let tls = match config.tls {
            false => None,
            true => {
                let set = |path: &Path| !path.as_os_str().is_empty();
                let root_cert = set(&config.tls_ca_file)
                    .then(|| {
                        read_pem(
                            "storage.pika.tls_ca_file",
                            &config.tls_ca_file,
                            "CERTIFICATE",
                        )
                    })
                    .transpose()?;
                let client_tls = match set(&config.tls_cert_file) {
                    false => None,
                    true => Some(ClientTlsConfig {
                        client_cert: read_pem(
                            "storage.pika.tls_cert_file",
                            &config.tls_cert_file,
                            "CERTIFICATE",
                        )?,
                        client_key: read_pem(
                            "storage.pika.tls_key_file",
                            &config.tls_key_file,
                            "PRIVATE KEY",
                        )?,
                    }),
                };
                Some(TlsCertificates {
                    client_tls,
                    root_cert,
                })
            }
        };
        let timeout = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        let connector = Self {
            username: config.username.clone(),
            password: config.password.clone(),
            db: config.db.into(),
            tls,
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            read_timeout: timeout(config.read_timeout_ms),
            write_timeout: timeout(config.write_timeout_ms),
            max_connections: (config.max_connections as usize).max(1),
        };
        // The PEM files are parsed when a client is made: a broken one fails here, at start,
        // instead of at every connect.
        if connector.tls.is_some() {
            connector
                .client("localhost", 1)
                .map_err(|e| StoreError::Backend {
                    backend: super::BACKEND,
                    message: format!(
                        "storage.pika.tls_ca_file, tls_cert_file or tls_key_file cannot be used: {e}"
                    ),
                })?;
        }
        Ok(connector)
    }

    /// The ACL user connections authenticate as (empty: the default user).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// A client for `host:port`.
    fn client(&self, host: &str, port: u16) -> RedisResult<redis::Client> {
        let addr = match self.tls {
            None => ConnectionAddr::Tcp(host.to_string(), port),
            Some(_) => ConnectionAddr::TcpTls {
                host: host.to_string(),
                port,
                insecure: false,
                tls_params: None,
            },
        };
        let info = addr.into_connection_info()?;
        let mut settings = info.redis_settings().clone().set_db(self.db);
        if !self.username.is_empty() {
            settings = settings.set_username(&self.username);
        }
        if !self.password.is_empty() {
            settings = settings.set_password(self.password.expose());
        }
        // Pika and Redis before 7.2 do not know CLIENT SETINFO; skip the library-name handshake.
        let info = info.set_redis_settings(settings.set_skip_set_lib_name());
        match &self.tls {
            None => redis::Client::open(info),
            Some(certificates) => redis::Client::build_with_tls(info, certificates.clone()),
        }
    }
}

/// `host:port`, with an IPv6 host in brackets: how a node is named in logs, errors and metric
/// labels.
pub fn node_addr(host: &str, port: u16) -> String {
    match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    }
}

/// Connections not in use, and how many exist in all.
struct Pool {
    idle: Vec<Connection>,
    open: usize,
}

/// One node (`host:port`) with its pool of at most `max_connections` connections.
pub struct Node {
    addr: String,
    client: redis::Client,
    connector: Connector,
    pool: Mutex<Pool>,
    returned: Condvar,
    round_trips: IntCounter,
    errors: IntCounter,
}

impl Node {
    /// The node at `host:port`, not connected yet.
    pub fn new(host: &str, port: u16, connector: &Connector) -> Result<Self, Failure> {
        let addr = node_addr(host, port);
        let client = connector
            .client(host, port)
            .map_err(|error| Failure::node(&addr, error))?;
        let m = metrics();
        Ok(Self {
            round_trips: m.store_node_round_trips_total.with_label_values(&[&addr]),
            errors: m.store_node_errors_total.with_label_values(&[&addr]),
            addr,
            client,
            connector: connector.clone(),
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        })
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn connect(&self) -> RedisResult<Connection> {
        let con = self
            .client
            .get_connection_with_timeout(self.connector.connect_timeout)?;
        con.set_read_timeout(self.connector.read_timeout)?;
        con.set_write_timeout(self.connector.write_timeout)?;
        Ok(con)
    }

    /// Take an idle connection, open a new one under the cap, or wait for one to come back.
    pub fn checkout(&self) -> Result<Connection, Failure> {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(con) = pool.idle.pop() {
                return Ok(con);
            }
            if pool.open < self.connector.max_connections {
                pool.open += 1;
                drop(pool);
                return self.connect().map_err(|error| {
                    self.discard();
                    self.failed();
                    Failure::node(&self.addr, error)
                });
            }
            pool = self
                .returned
                .wait(pool)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Give back a connection whose replies have all been read.
    pub fn checkin(&self, con: Connection) {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        pool.idle.push(con);
        self.returned.notify_one();
    }

    /// Account for a checked-out connection that is dropped instead of given back.
    pub fn discard(&self) {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        pool.open = pool.open.saturating_sub(1);
        self.returned.notify_one();
    }

    /// Count one round trip to this node.
    pub fn round_trip(&self) {
        self.round_trips.inc();
        metrics().store_round_trips_total.inc();
    }

    /// Count one failure of this node.
    pub fn failed(&self) {
        self.errors.inc();
    }

    /// One round trip: `op` on a pooled connection. A connection that failed (rather than
    /// answering with an error) is closed instead of going back to the pool.
    pub fn call<T>(
        &self,
        op: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, Failure> {
        let mut con = self.checkout()?;
        self.round_trip();
        match op(&mut con) {
            Ok(value) => {
                self.checkin(con);
                Ok(value)
            }
            Err(error) => {
                self.failed();
                match broken(&error) {
                    true => self.discard(),
                    false => self.checkin(con),
                }
                Err(Failure::node(&self.addr, error))
            }
        }
    }
}

/// True when `error` leaves the connection unusable (unread replies, a dead socket), as opposed
/// to an error reply after which the connection is in step.
fn broken(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_unrecoverable_error()
        || error.kind() == redis::ErrorKind::Parse
}
