//! `pika`: the store on any Redis-protocol server (Pika, Redis, Kvrocks, Valkey) through the
//! synchronous `redis` client.
//!
//! Only commands Pika supports are used: GET, MGET, SET (with EX), DEL, SCAN with MATCH, in
//! pipelines of `pipeline_size` commands. Connections come from a small pool bounded by
//! `max_connections`. A lost connection, a refused connect, a timeout or a server still loading
//! is retried with exponential backoff capped at `retry_max_backoff_ms`, each retry logged;
//! after `max_retries` consecutive failures (0: never) the call fails as
//! [`StoreError::Unavailable`]. Writes are idempotent (SET and DEL), so retrying a pipeline that
//! broke half-way is safe.

use crate::config::{parse_host_port, PikaConfig};
use pipeline::metrics::metrics;
use primitives::clock::unix_now_ms;
use primitives::store::{Store, StoreError, WriteBatch, WriteOp};
use redis::{
    Client, Connection, ConnectionAddr, ErrorKind, IntoConnectionInfo, RedisError, ServerErrorKind,
};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

const BACKEND: &str = "pika";
/// First retry delay; doubled per failure up to `retry_max_backoff_ms`.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Keys asked for per SCAN step.
const SCAN_COUNT: u64 = 1000;

/// Connections not in use, and how many exist in all.
struct Pool {
    idle: Vec<Connection>,
    open: usize,
}

/// A Redis-protocol server as a [`Store`].
pub struct PikaStore {
    client: Client,
    config: PikaConfig,
    pool: Mutex<Pool>,
    returned: Condvar,
}

fn is_transient(error: &RedisError) -> bool {
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
            )
        )
}

/// Escape the glob characters of a SCAN MATCH pattern.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl PikaStore {
    /// Set up the client and check the server answers (retrying as configured).
    pub fn connect(config: &PikaConfig) -> Result<Self, StoreError> {
        let (host, port) = parse_host_port(&config.addr).ok_or_else(|| StoreError::Backend {
            backend: BACKEND,
            message: format!("storage.pika.addr {:?} is not host:port", config.addr),
        })?;
        let info = ConnectionAddr::Tcp(host, port)
            .into_connection_info()
            .map_err(|e| StoreError::Backend {
                backend: BACKEND,
                message: format!("{}: {e}", config.addr),
            })?;
        let mut redis_settings = info.redis_settings().clone().set_db(config.db.into());
        if !config.password.is_empty() {
            redis_settings = redis_settings.set_password(&config.password);
        }
        // Pika does not know CLIENT SETINFO; skip the library-name handshake.
        let info = info.set_redis_settings(redis_settings.set_skip_set_lib_name());
        let client = Client::open(info).map_err(|e| StoreError::Backend {
            backend: BACKEND,
            message: format!("{}: {e}", config.addr),
        })?;
        let store = Self {
            client,
            config: config.clone(),
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        };
        store.with_retry("PING", |con| redis::cmd("PING").query::<String>(con))?;
        Ok(store)
    }

    fn new_connection(&self) -> Result<Connection, RedisError> {
        let con = self
            .client
            .get_connection_with_timeout(Duration::from_millis(self.config.connect_timeout_ms))?;
        let timeout = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        con.set_read_timeout(timeout(self.config.read_timeout_ms))?;
        con.set_write_timeout(timeout(self.config.write_timeout_ms))?;
        Ok(con)
    }

    /// Take an idle connection, open a new one under the cap, or wait for one to come back.
    fn checkout(&self) -> Result<Connection, RedisError> {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(con) = pool.idle.pop() {
                return Ok(con);
            }
            if pool.open < self.config.max_connections as usize {
                pool.open += 1;
                drop(pool);
                return self
                    .new_connection()
                    .inspect_err(|_| self.forget_connection());
            }
            pool = self
                .returned
                .wait(pool)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn checkin(&self, con: Connection) {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        pool.idle.push(con);
        self.returned.notify_one();
    }

    fn forget_connection(&self) {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        pool.open = pool.open.saturating_sub(1);
        self.returned.notify_one();
    }

    /// Run `op` on a pooled connection, retrying transient failures with capped backoff.
    fn with_retry<T>(
        &self,
        what: &str,
        op: impl FnMut(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        self.with_retry_until(what, None, op)
    }

    /// [`Self::with_retry`], giving up before any attempt that would start after
    /// `deadline_ms` (Unix milliseconds).
    fn with_retry_until<T>(
        &self,
        what: &str,
        deadline_ms: Option<u64>,
        mut op: impl FnMut(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        let mut failures: u32 = 0;
        let mut backoff = INITIAL_BACKOFF;
        let max_backoff = Duration::from_millis(self.config.retry_max_backoff_ms.max(1));
        loop {
            if deadline_ms.is_some_and(|deadline| unix_now_ms() >= deadline) {
                return Err(StoreError::DeadlinePassed { backend: BACKEND });
            }
            let result = self.checkout().and_then(|mut con| {
                metrics().store_round_trips_total.inc();
                let result = op(&mut con);
                match &result {
                    Err(e) if is_transient(e) => self.forget_connection(),
                    _ => self.checkin(con),
                }
                result
            });
            let error = match result {
                Ok(value) => {
                    metrics().store_up.set(1);
                    if failures > 0 {
                        tracing::info!(store = %self.config.addr, failures, "store reachable again");
                    }
                    return Ok(value);
                }
                Err(e) if is_transient(&e) => e,
                Err(e) => {
                    return Err(StoreError::Backend {
                        backend: BACKEND,
                        message: format!("{what} on {}: {e}", self.config.addr),
                    })
                }
            };
            failures += 1;
            metrics().store_errors_total.inc();
            metrics().store_up.set(0);
            if self.config.max_retries != 0 && failures >= self.config.max_retries {
                return Err(StoreError::Unavailable {
                    backend: BACKEND,
                    message: format!(
                        "{what} on {} failed {failures} times, last: {error}",
                        self.config.addr
                    ),
                });
            }
            tracing::warn!(
                store = %self.config.addr,
                attempt = failures,
                retry_in_ms = backoff.as_millis() as u64,
                error = %error,
                "store unreachable during {what}; retrying"
            );
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(max_backoff);
        }
    }

    fn chunk_size(&self) -> usize {
        (self.config.pipeline_size as usize).max(1)
    }
}

impl Store for PikaStore {
    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_retry("GET", |con| redis::cmd("GET").arg(key).query(con))
    }

    fn multi_get(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut values = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(self.chunk_size()) {
            let part: Vec<Option<Vec<u8>>> =
                self.with_retry("MGET", |con| redis::cmd("MGET").arg(chunk).query(con))?;
            values.extend(part);
        }
        Ok(values)
    }

    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        for chunk in batch.ops().chunks(self.chunk_size()) {
            let mut pipe = redis::pipe();
            for op in chunk {
                match op {
                    WriteOp::Set {
                        key,
                        value,
                        ttl: None,
                    } => {
                        pipe.cmd("SET").arg(key).arg(value).ignore();
                    }
                    WriteOp::Set {
                        key,
                        value,
                        ttl: Some(ttl),
                    } => {
                        let seconds = ttl.as_secs().max(1);
                        pipe.cmd("SET")
                            .arg(key)
                            .arg(value)
                            .arg("EX")
                            .arg(seconds)
                            .ignore();
                    }
                    WriteOp::Delete { key } => {
                        pipe.cmd("DEL").arg(key).ignore();
                    }
                }
            }
            self.with_retry_until("pipelined write", batch.deadline(), |con| {
                pipe.query::<()>(con)
            })?;
        }
        Ok(())
    }

    fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let reply: Option<String> = self.with_retry("SET NX", |con| {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("NX")
                .arg("EX")
                .arg(ttl.as_secs().max(1))
                .query(con)
        })?;
        Ok(reply.is_some())
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let pattern = format!("{}*", glob_escape(prefix));
        // A scan interrupted by a lost connection restarts from cursor 0: SCAN may return a key
        // twice anyway, so duplicates are removed at the end.
        self.with_retry("SCAN", |con| {
            let mut keys = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query(con)?;
                keys.extend(page);
                if next == 0 {
                    keys.sort_unstable();
                    keys.dedup();
                    return Ok(keys);
                }
                cursor = next;
            }
        })
    }
}
