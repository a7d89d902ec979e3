//! The embedded store's durability rule: commits between durable syncs are kept by a clean
//! close (the daemon's kill -9 tests cover a crash between syncs).

use evm_executor::store::embedded::EmbeddedStore;
use primitives::store::{Store, WriteBatch};
use std::time::Duration;

#[test]
fn commits_between_syncs_survive_a_clean_close() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.redb");
    {
        let store = EmbeddedStore::open(&path)
            .expect("open")
            .with_sync_interval(Duration::from_secs(3600));
        // None of these commits is durable: the interval counts from the open.
        for n in 0..3u8 {
            let mut batch = WriteBatch::new();
            batch.set(format!("k{n}"), vec![n]);
            store.write(&batch).expect("write");
        }
    }
    let store = EmbeddedStore::open(&path).expect("reopen");
    for n in 0..3u8 {
        assert_eq!(store.get(&format!("k{n}")).expect("read"), Some(vec![n]));
    }
}

use crate::common::redis_server::RedisServer;
use evm_executor::config::PikaConfig;
use evm_executor::store::pika::PikaStore;
use std::collections::BTreeMap;

/// History keys (kept block by block in the file) of two blocks and a prefixed store, a
/// latest key, a key that only looks historical (a zero-padded number), and a record.
const KEYS: [&str; 10] = [
    "st:5:acc:0xAA",
    "st:5:stor:0xAA:0x01",
    "st:5:stor:0xAA:0x02",
    "st:6:acc:0xAA",
    "st:6:stor:0xAA:0x01",
    "st:50:acc:0xBB",
    "p:st:5:acc:0xAA",
    "st:latest:acc:0xAA",
    "st:05:acc:0xAA",
    "rec:5",
];

/// Prefixes that end before, inside and after the block part of history keys.
const PREFIXES: [&str; 15] = [
    "",
    "st:",
    "st:5",
    "st:5:",
    "st:5:stor:",
    "st:5:stor:0xAA:",
    "st:5:stor:0xAA:0x0",
    "st:6:",
    "st:50:",
    "p:",
    "p:st:5:acc:",
    "st:latest:",
    "st:0",
    "rec:",
    "st:7:",
];

/// Each key read with its value, and each prefix scanned with the keys found.
type Observed = (
    BTreeMap<String, Option<Vec<u8>>>,
    BTreeMap<String, Vec<String>>,
);

/// Every key of [`KEYS`] (and the one added by `set_if_absent`) with its value, and every
/// prefix of [`PREFIXES`] with the keys found under it, sorted.
fn observe(store: &dyn Store) -> Observed {
    let keys: Vec<String> = KEYS
        .iter()
        .chain(&["st:8:acc:0xDD"])
        .map(|k| k.to_string())
        .collect();
    let values = store.multi_get(&keys).expect("read");
    let scans = PREFIXES
        .iter()
        .map(|prefix| {
            let mut found = store.scan_prefix(prefix).expect("scan");
            found.sort();
            (prefix.to_string(), found)
        })
        .collect();
    (keys.into_iter().zip(values).collect(), scans)
}

/// The same writes on `store`: sets with and without expiry, overwrites, deletes of present
/// and absent keys, an expiry that passes, `set_if_absent` on history keys.
fn exercise(store: &dyn Store) -> Observed {
    let hour = Duration::from_secs(3600);
    let mut batch = WriteBatch::new();
    for (index, key) in KEYS.iter().enumerate() {
        batch.set_with_ttl(*key, format!("value {index}"), hour);
    }
    batch.set("st:latest:acc:0xAA", "no expiry");
    store.write(&batch).expect("first batch");

    let mut batch = WriteBatch::new();
    batch
        .set("st:5:acc:0xAA", "overwritten")
        .delete("st:5:stor:0xAA:0x02")
        .set_with_ttl(
            "st:6:stor:0xAA:0x01",
            "expires soon",
            Duration::from_secs(1),
        )
        .delete("st:7:acc:0xCC")
        .set_with_ttl("st:50:acc:0xBB", "first", hour)
        .set_with_ttl("st:50:acc:0xBB", "last", hour);
    store.write(&batch).expect("second batch");
    assert!(!store
        .set_if_absent("st:5:acc:0xAA", b"not set", hour)
        .expect("set_if_absent on a present key"));
    assert!(store
        .set_if_absent("st:8:acc:0xDD", b"set", hour)
        .expect("set_if_absent on an absent key"));
    std::thread::sleep(Duration::from_millis(1500));
    observe(store)
}

#[test]
fn history_keys_read_write_expire_and_scan_as_on_redis() {
    let server = RedisServer::start();
    let redis = PikaStore::connect(&PikaConfig {
        addr: server.addr(),
        ..PikaConfig::default()
    })
    .expect("connect to redis-server");
    let dir = tempfile::tempdir().expect("temp dir");
    let embedded = EmbeddedStore::open(&dir.path().join("store.redb")).expect("open");

    let (embedded_values, embedded_scans) = exercise(&embedded);
    let (redis_values, redis_scans) = exercise(&redis);
    assert_eq!(embedded_values, redis_values);
    assert_eq!(embedded_scans, redis_scans);
    // The expired key and the deleted one are gone; the block keeps its other keys.
    assert_eq!(embedded_values["st:6:stor:0xAA:0x01"], None);
    assert_eq!(
        embedded_scans["st:5:"],
        ["st:5:acc:0xAA", "st:5:stor:0xAA:0x01"]
    );

    // Deleting every key of a block leaves nothing of it.
    let mut batch = WriteBatch::new();
    batch.delete("st:6:acc:0xAA").delete("st:6:stor:0xAA:0x01");
    embedded.write(&batch).expect("delete block 6");
    assert!(embedded.scan_prefix("st:6:").expect("scan").is_empty());
}

#[test]
fn a_file_with_history_in_the_key_table_has_it_moved_on_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.redb");
    let live = [
        ("st:5:acc:0xAA", "account"),
        ("st:5:stor:0xAA:0x01", "slot"),
        ("st:6:acc:0xAA", "next block"),
        ("st:latest:acc:0xAA", "latest"),
        ("blk:hdr:5", "header"),
    ];
    {
        // The first layout: every key in one table, an 8-byte expiry (0: none) before each
        // value. One history key expired long ago.
        let db = redb::Database::create(&path).expect("create a first-layout file");
        let txn = db.begin_write().expect("begin write");
        {
            let definition: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("kv");
            let mut table = txn.open_table(definition).expect("open kv");
            let mut entries: Vec<(&str, u64, &str)> =
                live.iter().map(|(key, value)| (*key, 0, *value)).collect();
            entries.push(("st:5:stor:0xAA:0x02", 1, "expired"));
            for (key, expiry, value) in entries {
                let mut entry = expiry.to_be_bytes().to_vec();
                entry.extend_from_slice(value.as_bytes());
                table.insert(key, entry.as_slice()).expect("insert");
            }
        }
        txn.commit().expect("commit");
    }
    let expected: BTreeMap<String, Vec<u8>> = live
        .iter()
        .map(|(key, value)| (key.to_string(), value.as_bytes().to_vec()))
        .collect();
    let snapshot = |store: &EmbeddedStore| -> BTreeMap<String, Vec<u8>> {
        let keys = store.scan_prefix("").expect("scan");
        let values = store.multi_get(&keys).expect("read");
        keys.into_iter()
            .zip(values)
            .map(|(key, value)| (key, value.expect("a scanned key has a value")))
            .collect()
    };
    {
        let store = EmbeddedStore::open(&path).expect("open a first-layout file");
        assert_eq!(snapshot(&store), expected);
        store.delete("st:5:acc:0xAA").expect("delete a moved key");
    }
    // Reopened, the deleted key stays deleted (nothing is moved twice).
    let store = EmbeddedStore::open(&path).expect("reopen");
    let mut expected = expected;
    expected.remove("st:5:acc:0xAA");
    assert_eq!(snapshot(&store), expected);
}
