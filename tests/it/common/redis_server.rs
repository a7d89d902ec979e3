//! A real `redis-server` process per test: on a free port, with its data in a temp dir, so a
//! test can stop it, restart it on the same port and data, and read back every key. Extra
//! arguments ([`ServerOptions`]) make it a cluster node or a TLS-only server.

use redis::{Connection, ConnectionAddr, FromRedisValue, IntoConnectionInfo};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long a started server has to answer PING, and a stopped one to exit.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two readiness polls.
const POLL: Duration = Duration::from_millis(50);
/// The server's program name, looked up on PATH.
const REDIS_SERVER: &str = "redis-server";

/// A port on 127.0.0.1 nobody listens on at the moment of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// How a server is started beyond the defaults (kept for restarts).
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// More command-line arguments.
    pub args: Vec<String>,
    /// Serve TLS only on the port (`args` give `--tls-cert-file` and the rest); the harness
    /// itself talks to the server over a Unix socket in its directory.
    pub tls_only: bool,
}

/// The name of a TLS-only server's Unix socket in its directory.
const ADMIN_SOCKET: &str = "redis.sock";

/// A `redis-server` child process with append-only persistence in its own temp dir.
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
    options: ServerOptions,
}

impl RedisServer {
    /// Start a server on a free port and wait until it answers PING.
    pub fn start() -> Self {
        Self::start_with(ServerOptions::default())
    }

    /// [`RedisServer::start`] with `options`.
    pub fn start_with(options: ServerOptions) -> Self {
        let found = Command::new(REDIS_SERVER)
            .arg("--version")
            .stdout(Stdio::null())
            .status();
        if let Err(error) = found {
            panic!(
                "cannot run `{REDIS_SERVER}` ({error}): the integration tests need a real \
                 redis-server on PATH; run `make test`, which installs it"
            );
        }
        let mut server = Self {
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir for redis"),
            child: None,
            options,
        };
        server.spawn();
        server
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Run `cmd` on the server (as the default user) and return its reply; panics on an error.
    pub fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        let mut con = self.connect().expect("connect to redis-server");
        cmd.query(&mut con)
            .unwrap_or_else(|e| panic!("{cmd:?} on port {}: {e}", self.port))
    }

    /// The values at `keys` by pipelined GETs (which, unlike MGET, a cluster node answers for
    /// keys of different slots).
    pub fn values(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        self.per_key("GET", keys)
    }

    /// The replies to `command key` for each of `keys`, pipelined 1000 at a time.
    fn per_key<T: FromRedisValue>(&self, command: &str, keys: &[String]) -> Vec<T> {
        let mut con = self.connect().expect("connect to redis-server");
        let mut replies = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(1000) {
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.cmd(command).arg(key);
            }
            let page: Vec<T> = pipe.query(&mut con).expect(command);
            replies.extend(page);
        }
        replies
    }

    /// Stop the server (SHUTDOWN, then kill if it lingers); its data stays in the temp dir.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(mut con) = self.connect() {
            // The server closes the connection instead of replying: the error is expected.
            let _ = redis::cmd("SHUTDOWN").query::<()>(&mut con);
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if child.try_wait().expect("poll redis-server").is_some() {
                return;
            }
            std::thread::sleep(POLL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stop and start again on the same port and data directory; the data survives.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Start a [`stop`](Self::stop)ped server again on the same port and data directory.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "redis-server is still running");
        self.spawn();
    }

    /// Set every `(key, value)` in one MSET (atomic: a reader sees all of them or none).
    pub fn set_many(&self, entries: &[(String, Vec<u8>)]) {
        let mut con = self.connect().expect("connect to redis-server");
        let mut mset = redis::cmd("MSET");
        for (key, value) in entries {
            mset.arg(key).arg(value.as_slice());
        }
        mset.query::<()>(&mut con).expect("MSET");
    }

    /// Delete `keys` in one DEL.
    pub fn delete(&self, keys: &[String]) {
        let mut con = self.connect().expect("connect to redis-server");
        redis::cmd("DEL")
            .arg(keys)
            .query::<u64>(&mut con)
            .expect("DEL");
    }

    /// Every key in the server (via SCAN).
    pub fn keys(&self) -> BTreeSet<String> {
        let mut con = self.connect().expect("connect to redis-server");
        let mut keys = BTreeSet::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("COUNT")
                .arg(1000)
                .query(&mut con)
                .expect("SCAN");
            keys.extend(page);
            if next == 0 {
                return keys;
            }
            cursor = next;
        }
    }

    /// Every key with its value, read over one connection.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        let keys: Vec<String> = self.keys().into_iter().collect();
        let mut con = self.connect().expect("connect to redis-server");
        let mut snapshot = BTreeMap::new();
        for chunk in keys.chunks(1000) {
            let values: Vec<Option<Vec<u8>>> =
                redis::cmd("MGET").arg(chunk).query(&mut con).expect("MGET");
            for (key, value) in chunk.iter().zip(values) {
                if let Some(value) = value {
                    snapshot.insert(key.clone(), value);
                }
            }
        }
        snapshot
    }

    /// The value at `key`, if any.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut con = self.connect().expect("connect to redis-server");
        redis::cmd("GET").arg(key).query(&mut con).expect("GET")
    }

    /// The remaining time to live of each key in seconds, as `TTL` answers: -1 for a key
    /// without expiry, -2 for a missing key.
    pub fn ttls(&self, keys: &[String]) -> Vec<i64> {
        self.per_key("TTL", keys)
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join("redis.log")
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open redis log");
        let log_err = log.try_clone().expect("clone redis log handle");
        let port = self.port.to_string();
        let listen = match self.options.tls_only {
            false => vec!["--port", &port],
            true => vec![
                "--port",
                "0",
                "--tls-port",
                &port,
                "--unixsocket",
                ADMIN_SOCKET,
            ],
        };
        let child = Command::new(REDIS_SERVER)
            .args(listen)
            .args(["--bind", "127.0.0.1", "--dir"])
            .arg(self.dir.path())
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .args(&self.options.args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        self.wait_until_ready();
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("server was spawned");
            if let Some(status) = child.try_wait().expect("poll redis-server") {
                panic!(
                    "redis-server on port {} exited with {status} before answering PING; its \
                     log:\n{}",
                    self.port,
                    self.log()
                );
            }
            let pong = self
                .connect()
                .and_then(|mut con| redis::cmd("PING").query::<String>(&mut con));
            if pong.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING within {READY_TIMEOUT:?}; its \
                 log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn connect(&self) -> redis::RedisResult<Connection> {
        let addr = match self.options.tls_only {
            false => ConnectionAddr::Tcp("127.0.0.1".into(), self.port),
            true => ConnectionAddr::Unix(self.dir.path().join(ADMIN_SOCKET)),
        };
        let info = addr.into_connection_info()?;
        // redis-server 7.0 does not know CLIENT SETINFO.
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        let client = redis::Client::open(info.set_redis_settings(settings))?;
        client.get_connection_with_timeout(Duration::from_secs(2))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
