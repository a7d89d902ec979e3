//! The embedded store's durability rule: commits between durable syncs are kept by a clean
//! close (the daemon's kill -9 tests cover a crash between syncs).

use evm_executor::store::embedded::EmbeddedStore;
use stages::store::{Store, WriteBatch};
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
