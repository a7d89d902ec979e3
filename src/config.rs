//! Configuration: `config/config.toml`, overridden key by key by `EVM_EXECUTOR_*` environment
//! variables, checked before anything runs.
//!
//! Unknown keys, values of the wrong type and impossible values are errors that name the key
//! (file keys as `section.key`, environment overrides by the variable's name).

use evm::chain_data;
use pipeline::state::prewarm::PrewarmMode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "EVM_EXECUTOR_";
/// The config file used when `--config` is not given and it exists.
pub const DEFAULT_CONFIG_PATH: &str = "config/config.toml";

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A key the program does not know.
    #[error("unknown config key `{key}`")]
    UnknownKey {
        /// The key as `section.key` or the environment variable's name.
        key: String,
    },
    /// A value of the wrong type or outside what the key allows.
    #[error("invalid config value for `{key}`: {message}")]
    Invalid {
        /// The key as `section.key` or the environment variable's name.
        key: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[chain]`
    pub chain: ChainConfig,
    /// `[storage]`
    pub storage: StorageConfig,
    /// `[cache]`
    pub cache: CacheConfig,
    /// `[executor]`
    pub executor: ExecutorConfig,
    /// `[state]`
    pub state: StateConfig,
    /// `[workers]`
    pub workers: WorkersConfig,
    /// `[metrics]`
    pub metrics: MetricsConfig,
    /// `[log]`
    pub log: LogConfig,
    /// `[leader]`
    pub leader: LeaderConfig,
}

/// `[leader]`: the leader lease between replicas sharing one store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaderConfig {
    /// Take the lease before executing (one replica executes at a time).
    pub enabled: bool,
    /// Lease lifetime in seconds: a dead leader is replaced within about this long.
    pub lease_seconds: u64,
}

impl Default for LeaderConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            lease_seconds: 15,
        }
    }
}

impl LeaderConfig {
    /// The lease lifetime.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }
}

/// `[chain]`: which chain the executor serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainConfig {
    /// `bsc`, `chapel`, `mainnet`, `sepolia`, `holesky`, `hoodi` or `custom`.
    pub name: String,
    /// EIP-155 chain id; 0 for the one the name implies.
    pub network_id: u64,
    /// The chain data (`hardforks.json`, `systemcontracts/`) of a custom Parlia chain; empty
    /// when there is none (the built-in chains carry their own).
    pub data_dir: PathBuf,
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            name: "bsc".into(),
            network_id: 0,
            data_dir: PathBuf::new(),
        }
    }
}

impl ChainConfig {
    /// The chain id this config requires, or `None` when any is accepted (`custom` without id).
    pub fn expected_chain_id(&self) -> Option<u64> {
        if self.network_id != 0 {
            return Some(self.network_id);
        }
        chain_data::built_in(&self.name).map(|chain| chain.chain_id)
    }
}

/// Which store backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A local on-disk store (redb).
    Embedded,
    /// A Redis-protocol server (Pika, Redis, Kvrocks, Valkey).
    Pika,
}

/// `[storage]`: where state and blocks live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// The backend.
    pub backend: Backend,
    /// Prepended to every key.
    pub key_prefix: String,
    /// `[storage.embedded]`
    pub embedded: EmbeddedConfig,
    /// `[storage.pika]`
    pub pika: PikaConfig,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Embedded,
            key_prefix: String::new(),
            embedded: EmbeddedConfig::default(),
            pika: PikaConfig::default(),
        }
    }
}

/// `[storage.embedded]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedConfig {
    /// The database file.
    pub path: PathBuf,
    /// The longest time between durable (fsynced) commits, milliseconds; 0 makes every
    /// commit durable. A crash loses at most this much progress, redone on restart.
    pub sync_interval_ms: u64,
    /// MiB of memory for redb's page cache and write buffer.
    pub cache_mb: u64,
}

impl EmbeddedConfig {
    /// `sync_interval_ms` as a duration.
    pub fn sync_interval(&self) -> Duration {
        Duration::from_millis(self.sync_interval_ms)
    }

    /// `cache_mb` in bytes.
    pub fn cache_bytes(&self) -> usize {
        usize::try_from(self.cache_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/evm-executor.redb"),
            sync_interval_ms: crate::store::embedded::DEFAULT_SYNC_INTERVAL.as_millis() as u64,
            cache_mb: (crate::store::embedded::DEFAULT_CACHE_BYTES >> 20) as u64,
        }
    }
}

/// `[storage.pika]`: a Redis-protocol server, or a Redis Cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PikaConfig {
    /// `host:port`; with `cluster`, one or more seed nodes as `host:port,host:port,...`.
    pub addr: String,
    /// Speak the Redis Cluster protocol (slot map, MOVED/ASK) to the nodes of a cluster.
    pub cluster: bool,
    /// ACL user; empty for the default user (AUTH with the password alone).
    pub username: String,
    /// AUTH password; empty for none. Never logged.
    pub password: Password,
    /// Logical database (SELECT); a cluster has database 0 only.
    pub db: u32,
    /// Connect over TLS.
    pub tls: bool,
    /// PEM file of the CA certificates that sign the servers' certificates; empty for the
    /// system's trusted roots.
    pub tls_ca_file: PathBuf,
    /// PEM file of the client certificate presented to the servers; empty for none.
    pub tls_cert_file: PathBuf,
    /// PEM file of the client certificate's private key (with `tls_cert_file`).
    pub tls_key_file: PathBuf,
    /// Most pooled connections (per node on a cluster).
    pub max_connections: u32,
    /// Commands per pipelined round trip.
    pub pipeline_size: u32,
    /// TCP connect timeout, milliseconds.
    pub connect_timeout_ms: u64,
    /// Socket read timeout, milliseconds.
    pub read_timeout_ms: u64,
    /// Socket write timeout, milliseconds.
    pub write_timeout_ms: u64,
    /// Cap of the retry backoff, milliseconds.
    pub retry_max_backoff_ms: u64,
    /// Consecutive failed attempts before giving up; 0 for never.
    pub max_retries: u32,
}

impl Default for PikaConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:9221".into(),
            cluster: false,
            username: String::new(),
            password: Password::default(),
            db: 0,
            tls: false,
            tls_ca_file: PathBuf::new(),
            tls_cert_file: PathBuf::new(),
            tls_key_file: PathBuf::new(),
            max_connections: 16,
            pipeline_size: 1000,
            connect_timeout_ms: 5000,
            read_timeout_ms: 30_000,
            write_timeout_ms: 30_000,
            retry_max_backoff_ms: 10_000,
            max_retries: 0,
        }
    }
}

/// A password: read, compared and written as its text, never shown by `Debug` (so no log line
/// or error that prints a config carries it).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// The password itself, for AUTH.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no password is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.is_empty() {
            true => f.write_str("\"\""),
            false => f.write_str("<redacted>"),
        }
    }
}

impl PikaConfig {
    /// The `host:port` pairs of `addr`: one, or with `cluster` one or more seed nodes.
    pub fn nodes(&self) -> Result<Vec<(String, u16)>, ConfigError> {
        let key = "storage.pika.addr";
        let parts: Vec<&str> = self.addr.split(',').map(str::trim).collect();
        if parts.len() > 1 && !self.cluster {
            return Err(invalid(
                key,
                format!(
                    "{:?} lists several nodes, which needs storage.pika.cluster = true",
                    self.addr
                ),
            ));
        }
        parts
            .iter()
            .map(|part| {
                parse_host_port(part)
                    .ok_or_else(|| invalid(key, format!("{part:?} is not host:port")))
            })
            .collect()
    }

    /// Reject settings no connection could use.
    fn validate(&self) -> Result<(), ConfigError> {
        self.nodes()?;
        if self.cluster && self.db != 0 {
            return Err(invalid(
                "storage.pika.db",
                "a Redis Cluster has database 0 only (storage.pika.cluster = true)",
            ));
        }
        if !self.username.is_empty() && self.password.is_empty() {
            return Err(invalid(
                "storage.pika.password",
                "must be set with storage.pika.username (AUTH takes both)",
            ));
        }
        let files = [
            ("storage.pika.tls_ca_file", &self.tls_ca_file),
            ("storage.pika.tls_cert_file", &self.tls_cert_file),
            ("storage.pika.tls_key_file", &self.tls_key_file),
        ];
        if let Some((key, _)) = files
            .iter()
            .find(|(_, path)| !self.tls && !path.as_os_str().is_empty())
        {
            return Err(invalid(key, "needs storage.pika.tls = true"));
        }
        if self.tls_cert_file.as_os_str().is_empty() != self.tls_key_file.as_os_str().is_empty() {
            return Err(invalid(
                "storage.pika.tls_key_file",
                "storage.pika.tls_cert_file and storage.pika.tls_key_file go together",
            ));
        }
        Ok(())
    }
}

/// `[cache]`: LRU sizes of the execution state cache, in entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Accounts.
    pub accounts: u64,
    /// Storage slots.
    pub storage_slots: u64,
    /// Contract codes.
    pub code: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            accounts: 1_000_000,
            storage_slots: 10_000_000,
            code: 10_000,
        }
    }
}

/// `[executor]`: how blocks are fetched and executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// Blocks read per batch, and the most blocks a stage writes in one batch.
    pub batch_size: u64,
    /// Poll interval of the syncer's progress when caught up, milliseconds.
    pub poll_interval_ms: u64,
    /// Log every transaction's outcome (hash, sender, recipient, status, gas, logs).
    pub evm_debug: bool,
    /// How execution learns ahead what each block reads.
    pub prewarm: PrewarmConfig,
}

/// `executor.prewarm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrewarmConfig {
    /// `speculate` on a server backend (`pika`), `known` on the embedded store.
    Auto,
    /// Run each waiting block speculatively to learn every key it reads.
    Speculate,
    /// Only the keys known without running the block (senders, recipients, access lists,
    /// coinbase, system contracts).
    Known,
}

impl ExecutorConfig {
    /// The execution stage's prewarming on `backend`.
    pub fn prewarm_mode(&self, backend: Backend) -> PrewarmMode {
        match (self.prewarm, backend) {
            (PrewarmConfig::Speculate, _) | (PrewarmConfig::Auto, Backend::Pika) => {
                PrewarmMode::Speculate
            }
            (PrewarmConfig::Known, _) | (PrewarmConfig::Auto, Backend::Embedded) => {
                PrewarmMode::KnownKeys
            }
        }
    }
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            poll_interval_ms: 20,
            evm_debug: false,
            prewarm: PrewarmConfig::Auto,
        }
    }
}

/// `[state]`: the history window and the state root check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Blocks of history kept.
    pub window_size: u64,
    /// TTL of history keys, seconds.
    pub history_ttl: u64,
    /// When the merkle stage checks the state root against the header.
    pub verify_root: VerifyRootConfig,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            window_size: 1024,
            history_ttl: 3600,
            verify_root: VerifyRootConfig::Batch,
        }
    }
}

/// `state.verify_root`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyRootConfig {
    /// Every block on its own.
    Every,
    /// Once per batch while catching up (the last block of each batch; the first bad block
    /// found by bisection), every block at the head.
    Batch,
    /// Never: no state tries are kept and the state is not verified.
    Off,
}

impl VerifyRootConfig {
    /// The merkle stage's setting.
    pub fn stage_setting(self) -> pipeline::stages::merkle::VerifyRoot {
        use pipeline::stages::merkle::VerifyRoot;
        match self {
            VerifyRootConfig::Every => VerifyRoot::Every,
            VerifyRootConfig::Batch => VerifyRoot::Batch,
            VerifyRootConfig::Off => VerifyRoot::Off,
        }
    }
}

impl StateConfig {
    /// The history TTL as a duration.
    pub fn history_ttl(&self) -> Duration {
        Duration::from_secs(self.history_ttl)
    }
}

/// `[workers]`: thread pools and queues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    /// Sender-recovery threads; 0 for every core.
    pub sender_recovery: u32,
    /// Capacity of each inter-stage channel, in blocks.
    pub queue_capacity: u32,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            sender_recovery: 0,
            queue_capacity: 64,
        }
    }
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics`, `/health` and `/ready`.
    pub enabled: bool,
    /// Listen address.
    pub listen_addr: String,
    /// `/ready` is false while the leader lags the syncer by more blocks than this.
    pub ready_max_lag: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen_addr: "0.0.0.0:9091".into(),
            ready_max_lag: 1000,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// Text or JSON lines.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

impl Config {
    /// Load the config: `path` if given (it must exist), else [`DEFAULT_CONFIG_PATH`] if it
    /// exists, else the built-in defaults; then apply `EVM_EXECUTOR_*` overrides from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = match path {
            Some(path) => Some((path.to_path_buf(), read(path)?)),
            None => {
                let default = Path::new(DEFAULT_CONFIG_PATH);
                match default.exists() {
                    true => Some((default.to_path_buf(), read(default)?)),
                    false => None,
                }
            }
        };
        let mut table = match text {
            Some((path, text)) => {
                toml::from_str::<toml::Table>(&text).map_err(|e| ConfigError::Syntax {
                    path,
                    message: e.message().to_string(),
                })?
            }
            None => toml::Table::new(),
        };
        let defaults = default_table();
        check_against_schema(&table, &defaults, "")?;
        apply_env(&mut table, &defaults, env)?;
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid("config", e.message()))?;
        config.validate()?;
        Ok(config)
    }

    /// Reject values no run could use.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let chain = &self.chain;
        let built_in = chain_data::built_in(&chain.name);
        if chain.name != "custom" && built_in.is_none() {
            let names: Vec<_> = chain_data::BUILT_IN_CHAINS
                .iter()
                .map(|chain| chain.name)
                .collect();
            return Err(invalid(
                "chain.name",
                format!(
                    "{:?} is not one of {}, custom",
                    chain.name,
                    names.join(", ")
                ),
            ));
        }
        if let Some(known) = built_in {
            if chain.network_id != 0 && chain.network_id != known.chain_id {
                return Err(invalid(
                    "chain.network_id",
                    format!(
                        "{} contradicts chain.name {:?} (chain id {}); set chain.network_id = 0{}",
                        chain.network_id,
                        chain.name,
                        known.chain_id,
                        chain_data::built_in_with_id(chain.network_id).map_or_else(
                            || " or chain.name = \"custom\"".to_string(),
                            |other| format!(" or chain.name = {:?}", other.name)
                        )
                    ),
                ));
            }
        }
        let pika = &self.storage.pika;
        if self.storage.backend == Backend::Pika {
            pika.validate()?;
        }
        let positive: [(&str, u64); 9] = [
            ("storage.pika.max_connections", pika.max_connections.into()),
            ("storage.pika.pipeline_size", pika.pipeline_size.into()),
            ("storage.pika.connect_timeout_ms", pika.connect_timeout_ms),
            ("executor.batch_size", self.executor.batch_size),
            ("executor.poll_interval_ms", self.executor.poll_interval_ms),
            ("state.window_size", self.state.window_size),
            ("state.history_ttl", self.state.history_ttl),
            ("workers.queue_capacity", self.workers.queue_capacity.into()),
            ("leader.lease_seconds", self.leader.lease_seconds),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(invalid(key, "must be greater than 0"));
        }
        if self.storage.backend == Backend::Embedded
            && self.storage.embedded.path.as_os_str().is_empty()
        {
            return Err(invalid("storage.embedded.path", "must not be empty"));
        }
        if self.metrics.enabled && self.metrics.listen_addr.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "metrics.listen_addr",
                format!("{:?} is not an ip:port address", self.metrics.listen_addr),
            ));
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&self.log.level.as_str()) {
            return Err(invalid(
                "log.level",
                format!(
                    "{:?} is not one of error, warn, info, debug, trace",
                    self.log.level
                ),
            ));
        }
        Ok(())
    }
}

/// Split `host:port`, or `None` when it is not of that form.
pub fn parse_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some(())?;
    Some((host.to_string(), port.parse().ok()?))
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn default_table() -> toml::Table {
    // The defaults are plain data of strings, integers and booleans: always representable.
    toml::Table::try_from(Config::default()).unwrap_or_default()
}

fn type_name(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// Every key in `table` must exist in `schema` with a value of the same type.
fn check_against_schema(
    table: &toml::Table,
    schema: &toml::Table,
    parent: &str,
) -> Result<(), ConfigError> {
    for (key, value) in table {
        let path = if parent.is_empty() {
            key.clone()
        } else {
            format!("{parent}.{key}")
        };
        let expected = schema
            .get(key)
            .ok_or(ConfigError::UnknownKey { key: path.clone() })?;
        match (value, expected) {
            (toml::Value::Table(inner), toml::Value::Table(inner_schema)) => {
                check_against_schema(inner, inner_schema, &path)?
            }
            _ if std::mem::discriminant(value) == std::mem::discriminant(expected) => {}
            _ => {
                return Err(invalid(
                    &path,
                    format!(
                        "expected {}, found {}",
                        type_name(expected),
                        type_name(value)
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// The dotted path and default value of every leaf key, by its environment variable name.
fn env_names(schema: &toml::Table) -> BTreeMap<String, (Vec<String>, toml::Value)> {
    fn walk(
        table: &toml::Table,
        path: &mut Vec<String>,
        out: &mut BTreeMap<String, (Vec<String>, toml::Value)>,
    ) {
        for (key, value) in table {
            path.push(key.clone());
            match value {
                toml::Value::Table(inner) => walk(inner, path, out),
                leaf => {
                    let name = format!("{ENV_PREFIX}{}", path.join("_").to_uppercase());
                    out.insert(name, (path.clone(), leaf.clone()));
                }
            }
            path.pop();
        }
    }
    let mut out = BTreeMap::new();
    walk(schema, &mut Vec::new(), &mut out);
    out
}

/// Environment variables with the prefix that are not config keys: the config file path, and
/// the fixtures directory the test suite reads.
const ENV_NOT_KEYS: &[&str] = &["EVM_EXECUTOR_CONFIG", "EVM_EXECUTOR_FIXTURES"];

fn apply_env(
    table: &mut toml::Table,
    schema: &toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let names = env_names(schema);
    for (name, raw) in env {
        if !name.starts_with(ENV_PREFIX) || ENV_NOT_KEYS.contains(&name.as_str()) {
            continue;
        }
        let (path, default) = names
            .get(&name)
            .ok_or(ConfigError::UnknownKey { key: name.clone() })?;
        let value = match default {
            toml::Value::Integer(_) => raw
                .trim()
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| invalid(&name, format!("expected an integer, found {raw:?}")))?,
            toml::Value::Boolean(_) => match raw.trim() {
                "true" | "1" => toml::Value::Boolean(true),
                "false" | "0" => toml::Value::Boolean(false),
                _ => {
                    return Err(invalid(
                        &name,
                        format!("expected true or false, found {raw:?}"),
                    ))
                }
            },
            _ => toml::Value::String(raw),
        };
        let (leaf, sections) = path
            .split_last()
            .ok_or(ConfigError::UnknownKey { key: name.clone() })?;
        let mut cursor = &mut *table;
        for section in sections {
            let entry = cursor
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            cursor = entry
                .as_table_mut()
                .ok_or_else(|| invalid(section, "expected a table"))?;
        }
        cursor.insert(leaf.clone(), value);
    }
    Ok(())
}
