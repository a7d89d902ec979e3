//! The leader lease: several replicas share one store, one executes.
//!
//! The lease is the key `lock:leader` holding the leader's token, set with `SET NX EX` and
//! renewed every third of its lifetime. A standby retries acquisition until the key expires.
//! Each renewal moves the leader's write deadline to renewal time + two thirds of the lease;
//! the pipeline refuses every write past it, so a leader that cannot renew (store unreachable,
//! process stalled) stops writing a third of a lease before anyone else can take over.
//!
//! Limits: Pika and Redis have no fencing tokens and Pika has no scripting, so a renewal is a
//! GET followed by a SET: a leader that stalls for longer than the lease between the two could
//! overwrite a successor's lease. The write deadline and the 1/3 margin make that need a stall
//! of more than a third of the lease inside one renewal; clocks are only compared within one
//! process.

use crossbeam_channel::{Receiver, RecvTimeoutError};
use primitives::clock::unix_now_ms;
use primitives::keys::Keys;
use primitives::store::{Store, StoreError, WriteBatch};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where the kernel keeps the host name (`uname -n`).
const KERNEL_HOST_NAME: &str = "/proc/sys/kernel/hostname";

/// The host name for the lease token: `from_env` (`HOSTNAME`, which shells and Kubernetes set)
/// when present, else the kernel's, else `unknown-host`.
fn host_name(from_env: Option<String>) -> String {
    from_env
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::fs::read_to_string(KERNEL_HOST_NAME)
                .ok()
                .map(|name| name.trim().to_string())
                .filter(|name| !name.is_empty())
        })
        .unwrap_or_else(|| "unknown-host".into())
}

/// One process's claim on the leader lease.
pub struct LeaderLease {
    store: Arc<dyn Store>,
    key: String,
    token: String,
    ttl: Duration,
}

impl LeaderLease {
    /// A lease of `ttl` on `keys`' `lock:leader` for this process.
    pub fn new(store: Arc<dyn Store>, keys: &Keys, ttl: Duration) -> Self {
        let host = host_name(std::env::var("HOSTNAME").ok());
        let token = format!("{host}:{}:{}", std::process::id(), unix_now_ms());
        Self {
            store,
            key: keys.leader_lock().into_string(),
            token,
            ttl,
        }
    }

    /// The write deadline after a renewal now.
    fn deadline_from_now(&self) -> u64 {
        unix_now_ms() + (self.ttl.as_millis() as u64) * 2 / 3
    }

    /// Wait until this process holds the lease; `None` when `shutdown` was set first. Returns the
    /// write deadline to hand to the pipeline.
    pub fn acquire(&self, shutdown: &AtomicBool) -> Result<Option<Arc<AtomicU64>>, StoreError> {
        let mut announced = false;
        while !shutdown.load(Ordering::Relaxed) {
            if self
                .store
                .set_if_absent(&self.key, self.token.as_bytes(), self.ttl)?
            {
                tracing::info!(token = %self.token, "leader lease acquired");
                return Ok(Some(Arc::new(AtomicU64::new(self.deadline_from_now()))));
            }
            if !announced {
                let holder = self
                    .store
                    .get(&self.key)?
                    .map(|v| String::from_utf8_lossy(&v).into_owned());
                tracing::info!(holder = ?holder, "standby: another replica holds the leader lease");
                announced = true;
            }
            std::thread::sleep(self.ttl / 4);
        }
        Ok(None)
    }

    /// Renew the lease every third of its lifetime until `done` disconnects, moving `deadline`
    /// forward after each renewal; when the lease is found in other hands, the deadline is
    /// dropped to zero at once (the pipeline then stops writing).
    pub fn keep(&self, deadline: &AtomicU64, done: &Receiver<()>) {
        let step = self.ttl / 3;
        while done.recv_timeout(step) == Err(RecvTimeoutError::Timeout) {
            match self.store.get(&self.key) {
                Ok(Some(holder)) if holder == self.token.as_bytes() => {
                    let renewed_at = self.deadline_from_now();
                    let mut batch = WriteBatch::new();
                    batch.set_with_ttl(self.key.clone(), self.token.as_bytes(), self.ttl);
                    match self.store.write(&batch) {
                        Ok(()) => deadline.store(renewed_at, Ordering::Release),
                        Err(error) => tracing::warn!(%error, "leader lease renewal failed"),
                    }
                }
                Ok(holder) => {
                    deadline.store(0, Ordering::Release);
                    tracing::error!(
                        holder = ?holder.map(|v| String::from_utf8_lossy(&v).into_owned()),
                        "leader lease lost to another replica; stopping writes"
                    );
                    return;
                }
                Err(error) => tracing::warn!(%error, "leader lease renewal failed"),
            }
        }
    }

    /// Give the lease up (only if still ours), so a standby can take over at once.
    pub fn release(&self) {
        if let Ok(Some(holder)) = self.store.get(&self.key) {
            if holder == self.token.as_bytes() {
                let _ = self.store.delete(&self.key);
                tracing::info!("leader lease released");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without `HOSTNAME` the token carries the kernel's host name, as `uname -n` prints it.
    #[test]
    fn host_name_falls_back_to_the_kernel_s() {
        let uname = std::process::Command::new("uname")
            .arg("-n")
            .output()
            .expect("run uname -n");
        let kernel = String::from_utf8_lossy(&uname.stdout).trim().to_string();
        assert!(!kernel.is_empty(), "uname -n printed nothing");
        assert_eq!(host_name(None), kernel);
        assert_eq!(host_name(Some(String::new())), kernel);
        assert_eq!(host_name(Some("pod-7".into())), "pod-7");
    }
}
