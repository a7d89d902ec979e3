//! The deployment files under `deployments/` checked against the program they deploy: every
//! metric the Grafana dashboard queries is one the running daemon exports (scraped from the
//! real binary, which must also report the executed chain's heights, transactions and gas
//! exactly); `/ready` follows the store going away and coming back; every `EVM_EXECUTOR_*`
//! variable the files set is a config key the binary accepts with that value; the ConfigMap's
//! `config.toml` loads; ports, probes, mounts, images and names agree across Dockerfile,
//! compose file, Prometheus, Grafana provisioning and Kubernetes manifests.
//!
//! No YAML crate is available, so the YAML files are read by [`Yaml`], a small reader of the
//! block-style subset the files use (mappings, lists, plain and quoted scalars, `|` blocks) that
//! fails loudly on anything else. No HTTP client crate either: [`http_get`] speaks HTTP/1.0 over
//! a `TcpStream`.

use crate::common::chain::{raw_blocks, write_file, ChainFixture, HEADER_GAS_USED_INDEX};
use crate::common::daemon::{init_and_import, Daemon};
use crate::common::redis_server::{free_port, RedisServer};
use crate::common::{var, Backend};
use evm_executor::config::{Backend as StorageBackend, Config, LogFormat};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The prefix of every metric the executor exports.
const METRIC_PREFIX: &str = "evm_executor_";
/// The prefix of the configuration's environment overrides.
const ENV_PREFIX: &str = "EVM_EXECUTOR_";
/// The metrics the original Go service documents (without [`METRIC_PREFIX`]); dashboards and
/// alerts written for it must keep working.
const DOCUMENTED_METRICS: &[&str] = &[
    "execution_height",
    "execution_lag",
    "txs_executed_total",
    "gas_used_total",
    "state_accounts_cached",
    "state_cache_hit_rate",
    "state_commit_latency_seconds",
    "worker_pool_active_workers",
    "worker_pool_queue_length",
];
/// What the dashboard must show (series names as PromQL references them).
const DASHBOARD_METRICS: &[&str] = &[
    "evm_executor_execution_height",
    "evm_executor_sync_height",
    "evm_executor_execution_lag",
    "evm_executor_txs_executed_total",
    "evm_executor_gas_used_total",
    "evm_executor_gas_per_second",
    "evm_executor_state_cache_hit_rate",
    "evm_executor_cache_hits_total",
    "evm_executor_cache_misses_total",
    "evm_executor_state_accounts_cached",
    "evm_executor_state_commit_latency_seconds_bucket",
    "evm_executor_stage_blocks_total",
    "evm_executor_stage_checkpoint",
    "evm_executor_worker_pool_queue_length",
    "evm_executor_block_execution_seconds_bucket",
    "evm_executor_store_errors_total",
    "evm_executor_store_up",
    "evm_executor_invalid_blocks_total",
    "evm_executor_reorgs_total",
    "evm_executor_unwind_depth",
    "evm_executor_pruned_blocks_total",
    "evm_executor_leader",
    "evm_executor_worker_pool_active_workers",
    "evm_executor_stage_duration_seconds_bucket",
    "evm_executor_stage_wait_seconds_total",
    "evm_executor_head_latency_seconds_bucket",
    "evm_executor_state_verified",
    "evm_executor_execution_round_trips_per_block_bucket",
    "evm_executor_store_round_trips_total",
    "evm_executor_store_node_round_trips_total",
    "evm_executor_store_node_errors_total",
];
/// Histogram series suffixes: a histogram family `x` is selected as `x_bucket`, `x_sum` or
/// `x_count`.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];
/// The metrics port every file must agree on.
const METRICS_PORT: u16 = 9091;
/// Pika's port.
const PIKA_PORT: u16 = 9221;
/// Grafana's port.
const GRAFANA_PORT: u16 = 3000;
/// Prometheus' port.
const PROMETHEUS_PORT: u16 = 9090;
/// The longest the daemon may take to execute a test chain.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest the daemon may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two polls of an HTTP endpoint.
const HTTP_POLL: Duration = Duration::from_millis(100);

// ---- files ----------------------------------------------------------------------------------

/// The repository root.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `deployments/<rel>`.
fn deployment_path(rel: &str) -> PathBuf {
    repo().join("deployments").join(rel)
}

/// The text of `deployments/<rel>`.
fn deployment_file(rel: &str) -> String {
    let path = deployment_path(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `deployments/<rel>` read as YAML.
fn deployment_yaml(rel: &str) -> Yaml {
    Yaml::parse(&deployment_file(rel), rel)
}

/// `deployments/grafana/dashboard.json`.
fn dashboard() -> serde_json::Value {
    serde_json::from_str(&deployment_file("grafana/dashboard.json"))
        .unwrap_or_else(|e| panic!("grafana/dashboard.json is not JSON: {e}"))
}

/// The metric families `stages/pipeline/src/metrics.rs` defines: one per field of its
/// `Metrics` struct but the registry, each field named as its metric without [`METRIC_PREFIX`].
fn defined_metrics() -> BTreeSet<String> {
    let path = repo().join("stages/pipeline/src/metrics.rs");
    let source = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let (_, body) = source
        .split_once("pub struct Metrics {")
        .expect("metrics.rs defines `pub struct Metrics {`");
    let (fields, _) = body.split_once("\n}").expect("the end of `struct Metrics`");
    let names: BTreeSet<String> = fields
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub "))
        .map(|field| {
            let (name, _) = field
                .split_once(':')
                .unwrap_or_else(|| panic!("a field of `struct Metrics`: {field:?}"));
            name.to_string()
        })
        .filter(|name| name != "registry")
        .map(|name| format!("{METRIC_PREFIX}{name}"))
        .collect();
    assert!(
        !names.is_empty(),
        "`struct Metrics` in metrics.rs has no fields"
    );
    names
}

/// `path` with `.` and `..` components resolved lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                assert!(out.pop(), "{} leaves the root", path.display());
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

// ---- a reader of the YAML the deployment files use -----------------------------------------

/// A YAML document flattened to `(path, scalar)` pairs: mapping keys joined with `.`, list items
/// as `[i]` (`spec.template.spec.containers[0].env[1].name`). A key with nothing after its colon
/// is recorded with an empty value (and its children under it).
///
/// It reads the block style only: mappings, `- ` lists (of scalars or of mappings), plain,
/// single- and double-quoted scalars, `|`/`|-` literal blocks, `#` comments, and the flow forms
/// `{}` and `[]` as literal values. Anything else (tabs, anchors, flow collections with content,
/// several documents, a duplicate key, a line that is neither) panics, naming file and line, so
/// a file that needs more than this reader understands fails the test instead of being misread.
#[derive(Debug)]
struct Yaml {
    what: String,
    entries: BTreeMap<String, String>,
    /// The keys of each mapping, by the mapping's path (keys may contain dots).
    keys: BTreeMap<String, Vec<String>>,
}

/// Where the reader is, to name in a refusal.
struct At<'a> {
    what: &'a str,
    number: usize,
    line: &'a str,
}

impl At<'_> {
    fn fail(&self, why: &str) -> ! {
        panic!("{}:{}: {why}: {:?}", self.what, self.number, self.line)
    }
}

impl Yaml {
    fn parse(text: &str, what: &str) -> Self {
        let mut yaml = Self {
            what: what.to_string(),
            entries: BTreeMap::new(),
            keys: BTreeMap::new(),
        };
        // Open mappings and list items: (indent of their content, path).
        let mut stack: Vec<(usize, String)> = Vec::new();
        let mut next_index: BTreeMap<String, usize> = BTreeMap::new();
        let lines: Vec<&str> = text.lines().collect();
        let mut at = 0;
        while at < lines.len() {
            let number = at + 1;
            let line = lines[at].trim_end();
            at += 1;
            let here = At { what, number, line };
            if line.contains('\t') {
                here.fail("tab in indentation or value");
            }
            let content = line.trim_start();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            if content.starts_with("---") || content.starts_with("...") {
                here.fail("several documents are not supported");
            }
            let mut indent = line.len() - content.len();
            let mut content = content;
            // `- ` opens a list item; its content sits two columns further in.
            while content == "-" || content.starts_with("- ") {
                stack.retain(|(open, _)| *open < indent);
                let parent = stack
                    .last()
                    .map(|(_, path)| path.clone())
                    .unwrap_or_default();
                let index = next_index.entry(parent.clone()).or_insert(0);
                let path = format!("{parent}[{index}]");
                *index += 1;
                stack.push((indent, path));
                content = content[1..].trim_start();
                indent += 2;
                if content.is_empty() {
                    break;
                }
            }
            if content.is_empty() {
                continue;
            }
            let Some((key, value)) = split_mapping_entry(content) else {
                // A scalar list item.
                let Some((open, path)) = stack.last() else {
                    here.fail("a scalar outside any mapping or list");
                };
                if *open + 2 != indent || !path.ends_with(']') {
                    here.fail("a scalar that is not a list item");
                }
                let path = path.clone();
                yaml.insert(path, scalar(content, &here), &here);
                continue;
            };
            stack.retain(|(open, _)| *open < indent);
            let parent = stack
                .last()
                .map(|(_, path)| path.clone())
                .unwrap_or_default();
            let path = match parent.is_empty() {
                true => key.to_string(),
                false => format!("{parent}.{key}"),
            };
            yaml.keys.entry(parent).or_default().push(key.to_string());
            match value {
                "" => {
                    yaml.insert(path.clone(), String::new(), &here);
                    stack.push((indent + 1, path));
                }
                "|" | "|-" => {
                    let mut block = Vec::new();
                    let mut block_indent = None;
                    while at < lines.len() {
                        let next = lines[at].trim_end();
                        let next_content = next.trim_start();
                        let next_indent = next.len() - next_content.len();
                        if !next_content.is_empty() && next_indent <= indent {
                            break;
                        }
                        at += 1;
                        if next_content.is_empty() {
                            block.push("");
                            continue;
                        }
                        let block_indent = *block_indent.get_or_insert(next_indent);
                        if next_indent < block_indent {
                            panic!(
                                "{what}:{at}: a literal block line indented less than its first"
                            );
                        }
                        block.push(&next[block_indent..]);
                    }
                    while block.last() == Some(&"") {
                        block.pop();
                    }
                    let mut text = block.join("\n");
                    if value == "|" {
                        text.push('\n');
                    }
                    yaml.insert(path, text, &here);
                }
                _ => yaml.insert(path, scalar(value, &here), &here),
            }
        }
        yaml
    }

    fn insert(&mut self, path: String, value: String, here: &At<'_>) {
        if self.entries.insert(path, value).is_some() {
            here.fail("duplicate key");
        }
    }

    /// The scalar at `path`, if any.
    fn opt(&self, path: &str) -> Option<&str> {
        self.entries.get(path).map(String::as_str)
    }

    /// The scalar at `path`; panics, listing the paths the file has, when it is absent.
    fn get(&self, path: &str) -> &str {
        self.opt(path).unwrap_or_else(|| {
            panic!(
                "{}: no {path}; the file has:\n{}",
                self.what,
                self.entries.keys().cloned().collect::<Vec<_>>().join("\n")
            )
        })
    }

    /// How many items the list at `path` has.
    fn len(&self, path: &str) -> usize {
        (0..)
            .take_while(|i| {
                let item = format!("{path}[{i}]");
                self.entries
                    .keys()
                    .any(|key| key == &item || key.starts_with(&format!("{item}.")))
            })
            .count()
    }

    /// The scalar items of the list at `path`.
    fn list(&self, path: &str) -> Vec<&str> {
        (0..self.len(path))
            .map(|i| self.get(&format!("{path}[{i}]")))
            .collect()
    }

    /// The path of the item of the list at `path` whose `field` is `value`.
    fn item_where(&self, path: &str, field: &str, value: &str) -> String {
        (0..self.len(path))
            .map(|i| format!("{path}[{i}]"))
            .find(|item| self.opt(&format!("{item}.{field}")) == Some(value))
            .unwrap_or_else(|| panic!("{}: no item of {path} has {field} = {value}", self.what))
    }

    /// The keys of the mapping at `path` (`""` for the top level), in file order.
    fn keys(&self, path: &str) -> Vec<&str> {
        self.keys
            .get(path)
            .map(|keys| keys.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The scalars directly under the mapping at `path`, by key.
    fn mapping(&self, path: &str) -> BTreeMap<&str, &str> {
        self.keys(path)
            .into_iter()
            .map(|key| (key, self.get(&format!("{path}.{key}"))))
            .collect()
    }
}

/// `key: value` (value possibly empty) split at the first `: ` or a trailing `:` outside
/// quotes; `None` for a line without one.
fn split_mapping_entry(content: &str) -> Option<(&str, &str)> {
    if content.starts_with(['"', '\'']) {
        return None;
    }
    let (key, value) = match content.split_once(": ") {
        Some((key, value)) => (key, value.trim()),
        None => (content.strip_suffix(':')?, ""),
    };
    (!key.is_empty() && !key.contains(' ')).then_some((key, value))
}

/// A scalar's value: quotes removed, a trailing ` # comment` of a plain scalar dropped.
/// Anchors, aliases, tags and flow collections with content are refused.
fn scalar(raw: &str, here: &At<'_>) -> String {
    let raw = raw.trim();
    for quote in ['"', '\''] {
        if let Some(rest) = raw.strip_prefix(quote) {
            let Some(end) = rest.find(quote) else {
                here.fail("unterminated quoted scalar");
            };
            let after = rest[end + 1..].trim();
            if !(after.is_empty() || after.starts_with('#')) {
                here.fail("text after a quoted scalar");
            }
            if quote == '"' && rest[..end].contains('\\') {
                here.fail("escapes in double-quoted scalars are not supported");
            }
            return rest[..end].to_string();
        }
    }
    let plain = raw.split(" #").next().unwrap_or_default().trim();
    if plain.starts_with(['&', '*', '!', '>']) {
        here.fail("anchors, aliases, tags and folded blocks are not supported");
    }
    if (plain.starts_with('[') || plain.starts_with('{')) && !matches!(plain, "[]" | "{}") {
        here.fail("flow collections are not supported");
    }
    plain.to_string()
}

// ---- HTTP and the Prometheus text format -----------------------------------------------------

/// `GET path` on `addr` over HTTP/1.0: the status code and the body.
fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let timeout = Duration::from_secs(5);
    let socket = addr
        .parse()
        .map_err(|e| std::io::Error::other(format!("{addr}: {e}")))?;
    let mut stream = TcpStream::connect_timeout(&socket, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {response:?}")))?;
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    Ok((status, body.to_string()))
}

/// One `/metrics` answer in the Prometheus text format.
#[derive(Debug)]
struct Scrape {
    /// Family name to type, from the `# TYPE` lines.
    families: BTreeMap<String, String>,
    /// Every sample: series name, labels as written, value.
    samples: Vec<(String, String, f64)>,
    text: String,
}

impl Scrape {
    fn parse(text: &str) -> Self {
        let mut families = BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                let (Some(name), Some(kind), None) = (parts.next(), parts.next(), parts.next())
                else {
                    panic!("bad TYPE line {line:?}");
                };
                families.insert(name.to_string(), kind.to_string());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad sample line {line:?}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                other => other
                    .parse()
                    .unwrap_or_else(|e| panic!("bad sample value in {line:?}: {e}")),
            };
            samples.push((name.to_string(), labels.to_string(), value));
        }
        let scrape = Self {
            families,
            samples,
            text: text.to_string(),
        };
        let names = scrape.series_names();
        for (name, _, _) in &scrape.samples {
            assert!(
                names.contains(name),
                "sample {name} belongs to no # TYPE family"
            );
        }
        scrape
    }

    /// Every series name PromQL can select: a family's name, and for a histogram `x` its
    /// `x_bucket`, `x_sum` and `x_count` (a summary: `x`, `x_sum`, `x_count`).
    fn series_names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for (family, kind) in &self.families {
            match kind.as_str() {
                "histogram" => {
                    for suffix in HISTOGRAM_SUFFIXES {
                        names.insert(format!("{family}{suffix}"));
                    }
                }
                "summary" => {
                    names.insert(family.clone());
                    names.insert(format!("{family}_sum"));
                    names.insert(format!("{family}_count"));
                }
                _ => {
                    names.insert(family.clone());
                }
            }
        }
        names
    }

    /// The value of the series `name` without labels.
    fn value(&self, name: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|(sample, labels, _)| sample == name && labels.is_empty())
            .map(|(_, _, value)| *value)
    }

    /// The value of the series `name` with exactly the labels `labels` (as written).
    fn labelled(&self, name: &str, labels: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|(sample, l, _)| sample == name && l == labels)
            .map(|(_, _, value)| *value)
    }
}

/// `/metrics` on `addr`, when it answers 200.
fn scrape(addr: &str) -> Option<Scrape> {
    match http_get(addr, "/metrics") {
        Ok((200, body)) => Some(Scrape::parse(&body)),
        _ => None,
    }
}

/// The status `path` on `addr` answers, `None` when it does not answer.
fn status_of(addr: &str, path: &str) -> Option<u16> {
    http_get(addr, path).ok().map(|(status, _)| status)
}

/// Poll `path` on `addr` until it answers `status`, for at most `timeout`; fails the test
/// (with the daemon's stderr) otherwise. Returns how long it took.
fn wait_for_status(
    daemon: &mut Daemon,
    addr: &str,
    path: &str,
    status: u16,
    timeout: Duration,
) -> Duration {
    let started = Instant::now();
    let mut last = None;
    loop {
        daemon.assert_running(&format!("while waiting for {path} to answer {status}"));
        let answer = http_get(addr, path).ok();
        if answer.as_ref().map(|(code, _)| *code) == Some(status) {
            return started.elapsed();
        }
        last = answer.or(last);
        assert!(
            started.elapsed() < timeout,
            "{path} did not answer {status} within {timeout:?}; last answer {last:?}; \
             stderr:\n{}",
            daemon.stderr()
        );
        std::thread::sleep(HTTP_POLL);
    }
}

/// Every identifier starting with `evm_executor_` in a PromQL expression.
fn metric_references(expr: &str) -> BTreeSet<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    expr.match_indices(METRIC_PREFIX)
        .filter(|(at, _)| !expr[..*at].chars().next_back().is_some_and(is_ident))
        .map(|(at, _)| {
            expr[at..]
                .chars()
                .take_while(|c| is_ident(*c))
                .collect::<String>()
        })
        .collect()
}

/// Every panel of the dashboard, rows' nested panels included.
fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    fn walk<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
        for panel in value["panels"].as_array().into_iter().flatten() {
            out.push(panel);
            walk(panel, out);
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out
}

/// Every PromQL expression of the dashboard, with where it is: each panel target's `expr`, and
/// the query of each templating variable of type `query`.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {title:?}: a target without expr"));
            queries.push((format!("panel {title:?}"), expr.to_string()));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] == "query" {
            let query = variable["query"]["query"]
                .as_str()
                .or(variable["query"].as_str())
                .expect("a query variable's query");
            queries.push((format!("variable {}", variable["name"]), query.to_string()));
        }
    }
    queries
}

/// `gasUsed` of blocks `1..=last` of a fixture chain, from the headers of its chain file.
fn header_gas(chain: &ChainFixture, last: u64) -> u64 {
    let file = chain.chain_bytes();
    let blocks = raw_blocks(&file);
    let numbers: Vec<u64> = blocks.iter().map(|block| block.number()).collect();
    assert_eq!(
        numbers,
        (1..=last).collect::<Vec<_>>(),
        "the chain file holds blocks 1..={last}"
    );
    blocks
        .iter()
        .map(|block| block.header_u64(HEADER_GAS_USED_INDEX))
        .sum()
}

/// The overrides that serve the HTTP endpoint on `addr`.
fn metrics_on(addr: &str) -> Vec<(String, String)> {
    vec![
        var("EVM_EXECUTOR_METRICS_ENABLED", "true"),
        var("EVM_EXECUTOR_METRICS_LISTEN_ADDR", addr),
    ]
}

// ---- 1. the dashboard against the running binary -------------------------------------------

/// The daemon executes geth-ethtest on a real redis-server (a Redis-protocol store, as deployed:
/// the per-node store metrics exist only for one) with its endpoint on; the scrape reports the
/// chain's height, transactions and gas exactly, has every metric the original service
/// documents and every metric the dashboard queries; it exports exactly the metrics metrics.rs
/// defines, and the dashboard shows each of them and everything [`DASHBOARD_METRICS`] lists;
/// `/health` and `/ready` are 200.
#[test]
fn dashboard_queries_only_metrics_the_running_daemon_exports() {
    let chain = ChainFixture::geth_ethtest();
    let head = chain.block_count as u64;
    let backend = Backend::redis();
    init_and_import(&backend, &chain.genesis_path(), &chain.chain_path());
    let addr = format!("127.0.0.1:{}", free_port());
    let mut daemon = Daemon::start(&backend, &metrics_on(&addr), &["run"]);

    // Committed up to the head: the commit stage moves its checkpoint gauge after the height
    // and the counters of the same block.
    let committed = |scrape: &Scrape| {
        scrape.value("evm_executor_execution_height") == Some(head as f64)
            && scrape.labelled("evm_executor_stage_checkpoint", "stage=\"commit\"")
                == Some(head as f64)
    };
    daemon.wait_until(PROGRESS_TIMEOUT, "execution of the whole chain", || {
        std::thread::sleep(HTTP_POLL);
        scrape(&addr).is_some_and(|s| committed(&s))
    });
    // Let the sampler (queues, caches; four times a second) run at least twice more.
    std::thread::sleep(Duration::from_millis(600));
    let scraped = scrape(&addr).expect("/metrics answers 200");
    let exported = scraped.series_names();

    assert_eq!(
        scraped.value("evm_executor_execution_height"),
        Some(head as f64)
    );
    assert_eq!(
        scraped.value("evm_executor_txs_executed_total"),
        Some(chain.tx_count as f64),
        "transactions of blocks 1..={head}"
    );
    let gas = header_gas(&chain, head);
    assert_eq!(
        scraped.value("evm_executor_gas_used_total"),
        Some(gas as f64),
        "gasUsed of blocks 1..={head} from the headers is {gas}"
    );
    assert_eq!(scraped.value("evm_executor_sync_height"), Some(head as f64));
    assert_eq!(scraped.value("evm_executor_execution_lag"), Some(0.0));
    assert_eq!(scraped.value("evm_executor_leader"), Some(1.0));
    assert_eq!(scraped.value("evm_executor_store_up"), Some(1.0));
    assert_eq!(
        scraped
            .families
            .get("evm_executor_state_commit_latency_seconds"),
        Some(&"histogram".to_string())
    );
    let commit_batches = scraped
        .value("evm_executor_state_commit_latency_seconds_count")
        .unwrap_or(0.0);
    assert!(
        (1.0..=head as f64).contains(&commit_batches),
        "one commit latency per commit batch of 1..={head} blocks: {commit_batches}"
    );
    for short in DOCUMENTED_METRICS {
        let family = format!("{METRIC_PREFIX}{short}");
        assert!(
            scraped.families.contains_key(&family),
            "{family} (documented by the original service) is not exported; families:\n{:#?}",
            scraped.families
        );
    }

    let dashboard = dashboard();
    let queries = dashboard_queries(&dashboard);
    assert!(!queries.is_empty(), "the dashboard has no queries");
    let mut referenced = BTreeSet::new();
    for (place, expr) in &queries {
        let names = metric_references(expr);
        assert!(
            !names.is_empty(),
            "{place}: {expr:?} queries no evm_executor_ metric"
        );
        for name in names {
            assert!(
                exported.contains(&name),
                "{place}: {expr:?} queries {name}, which the daemon does not export; it \
                 exports:\n{}",
                exported.iter().cloned().collect::<Vec<_>>().join("\n")
            );
            referenced.insert(name);
        }
    }
    for name in DASHBOARD_METRICS {
        assert!(referenced.contains(*name), "the dashboard shows no {name}");
    }
    // Every metric metrics.rs defines was exported in this run (a labelled family appears with
    // its first series), so the check below covers them all: a metric added to the daemon fails
    // here until a panel shows it.
    let families: BTreeSet<String> = scraped.families.keys().cloned().collect();
    let defined = defined_metrics();
    assert!(
        families == defined,
        "the daemon exported families metrics.rs does not define: {:?}; metrics.rs defines \
         families the daemon did not export in this run: {:?}",
        families.difference(&defined).collect::<Vec<_>>(),
        defined.difference(&families).collect::<Vec<_>>()
    );
    for family in &families {
        let shown = referenced.iter().any(|name| {
            name.strip_prefix(family.as_str())
                .is_some_and(|rest| rest.is_empty() || HISTOGRAM_SUFFIXES.contains(&rest))
        });
        assert!(
            shown,
            "the daemon exports {family}, which no panel of the dashboard shows"
        );
    }

    assert_eq!(
        http_get(&addr, "/health").expect("/health answers"),
        (200, "ok\n".to_string())
    );
    let (status, body) = http_get(&addr, "/ready").expect("/ready answers");
    assert_eq!(status, 200, "/ready: {body}");
    assert_eq!(status_of(&addr, "/nothing-here"), Some(404));

    let status = daemon.terminate(STOP_TIMEOUT);
    assert!(
        status.success(),
        "SIGTERM must end the daemon with exit 0, got {status}; stderr:\n{}",
        daemon.stderr()
    );
    assert!(
        scraped
            .text
            .contains("# HELP evm_executor_execution_height "),
        "families carry HELP text"
    );
}

// ---- 2. readiness follows the store ---------------------------------------------------------

/// The Redis server of a Redis backend, to stop and start.
fn redis_mut(backend: &mut Backend) -> &mut RedisServer {
    match backend {
        Backend::Redis(server) => server,
        Backend::Embedded(_) => unreachable!("a Redis backend"),
    }
}

/// `/ready` turns 503 within 10 s of redis-server stopping while `/health` stays 200 (a store
/// outage must not get the pod restarted), and 200 again within 15 s of its return; the daemon
/// survives the outage and exits 0 on SIGTERM.
#[test]
fn ready_follows_the_store() {
    let chain = ChainFixture::hive_sync();
    let head = chain.block_count as u64;
    let mut backend = Backend::redis();
    init_and_import(&backend, &chain.genesis_path(), &chain.chain_path());
    let addr = format!("127.0.0.1:{}", free_port());
    let mut extra = metrics_on(&addr);
    extra.extend([
        var("EVM_EXECUTOR_EXECUTOR_POLL_INTERVAL_MS", "100"),
        var("EVM_EXECUTOR_STORAGE_PIKA_RETRY_MAX_BACKOFF_MS", "200"),
        // Wait out the outage as in production (the harness's default gives up after 3).
        var("EVM_EXECUTOR_STORAGE_PIKA_MAX_RETRIES", "0"),
    ]);
    let mut daemon = Daemon::start(&backend, &extra, &["run"]);
    daemon.wait_until(PROGRESS_TIMEOUT, "execution of the whole chain", || {
        std::thread::sleep(HTTP_POLL);
        scrape(&addr).is_some_and(|s| s.value("evm_executor_execution_height") == Some(head as f64))
    });
    wait_for_status(&mut daemon, &addr, "/ready", 200, Duration::from_secs(10));

    redis_mut(&mut backend).stop();
    let took = wait_for_status(&mut daemon, &addr, "/ready", 503, Duration::from_secs(10));
    let (_, reason) = http_get(&addr, "/ready").expect("/ready answers");
    assert!(
        reason.contains("store unreachable"),
        "/ready's reason: {reason:?}"
    );
    assert_eq!(
        status_of(&addr, "/health"),
        Some(200),
        "/health during the outage"
    );
    let down = scrape(&addr).expect("/metrics during the outage");
    assert_eq!(down.value("evm_executor_store_up"), Some(0.0));
    assert!(
        down.value("evm_executor_store_errors_total")
            .is_some_and(|errors| errors >= 1.0),
        "store errors are counted"
    );
    eprintln!("/ready turned 503 {took:?} after redis-server stopped");

    redis_mut(&mut backend).start_again();
    let took = wait_for_status(&mut daemon, &addr, "/ready", 200, Duration::from_secs(15));
    eprintln!("/ready turned 200 {took:?} after redis-server returned");
    let up = scrape(&addr).expect("/metrics after the outage");
    assert_eq!(up.value("evm_executor_store_up"), Some(1.0));

    let status = daemon.terminate(STOP_TIMEOUT);
    assert!(
        status.success(),
        "SIGTERM must end the daemon with exit 0, got {status}; stderr:\n{}",
        daemon.stderr()
    );
}

// ---- 3. the files agree with each other and with the binary --------------------------------

/// The `host:container[:mode]` volumes of a compose service: host path resolved against the
/// compose file's directory, to container path.
fn compose_mounts(compose: &Yaml, service: &str) -> BTreeMap<String, PathBuf> {
    let compose_dir = deployment_path("docker");
    compose
        .list(&format!("services.{service}.volumes"))
        .into_iter()
        .filter_map(|volume| {
            let mut parts = volume.split(':');
            let (host, container) = (parts.next()?, parts.next()?);
            // Named volumes do not come from the repository.
            (host.starts_with('.') || host.starts_with('/'))
                .then(|| (container.to_string(), normalize(&compose_dir.join(host))))
        })
        .collect()
}

/// `"N:N"` is among the service's published ports.
fn assert_publishes(compose: &Yaml, service: &str, port: u16) {
    let ports = compose.list(&format!("services.{service}.ports"));
    assert!(
        ports.contains(&format!("{port}:{port}").as_str()),
        "compose service {service} publishes {ports:?}, not {port}:{port}"
    );
}

/// The port of `host:port`.
fn port_of(addr: &str) -> u16 {
    evm_executor::config::parse_host_port(addr)
        .unwrap_or_else(|| panic!("{addr:?} is not host:port"))
        .1
}

/// `EVM_EXECUTOR_*` names in `text`.
fn env_names_in(text: &str) -> BTreeSet<String> {
    let is_name = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
    text.match_indices(ENV_PREFIX)
        .map(|(at, _)| text[at..].chars().take_while(|c| is_name(*c)).collect())
        .filter(|name: &String| name.len() > ENV_PREFIX.len())
        .collect()
}

/// The default of every config key by its environment variable name, derived here from the
/// documented rule (`EVM_EXECUTOR_<SECTION>_<KEY>`, nested sections joined with `_`).
fn config_defaults_by_env_name() -> BTreeMap<String, String> {
    fn walk(table: &toml::Table, path: &mut Vec<String>, out: &mut BTreeMap<String, String>) {
        for (key, value) in table {
            path.push(key.to_uppercase());
            match value {
                toml::Value::Table(inner) => walk(inner, path, out),
                toml::Value::String(text) => {
                    out.insert(format!("{ENV_PREFIX}{}", path.join("_")), text.clone());
                }
                other => {
                    out.insert(format!("{ENV_PREFIX}{}", path.join("_")), other.to_string());
                }
            }
            path.pop();
        }
    }
    let table = toml::Table::try_from(Config::default()).expect("defaults as TOML");
    let mut out = BTreeMap::new();
    walk(&table, &mut Vec::new(), &mut out);
    out
}

/// `status --json` on a fresh embedded store with `name=value` set after the store's own
/// overrides (and a Pika address nobody listens on, one attempt, should `name` switch the
/// backend): the exit status and stderr.
fn status_with(name: &str, value: &str) -> (Option<i32>, String) {
    let backend = Backend::embedded();
    let extra = [
        var(
            "EVM_EXECUTOR_STORAGE_PIKA_ADDR",
            format!("127.0.0.1:{}", free_port()),
        ),
        var("EVM_EXECUTOR_STORAGE_PIKA_MAX_RETRIES", "1"),
        var("EVM_EXECUTOR_STORAGE_PIKA_CONNECT_TIMEOUT_MS", "1000"),
        var(name, value),
    ];
    let output = Daemon::start(&backend, &extra, &["status", "--json"]).finish_within(STOP_TIMEOUT);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The Dockerfile's instructions: (keyword, arguments), continuation lines joined.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                let instruction = current.trim();
                let (keyword, args) = instruction.split_once(' ').unwrap_or((instruction, ""));
                out.push((keyword.to_uppercase(), args.trim().to_string()));
                current.clear();
            }
        }
    }
    out
}

/// The Dockerfile's ENTRYPOINT (exec form).
fn dockerfile_entrypoint() -> Vec<String> {
    let instructions = dockerfile_instructions(&deployment_file("docker/Dockerfile"));
    let (_, args) = instructions
        .iter()
        .find(|(keyword, _)| keyword == "ENTRYPOINT")
        .expect("an ENTRYPOINT");
    serde_json::from_str(args).unwrap_or_else(|e| panic!("ENTRYPOINT {args} is not exec form: {e}"))
}

/// The Dockerfile: the builder and runtime stages, the non-root user, the binary and config
/// paths, the port, the entrypoint; its ignore file keeps target/ and data/ out; the Makefile
/// builds it from the repository root.
#[test]
fn dockerfile_builds_and_runs_the_binary() {
    let text = deployment_file("docker/Dockerfile");
    let instructions = dockerfile_instructions(&text);
    let all = |keyword: &str| -> Vec<&str> {
        instructions
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, args)| args.as_str())
            .collect()
    };
    assert_eq!(
        all("FROM"),
        ["rust:1.95-bookworm AS builder", "debian:bookworm-slim"]
    );
    let runs = all("RUN").join("\n");
    assert!(runs.contains("cargo build --release --locked"), "{runs}");
    assert!(runs.contains("ca-certificates"), "{runs}");
    assert!(runs.contains("useradd"), "a user is created: {runs}");
    let user = all("USER");
    assert_eq!(user.len(), 1, "one USER: {user:?}");
    let user_name = user[0].split(':').next().expect("a user");
    assert!(
        !["root", "0"].contains(&user_name),
        "the runtime user is not root: {user_name}"
    );
    assert!(
        runs.contains(&format!("useradd --system --uid 10001 --gid {user_name}")),
        "USER {user_name} is the one created, uid 10001 as the Deployment's runAsUser"
    );
    let copies = all("COPY");
    assert!(
        copies.iter().any(
            |c| c.starts_with("--from=builder ") && c.ends_with(" /usr/local/bin/evm-executor")
        ),
        "the binary goes to /usr/local/bin/evm-executor: {copies:?}"
    );
    assert!(
        copies.contains(&"config/config.toml /etc/evm-executor/config.toml"),
        "{copies:?}"
    );
    for copy in copies.iter().filter(|c| !c.starts_with("--from=")) {
        let source = copy.split_whitespace().next().expect("a source");
        assert!(
            repo().join(source).exists(),
            "COPY source {source} exists in the build context (the repository root)"
        );
    }
    assert_eq!(all("EXPOSE"), [METRICS_PORT.to_string()]);
    let json_array = |args: &str| -> Vec<String> {
        serde_json::from_str(args).unwrap_or_else(|e| panic!("{args} is not a JSON array: {e}"))
    };
    assert_eq!(all("ENTRYPOINT").len(), 1);
    assert_eq!(
        dockerfile_entrypoint(),
        ["evm-executor", "--config", "/etc/evm-executor/config.toml"]
    );
    assert_eq!(all("CMD").len(), 1);
    assert_eq!(json_array(all("CMD")[0]), ["run"]);

    let ignore = deployment_file("docker/Dockerfile.dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    for needed in ["target/", "data/"] {
        assert!(
            ignored.contains(&needed),
            "{needed} is ignored: {ignored:?}"
        );
    }
    for kept in ["Cargo.toml", "Cargo.lock", "src", "stages", "config"] {
        assert!(
            !ignored
                .iter()
                .any(|pattern| pattern.trim_end_matches('/') == kept),
            "{kept} is needed by the build but ignored"
        );
    }

    let makefile = std::fs::read_to_string(repo().join("Makefile")).expect("read Makefile");
    assert!(
        makefile.contains("\n.PHONY: docker-build\n"),
        "docker-build is phony"
    );
    assert!(
        makefile.contains(
            "\ndocker-build:\n\tdocker build -f deployments/docker/Dockerfile -t evm-executor:latest .\n"
        ),
        "the Makefile's docker-build target builds from the repository root"
    );
}

/// The dashboard is a Grafana dashboard (uid, schema, panels with unique ids, positions that do
/// not overlap, and queries) whose data source is the provisioned Prometheus; its stat of the
/// merkle stage's `state_verified` says UNVERIFIED in so many words.
#[test]
fn dashboard_is_a_grafana_dashboard_on_the_provisioned_datasource() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "evm-executor");
    let schema = dashboard["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));

    let datasources = deployment_yaml("grafana/provisioning/datasources/prometheus.yaml");
    assert_eq!(datasources.get("apiVersion"), "1");
    let source = datasources.item_where("datasources", "type", "prometheus");
    let uid = datasources.get(&format!("{source}.uid"));
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list");
    let datasource_variable = variables
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a data source variable");
    assert_eq!(datasource_variable["query"], "prometheus");
    assert_eq!(
        datasource_variable["current"]["value"], uid,
        "the data source variable defaults to the provisioned Prometheus"
    );
    let variable_ref = format!(
        "${{{}}}",
        datasource_variable["name"].as_str().expect("variable name")
    );
    let uses_the_datasource = |value: &serde_json::Value| {
        value["type"] == "prometheus" && (value["uid"] == uid || value["uid"] == variable_ref)
    };

    // Rectangles placed so far (the dashboard has no collapsed rows, whose nested panels would
    // be placed only once the row opens: checked below).
    let mut cells: Vec<&serde_json::Value> = Vec::new();
    let overlap = |a: &serde_json::Value, b: &serde_json::Value| {
        let span = |panel: &serde_json::Value, at: &str, size: &str| {
            let start = panel["gridPos"][at].as_u64().unwrap_or(0);
            start..start + panel["gridPos"][size].as_u64().unwrap_or(0)
        };
        let meets =
            |p: std::ops::Range<u64>, q: std::ops::Range<u64>| p.start < q.end && q.start < p.end;
        meets(span(a, "x", "w"), span(b, "x", "w")) && meets(span(a, "y", "h"), span(b, "y", "h"))
    };
    let mut ids = BTreeSet::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().expect("panel title");
        let id = panel["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} is used twice");
        for field in ["x", "y", "w", "h"] {
            assert!(
                panel["gridPos"][field].is_u64(),
                "panel {title:?}: gridPos.{field}"
            );
        }
        let width = panel["gridPos"]["x"].as_u64().unwrap_or(0)
            + panel["gridPos"]["w"].as_u64().unwrap_or(0);
        assert!(width <= 24, "panel {title:?} ends at column {width} > 24");
        if let Some(other) = cells.iter().find(|other| overlap(other, panel)) {
            panic!(
                "panel {title:?} overlaps panel {:?}",
                other["title"].as_str().unwrap_or("?")
            );
        }
        cells.push(panel);
        if panel["type"] == "row" {
            assert!(
                panel["collapsed"] != true
                    && panel["panels"]
                        .as_array()
                        .is_none_or(|nested| nested.is_empty()),
                "row {title:?} is collapsed: its panels' positions are not checked"
            );
            continue;
        }
        assert!(
            uses_the_datasource(&panel["datasource"]),
            "panel {title:?}: datasource {}",
            panel["datasource"]
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title:?} has no targets");
        let mut refs = BTreeSet::new();
        for target in targets {
            assert!(refs.insert(target["refId"].as_str().expect("refId")));
            assert!(uses_the_datasource(&target["datasource"]));
            let expr = target["expr"].as_str().expect("expr");
            let opens = expr.matches(['(', '[', '{']).count();
            let closes = expr.matches([')', ']', '}']).count();
            assert_eq!(opens, closes, "panel {title:?}: unbalanced {expr:?}");
        }
    }

    // The state verified stat: 0 reads UNVERIFIED, 1 does not.
    let verified_stat = panels(&dashboard)
        .into_iter()
        .find(|panel| {
            panel["type"] == "stat"
                && panel["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|target| {
                        target["expr"].as_str().is_some_and(|expr| {
                            metric_references(expr).contains("evm_executor_state_verified")
                        })
                    })
        })
        .expect("a stat panel of evm_executor_state_verified");
    let text_of = |value: &str| {
        verified_stat["fieldConfig"]["defaults"]["mappings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|mapping| mapping["type"] == "value")
            .find_map(|mapping| mapping["options"][value]["text"].as_str())
            .unwrap_or_else(|| panic!("the state verified stat maps no text to {value}"))
    };
    assert_eq!(text_of("0"), "UNVERIFIED");
    assert!(!text_of("1").contains("UNVERIFIED"), "{}", text_of("1"));
}

/// Compose, Prometheus, Grafana provisioning and Kubernetes manifests: ports, images, env
/// overrides (each one accepted by the binary with its value), probes, replicas, resources,
/// mounts, names and selectors; the ConfigMap's config.toml is config/config.toml pointed at
/// Pika and loads.
#[test]
fn compose_prometheus_and_kubernetes_agree_with_the_binary() {
    // ---- compose
    let compose = deployment_yaml("docker/docker-compose.yaml");
    let services: BTreeSet<&str> = compose.keys("services").into_iter().collect();
    assert_eq!(
        services,
        BTreeSet::from(["evm-executor", "grafana", "pika", "prometheus"])
    );
    assert!(
        compose
            .get("services.pika.image")
            .starts_with("pikadb/pika:"),
        "the official Pika image"
    );
    assert!(compose
        .list("services.pika.volumes")
        .iter()
        .any(|v| v.ends_with(":/pika/db")));
    assert!(compose
        .get("services.prometheus.image")
        .starts_with("prom/prometheus"));
    assert!(compose
        .get("services.grafana.image")
        .starts_with("grafana/grafana"));
    assert_publishes(&compose, "pika", PIKA_PORT);
    assert_publishes(&compose, "evm-executor", METRICS_PORT);
    assert_publishes(&compose, "prometheus", PROMETHEUS_PORT);
    assert_publishes(&compose, "grafana", GRAFANA_PORT);
    let build = normalize(
        &deployment_path("docker").join(compose.get("services.evm-executor.build.context")),
    );
    assert_eq!(
        build,
        normalize(&repo()),
        "the build context is the repository root"
    );
    assert_eq!(
        normalize(&build.join(compose.get("services.evm-executor.build.dockerfile"))),
        deployment_path("docker/Dockerfile")
    );
    assert_eq!(compose.list("services.evm-executor.depends_on"), ["pika"]);
    let compose_env = compose.mapping("services.evm-executor.environment");
    assert_eq!(
        compose_env,
        BTreeMap::from([
            ("EVM_EXECUTOR_STORAGE_BACKEND", "pika"),
            ("EVM_EXECUTOR_STORAGE_PIKA_ADDR", "pika:9221"),
            ("EVM_EXECUTOR_METRICS_LISTEN_ADDR", "0.0.0.0:9091"),
            ("EVM_EXECUTOR_LOG_FORMAT", "json"),
        ])
    );
    let pika_addr = compose_env["EVM_EXECUTOR_STORAGE_PIKA_ADDR"];
    assert!(services.contains(pika_addr.split(':').next().unwrap_or_default()));
    assert_eq!(port_of(pika_addr), PIKA_PORT);
    assert_eq!(
        port_of(compose_env["EVM_EXECUTOR_METRICS_LISTEN_ADDR"]),
        METRICS_PORT
    );
    let grafana_env = compose.mapping("services.grafana.environment");
    assert_eq!(grafana_env.get("GF_SECURITY_ADMIN_USER"), Some(&"admin"));
    assert_eq!(
        grafana_env.get("GF_SECURITY_ADMIN_PASSWORD"),
        Some(&"admin")
    );

    // ---- Prometheus, mounted by compose
    let prometheus_mounts = compose_mounts(&compose, "prometheus");
    assert_eq!(
        prometheus_mounts.get("/etc/prometheus/prometheus.yml"),
        Some(&deployment_path("prometheus/prometheus.yml"))
    );
    let prometheus = deployment_yaml("prometheus/prometheus.yml");
    let job = prometheus.item_where("scrape_configs", "job_name", "evm-executor");
    assert_eq!(prometheus.get(&format!("{job}.scrape_interval")), "5s");
    assert_eq!(prometheus.get(&format!("{job}.metrics_path")), "/metrics");
    assert_eq!(
        prometheus.list(&format!("{job}.static_configs[0].targets")),
        [format!("evm-executor:{METRICS_PORT}")]
    );

    // ---- Grafana provisioning, mounted by compose
    let grafana_mounts = compose_mounts(&compose, "grafana");
    let provisioning = grafana_mounts
        .get("/etc/grafana/provisioning")
        .expect("compose mounts the provisioning directory");
    assert_eq!(provisioning, &deployment_path("grafana/provisioning"));
    let datasources = deployment_yaml("grafana/provisioning/datasources/prometheus.yaml");
    let source = datasources.item_where("datasources", "type", "prometheus");
    assert_eq!(
        datasources.get(&format!("{source}.url")),
        format!("http://prometheus:{PROMETHEUS_PORT}")
    );
    let providers = deployment_yaml("grafana/provisioning/dashboards/dashboards.yaml");
    let provider = providers.item_where("providers", "type", "file");
    let dashboards_dir = PathBuf::from(providers.get(&format!("{provider}.options.path")));
    let dashboard_mounts: Vec<_> = grafana_mounts
        .iter()
        .filter(|(_, host)| *host == &deployment_path("grafana/dashboard.json"))
        .collect();
    assert_eq!(
        dashboard_mounts.len(),
        1,
        "compose mounts grafana/dashboard.json once: {grafana_mounts:?}"
    );
    let (container_path, _) = dashboard_mounts[0];
    let container_path = Path::new(container_path);
    assert_eq!(
        container_path.parent(),
        Some(dashboards_dir.as_path()),
        "the dashboard is mounted into the folder the file provider reads"
    );
    assert_eq!(
        container_path.extension().and_then(|e| e.to_str()),
        Some("json")
    );

    // ---- Kubernetes
    let kustomization = deployment_yaml("kubernetes/kustomization.yaml");
    let resources = kustomization.list("resources");
    assert_eq!(
        resources,
        [
            "configmap.yaml",
            "deployment.yaml",
            "service.yaml",
            "pdb.yaml"
        ]
    );
    for resource in &resources {
        assert!(deployment_path(&format!("kubernetes/{resource}")).is_file());
    }
    let configmap = deployment_yaml("kubernetes/configmap.yaml");
    let deployment = deployment_yaml("kubernetes/deployment.yaml");
    let service = deployment_yaml("kubernetes/service.yaml");
    let pdb = deployment_yaml("kubernetes/pdb.yaml");
    assert_eq!(configmap.get("kind"), "ConfigMap");
    assert_eq!(deployment.get("kind"), "Deployment");
    assert_eq!(deployment.get("apiVersion"), "apps/v1");
    assert_eq!(service.get("kind"), "Service");
    assert_eq!(pdb.get("kind"), "PodDisruptionBudget");
    assert_eq!(pdb.get("apiVersion"), "policy/v1");

    assert_eq!(deployment.get("spec.replicas"), "2");
    let pod_labels = deployment.mapping("spec.template.metadata.labels");
    assert!(!pod_labels.is_empty());
    assert_eq!(deployment.mapping("spec.selector.matchLabels"), pod_labels);
    assert_eq!(service.mapping("spec.selector"), pod_labels);
    assert_eq!(pdb.mapping("spec.selector.matchLabels"), pod_labels);
    assert_eq!(pdb.get("spec.minAvailable"), "1");
    let grace: u64 = deployment
        .get("spec.template.spec.terminationGracePeriodSeconds")
        .parse()
        .expect("a number of seconds");
    assert!(grace >= 30, "terminationGracePeriodSeconds {grace}");

    let container = deployment.item_where("spec.template.spec.containers", "name", "evm-executor");
    let at = |rel: &str| deployment.get(&format!("{container}.{rel}"));
    assert_eq!(at("image"), "evm-executor:latest");
    assert_eq!(deployment.list(&format!("{container}.args")), ["run"]);
    assert!(
        deployment.opt(&format!("{container}.command")).is_none(),
        "the image's ENTRYPOINT (with --config) is kept"
    );
    let env_path = format!("{container}.env");
    let mut k8s_env = BTreeMap::new();
    for i in 0..deployment.len(&env_path) {
        let item = format!("{env_path}[{i}]");
        let name = deployment.get(&format!("{item}.name"));
        match deployment.opt(&format!("{item}.value")) {
            Some(value) => k8s_env.insert(name, value),
            None => k8s_env.insert(
                name,
                deployment.get(&format!("{item}.valueFrom.fieldRef.fieldPath")),
            ),
        };
    }
    assert_eq!(
        k8s_env,
        BTreeMap::from([
            ("EVM_EXECUTOR_STORAGE_PIKA_ADDR", "pika:9221"),
            ("EVM_EXECUTOR_LOG_FORMAT", "json"),
            ("HOSTNAME", "metadata.name"),
        ])
    );
    let port = deployment.item_where(&format!("{container}.ports"), "name", "metrics");
    assert_eq!(
        deployment.get(&format!("{port}.containerPort")),
        METRICS_PORT.to_string()
    );
    for (probe, path) in [("livenessProbe", "/health"), ("readinessProbe", "/ready")] {
        assert_eq!(at(&format!("{probe}.httpGet.path")), path);
        let probe_port = at(&format!("{probe}.httpGet.port"));
        assert!(
            probe_port == "metrics" || probe_port == METRICS_PORT.to_string(),
            "{probe} port {probe_port}"
        );
    }
    assert_eq!(at("resources.requests.cpu"), "2");
    assert_eq!(at("resources.requests.memory"), "8Gi");
    assert_eq!(at("resources.limits.cpu"), "4");
    assert_eq!(at("resources.limits.memory"), "16Gi");
    let mount = deployment.item_where(
        &format!("{container}.volumeMounts"),
        "mountPath",
        "/etc/evm-executor",
    );
    let volume_name = deployment.get(&format!("{mount}.name"));
    let volume = deployment.item_where("spec.template.spec.volumes", "name", volume_name);
    assert_eq!(
        deployment.get(&format!("{volume}.configMap.name")),
        configmap.get("metadata.name")
    );
    let run_as = deployment.get("spec.template.spec.securityContext.runAsUser");
    assert_eq!(run_as, "10001", "the image's user");

    let service_port = service.item_where("spec.ports", "name", "metrics");
    assert_eq!(
        service.get(&format!("{service_port}.port")),
        METRICS_PORT.to_string()
    );
    assert_eq!(
        service.get(&format!("{service_port}.targetPort")),
        "metrics"
    );
    let annotations = service.mapping("metadata.annotations");
    assert_eq!(annotations.get("prometheus.io/scrape"), Some(&"true"));
    assert_eq!(
        annotations.get("prometheus.io/port"),
        Some(&METRICS_PORT.to_string().as_str())
    );
    assert_eq!(annotations.get("prometheus.io/path"), Some(&"/metrics"));

    // ---- the ConfigMap's config.toml: config/config.toml pointed at the `pika` Service
    let config_text = configmap.get("data.config.toml");
    let cm_table: toml::Table = toml::from_str(config_text)
        .unwrap_or_else(|e| panic!("the ConfigMap's config.toml is not TOML: {e}"));
    let repo_config = std::fs::read_to_string(repo().join("config/config.toml"))
        .expect("read config/config.toml");
    let mut expected: toml::Table = toml::from_str(&repo_config).expect("config/config.toml");
    expected["storage"]["backend"] = "pika".into();
    expected["storage"]["pika"]["addr"] = "pika:9221".into();
    assert_eq!(
        cm_table, expected,
        "the ConfigMap holds config/config.toml with storage.backend = \"pika\" and \
         storage.pika.addr = \"pika:9221\""
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, config_text).expect("write config.toml");
    let loaded = Config::load(Some(&config_path), std::iter::empty())
        .unwrap_or_else(|e| panic!("the ConfigMap's config.toml does not load: {e}"));
    assert_eq!(loaded.storage.backend, StorageBackend::Pika);
    assert_eq!(loaded.storage.pika.addr, "pika:9221");
    assert_eq!(port_of(&loaded.metrics.listen_addr), METRICS_PORT);
    // The image's --config path is the ConfigMap's key in the directory it is mounted at.
    let entrypoint = dockerfile_entrypoint();
    let config_arg = entrypoint
        .iter()
        .position(|arg| arg == "--config")
        .and_then(|at| entrypoint.get(at + 1))
        .expect("the ENTRYPOINT passes --config");
    let mount_path = deployment.get(&format!("{mount}.mountPath"));
    assert_eq!(
        configmap.keys("data"),
        ["config.toml"],
        "the ConfigMap's one key"
    );
    assert_eq!(
        Path::new(mount_path).join("config.toml"),
        Path::new(config_arg),
        "the mounted ConfigMap provides the file the ENTRYPOINT reads"
    );
    // What each deployment runs: the ConfigMap with the Deployment's env, the image's config
    // with compose's.
    let env_of = |pairs: &BTreeMap<&str, &str>| -> Vec<(String, String)> {
        pairs
            .iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    };
    let k8s = Config::load(Some(&config_path), env_of(&k8s_env))
        .unwrap_or_else(|e| panic!("the Deployment's config does not load: {e}"));
    assert_eq!(k8s.log.format, LogFormat::Json);
    assert_eq!(k8s.storage.pika.addr, "pika:9221");
    let compose_config = Config::load(
        Some(&repo().join("config/config.toml")),
        env_of(&compose_env),
    )
    .unwrap_or_else(|e| panic!("the compose service's config does not load: {e}"));
    assert_eq!(compose_config.storage.backend, StorageBackend::Pika);
    assert_eq!(compose_config.metrics.listen_addr, "0.0.0.0:9091");

    // ---- every EVM_EXECUTOR_* name in the YAML files is a config key the binary accepts
    let mut names = BTreeSet::new();
    let mut yaml_files = Vec::new();
    let mut pending = vec![deployment_path("")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read deployments/") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
            {
                yaml_files.push(path);
            }
        }
    }
    assert!(yaml_files.len() >= 9, "YAML files found: {yaml_files:?}");
    for path in &yaml_files {
        names.extend(env_names_in(
            &std::fs::read_to_string(path).expect("read YAML"),
        ));
    }
    assert!(
        names.contains("EVM_EXECUTOR_STORAGE_PIKA_ADDR"),
        "{names:?}"
    );
    let defaults = config_defaults_by_env_name();
    let set_in_files: BTreeMap<&str, &str> = compose_env
        .iter()
        .chain(k8s_env.iter())
        .map(|(name, value)| (*name, *value))
        .collect();
    for name in &names {
        // The value a file sets, else (a name in a comment) the key's default.
        let value = set_in_files
            .get(name.as_str())
            .map(|v| v.to_string())
            .or_else(|| defaults.get(name).cloned())
            .unwrap_or_else(|| "1".to_string());
        let (code, stderr) = status_with(name, &value);
        assert!(
            !stderr.contains("unknown config key"),
            "{name} is not a config key:\n{stderr}"
        );
        assert_ne!(
            code,
            Some(2),
            "{name}={value} is rejected as configuration:\n{stderr}"
        );
    }
    // The check can fail: a name that is no key is refused.
    let (code, stderr) = status_with("EVM_EXECUTOR_NOT_A_KEY", "1");
    assert_eq!(code, Some(2));
    assert!(stderr.contains("unknown config key"), "{stderr}");
}

/// The YAML reader on the forms the files use, and its refusals.
#[test]
fn yaml_reader_reads_the_subset_the_files_use() {
    let yaml = Yaml::parse(
        "# comment\n\
         a:\n\
         \x20 b: 1 # trailing\n\
         \x20 c: \"9091:9091\"\n\
         \x20 list:\n\
         \x20   - x\n\
         \x20   - 'y'\n\
         \x20 items:\n\
         \x20   - name: one\n\
         \x20     value: first\n\
         \x20   - name: two\n\
         \x20     nested:\n\
         \x20       deep: yes\n\
         \x20 block: |\n\
         \x20   line one\n\
         \n\
         \x20     indented\n\
         \x20 empty: {}\n\
         top: value\n",
        "sample",
    );
    assert_eq!(yaml.get("a.b"), "1");
    assert_eq!(yaml.get("a.c"), "9091:9091");
    assert_eq!(yaml.list("a.list"), ["x", "y"]);
    assert_eq!(yaml.len("a.items"), 2);
    assert_eq!(yaml.get("a.items[0].value"), "first");
    assert_eq!(yaml.get("a.items[1].nested.deep"), "yes");
    assert_eq!(yaml.item_where("a.items", "name", "two"), "a.items[1]");
    assert_eq!(yaml.get("a.block"), "line one\n\n  indented\n");
    assert_eq!(yaml.get("a.empty"), "{}");
    assert_eq!(yaml.get("top"), "value");
    assert_eq!(yaml.mapping("a").get("b"), Some(&"1"));
    for bad in [
        "a: [1, 2]\n",
        "a: &anchor x\n",
        "a: 1\na: 2\n",
        "a:\n\tb: 1\n",
        "---\na: 1\n",
        "just a line\n",
    ] {
        let refused = std::panic::catch_unwind(|| Yaml::parse(bad, "bad"));
        assert!(refused.is_err(), "{bad:?} was accepted");
    }
    assert_eq!(
        metric_references(
            "sum(rate(evm_executor_a_total{x=\"1\"}[1m])) / my_evm_executor_b + evm_executor_c:d"
        ),
        BTreeSet::from([
            "evm_executor_a_total".to_string(),
            "evm_executor_c:d".to_string()
        ])
    );
}

// ---- 4. the dashboard on a real Prometheus --------------------------------------------------

/// Debian's Prometheus server (package `prometheus`, which `make test` installs).
const PROMETHEUS: &str = "prometheus";
/// Its config checker, from the same package.
const PROMTOOL: &str = "promtool";
/// How often the test's Prometheus scrapes the daemon: often, so a short chain is seen
/// executing.
const TEST_SCRAPE_INTERVAL: &str = "500ms";
/// How long a started Prometheus has to answer `/-/ready`.
const PROMETHEUS_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the dashboard's queries get to return series once the chain is executed (a few
/// scrapes: a rate needs two samples of a series).
const QUERY_SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The last blocks of the chain the test's syncer publishes one at a time once the rest is
/// executed, so the daemon follows the head (head latency times only blocks near the head).
const FOLLOWED_BLOCKS: usize = 4;
/// The value Grafana puts for `$instance` with "All" selected (the variable's `allValue`).
const ALL_INSTANCES: &str = ".*";

/// `promtool check config` accepts the shipped Prometheus configuration.
#[test]
fn promtool_accepts_the_prometheus_config() {
    let output = std::process::Command::new(PROMTOOL)
        .args(["check", "config"])
        .arg(deployment_path("prometheus/prometheus.yml"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{PROMTOOL}` ({e}); run `make test`, which installs prometheus")
        });
    assert!(
        output.status.success(),
        "promtool check config failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A Prometheus server on a free port scraping one target, its data in a temp dir; killed
/// when dropped.
struct Prometheus {
    child: std::process::Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Start one that scrapes `/metrics` on `target` as job `evm-executor`, and wait until it
    /// is ready.
    fn start(target: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for prometheus");
        let config = format!(
            "global:\n  scrape_interval: {TEST_SCRAPE_INTERVAL}\n  scrape_timeout: \
             {TEST_SCRAPE_INTERVAL}\n  evaluation_interval: {TEST_SCRAPE_INTERVAL}\n\
             scrape_configs:\n  - job_name: evm-executor\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: ['{target}']\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = std::process::Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `{PROMETHEUS}` ({e}): this test needs Debian's prometheus \
                     package; run `make test`, which installs it"
                )
            });
        let mut server = Self { child, addr, dir };
        let started = Instant::now();
        while status_of(&server.addr, "/-/ready") != Some(200) {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("prometheus exited with {status}:\n{}", server.log());
            }
            assert!(
                started.elapsed() < PROMETHEUS_START_TIMEOUT,
                "prometheus not ready within {PROMETHEUS_START_TIMEOUT:?}:\n{}",
                server.log()
            );
            std::thread::sleep(HTTP_POLL);
        }
        server
    }

    /// What it logged.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The instant query `query` through the HTTP API: the series of its result (`data.result`
    /// of a vector; a scalar or string counts as one).
    fn query(&self, query: &str) -> Vec<serde_json::Value> {
        let path = format!("/api/v1/query?query={}", percent_encode(query));
        let (status, body) = http_get(&self.addr, &path)
            .unwrap_or_else(|e| panic!("prometheus did not answer {query:?}: {e}"));
        let answer: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{query:?}: answer is not JSON ({e}): {body}"));
        assert!(
            status == 200 && answer["status"] == "success",
            "{query:?}: prometheus answered {status}: {body}"
        );
        match answer["data"]["resultType"].as_str() {
            Some("vector" | "matrix") => answer["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            _ => vec![answer["data"]["result"].clone()],
        }
    }

    /// Poll `query` until it returns a series, for at most `timeout`.
    fn wait_for(&self, daemon: &mut Daemon, query: &str, timeout: Duration) {
        let started = Instant::now();
        while self.query(query).is_empty() {
            daemon.assert_running(&format!("while prometheus waited for {query}"));
            assert!(
                started.elapsed() < timeout,
                "{query} returned nothing within {timeout:?}; prometheus log:\n{}\ndaemon:\n{}",
                self.log(),
                daemon.stderr()
            );
            std::thread::sleep(HTTP_POLL);
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` percent-encoded for a URL query value (everything but RFC 3986's unreserved
/// characters).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A dashboard query as Grafana sends it with every instance selected: `$instance` replaced
/// by the variable's "All" value. Any other variable fails the test (it would need a value
/// here too).
fn as_grafana_sends(expr: &str) -> String {
    let sent = expr
        .replace("${instance}", ALL_INSTANCES)
        .replace("$instance", ALL_INSTANCES);
    assert!(
        !sent.contains('$'),
        "{expr:?} uses a variable this test does not fill in"
    );
    sent
}

/// The series `expr` (a query of the dashboard at `place`) returns through `prometheus`: a
/// panel's expression as Grafana sends it; for Grafana's `label_values(metric, label)`, the
/// series of `metric`, each of which must carry `label`.
fn dashboard_query(prometheus: &Prometheus, place: &str, expr: &str) -> Vec<serde_json::Value> {
    let label_values = expr
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|args| args.split_once(','));
    let Some((metric, label)) = label_values else {
        return prometheus.query(&as_grafana_sends(expr));
    };
    let series = prometheus.query(metric.trim());
    for one in &series {
        assert!(
            one["metric"][label.trim()].is_string(),
            "{place}: a series of {metric} without {label}: {one}"
        );
    }
    series
}

/// The daemon runs against a real redis-server with its endpoint scraped by Debian's
/// Prometheus; once Prometheus has seen it idle at the genesis, geth-ethtest is imported (as
/// the syncer would write it) and executed: all but its last [`FOLLOWED_BLOCKS`] blocks at
/// once, then those one import at a time, followed at the head. Every histogram the dashboard
/// shows has observations (head latency included) and the state reads verified. Then every
/// query of the dashboard, sent as Grafana sends it with all instances selected, returns at
/// least one series through Prometheus's HTTP API; Grafana's `label_values(metric, label)`
/// variable query is asked as the series of `metric`, each of which must carry `label`.
#[test]
fn every_dashboard_query_returns_series_on_a_real_prometheus() {
    let chain = ChainFixture::geth_ethtest();
    let head = chain.block_count as u64;
    let file = chain.chain_bytes();
    let blocks = raw_blocks(&file);
    let caught_up = blocks.len() - FOLLOWED_BLOCKS;
    let files = tempfile::tempdir().expect("temp dir for chain files");
    let prefix = write_file(&files, "prefix.rlp", &file[..blocks[caught_up].offset]);
    let backend = Backend::redis();
    crate::common::init(&backend, &[], &chain.genesis_path());
    let addr = format!("127.0.0.1:{}", free_port());
    let mut env = metrics_on(&addr);
    env.push(var("EVM_EXECUTOR_EXECUTOR_POLL_INTERVAL_MS", "100"));
    let mut daemon = Daemon::start(&backend, &env, &["run"]);
    let prometheus = Prometheus::start(&addr);

    // Seen idle first, so the counters' rates cover the execution.
    prometheus.wait_for(
        &mut daemon,
        "evm_executor_execution_height == 0",
        PROGRESS_TIMEOUT,
    );
    crate::common::expect_success(&crate::common::import(&backend, &prefix));
    prometheus.wait_for(
        &mut daemon,
        &format!("evm_executor_execution_height == {caught_up}"),
        PROGRESS_TIMEOUT,
    );
    // The daemon has read a synced height: each block published now is timed from when it
    // sees it.
    for block in &blocks[caught_up..] {
        let path = write_file(&files, &format!("{}.rlp", block.number()), block.encoded);
        crate::common::expect_success(&crate::common::import(&backend, &path));
    }
    prometheus.wait_for(
        &mut daemon,
        &format!("evm_executor_execution_height == {head}"),
        PROGRESS_TIMEOUT,
    );
    prometheus.wait_for(
        &mut daemon,
        "sum(rate(evm_executor_txs_executed_total[1m])) > 0",
        PROGRESS_TIMEOUT,
    );

    prometheus.wait_for(
        &mut daemon,
        "evm_executor_state_verified == 1",
        QUERY_SETTLE_TIMEOUT,
    );
    let queries = dashboard_queries(&dashboard());
    assert!(!queries.is_empty(), "the dashboard has no queries");
    // A histogram's buckets are exported before its first observation, but its quantiles are
    // NaN until then: every histogram the dashboard shows was observed in this run.
    let histograms: BTreeSet<String> = queries
        .iter()
        .flat_map(|(_, expr)| metric_references(expr))
        .filter_map(|name| name.strip_suffix("_bucket").map(str::to_string))
        .collect();
    assert!(
        histograms.contains("evm_executor_head_latency_seconds"),
        "{histograms:?}"
    );
    for histogram in &histograms {
        prometheus.wait_for(
            &mut daemon,
            &format!("sum({histogram}_count) > 0"),
            QUERY_SETTLE_TIMEOUT,
        );
    }

    // A labelled series is born at its first sample, and a rate needs two: the queries get
    // a few scrapes to fill in.
    let started = Instant::now();
    loop {
        let empty: Vec<String> = queries
            .iter()
            .filter(|(place, expr)| dashboard_query(&prometheus, place, expr).is_empty())
            .map(|(place, expr)| format!("{place}: {expr}"))
            .collect();
        if empty.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < QUERY_SETTLE_TIMEOUT,
            "{} of {} dashboard queries returned no series on Prometheus within \
             {QUERY_SETTLE_TIMEOUT:?}:\n{}",
            empty.len(),
            queries.len(),
            empty.join("\n")
        );
        std::thread::sleep(HTTP_POLL);
    }

    let status = daemon.terminate(STOP_TIMEOUT);
    assert!(status.success(), "SIGTERM: {status}\n{}", daemon.stderr());
}
