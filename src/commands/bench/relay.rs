//! `bench --relay`: a TCP relay between the executor and the store server it benchmarks, so the
//! cost of a store one network hop away (Pika on another node) is measured on one machine. Each
//! client connection gets its own connection to the server and, per direction, a thread that
//! reads and a thread that writes what was read once it has been held for the one-way delay (a
//! delay line: bytes in flight overlap, as on a wire). When either side closes, both are closed,
//! and the client's next connection reaches the server afresh (so the relay outlives a server
//! restart). It also measures the round trip it adds: PING straight to the server against PING
//! through the relay. A sleep overshoots by the timer's slack (some 50 µs on Linux), so the
//! round trip it adds is about twice the delay plus twice the slack: the measure is the figure.
//!
//! Bench tooling only: the daemon never runs through it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes one copy step moves at most (a pipelined write batch crosses in a few steps).
const COPY_BUFFER: usize = 64 * 1024;
/// How long the relay waits to reach the server for a new client before closing the client.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A server that does not answer a PING within this is reported as unreachable.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// PING in RESP, as a client library sends it.
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";
/// The reply it expects.
const PONG: &[u8] = b"+PONG\r\n";

/// A relay listening on an ephemeral port of 127.0.0.1 and forwarding to one server; dropping
/// it stops it and closes every connection it carries.
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// What the accepting thread and the copying threads share with the handle.
struct Shared {
    upstream: SocketAddr,
    /// How long bytes are held in each direction.
    delay: Duration,
    stopping: AtomicBool,
    /// Both sockets of every live connection, by connection id, to close them on drop.
    live: Mutex<Vec<(u64, TcpStream, TcpStream)>>,
    next_id: AtomicU64,
}

impl Relay {
    /// Start relaying to `upstream`, holding bytes for `delay` in each direction.
    pub fn start(upstream: SocketAddr, delay: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            delay,
            stopping: AtomicBool::new(false),
            live: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
        });
        let accepting = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("bench-relay".into())
            .spawn(move || accept_loop(&listener, &accepting))?;
        Ok(Self {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections open through the relay now.
    pub fn open_connections(&self) -> usize {
        self.shared.lock_live().len()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept; it sees `stopping` and returns.
        let _ = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for (_, client, server) in self.shared.lock_live().drain(..) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }
}

impl Shared {
    fn lock_live(&self) -> std::sync::MutexGuard<'_, Vec<(u64, TcpStream, TcpStream)>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Close connection `id`'s two sockets (both copy threads then end) and forget it.
    fn close(&self, id: u64) {
        let mut live = self.lock_live();
        if let Some(at) = live.iter().position(|(live_id, _, _)| *live_id == id) {
            let (_, client, server) = live.swap_remove(at);
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if let Err(error) = relay_connection(client, shared) {
            tracing::debug!(%error, upstream = %shared.upstream, "relay: connection not relayed");
        }
    }
}

/// Connect `client` to the server and start its two copy threads; on failure the client is
/// dropped (closed), as a server that is down would close it.
fn relay_connection(client: TcpStream, shared: &Arc<Shared>) -> std::io::Result<()> {
    let server = TcpStream::connect_timeout(&shared.upstream, CONNECT_TIMEOUT)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    shared
        .lock_live()
        .push((id, client.try_clone()?, server.try_clone()?));
    for (from, to, name) in [
        (client.try_clone()?, server.try_clone()?, "bench-relay-up"),
        (server, client, "bench-relay-down"),
    ] {
        let delay = shared.delay;
        let closing = Arc::clone(shared);
        if delay.is_zero() {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    copy(from, to);
                    closing.close(id);
                })?;
            continue;
        }
        let (chunks, held) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("{name}-read"))
            .spawn(move || read_chunks(from, &chunks))?;
        std::thread::Builder::new()
            .name(format!("{name}-write"))
            .spawn(move || {
                write_when_due(&held, to, delay);
                closing.close(id);
            })?;
    }
    Ok(())
}

/// Copy bytes from `from` to `to` until either side closes or fails.
fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = vec![0u8; COPY_BUFFER];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(read) => {
                if to.write_all(&buffer[..read]).is_err() {
                    return;
                }
            }
        }
    }
}

/// Send what `from` delivers, stamped with when it arrived, until it closes or fails (then the
/// channel closes, and the writer ends after what is still held).
fn read_chunks(mut from: TcpStream, chunks: &mpsc::Sender<(Instant, Vec<u8>)>) {
    let mut buffer = vec![0u8; COPY_BUFFER];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(read) => {
                if chunks
                    .send((Instant::now(), buffer[..read].to_vec()))
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Write each chunk to `to` once `delay` has passed since it arrived.
fn write_when_due(held: &mpsc::Receiver<(Instant, Vec<u8>)>, mut to: TcpStream, delay: Duration) {
    for (arrived, chunk) in held {
        let wait = (arrived + delay).saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        if to.write_all(&chunk).is_err() {
            return;
        }
    }
}

/// The median round trip of `samples` PINGs, one at a time on one connection to `addr`.
pub fn ping_round_trip(addr: SocketAddr, samples: usize) -> std::io::Result<Duration> {
    let mut stream = TcpStream::connect_timeout(&addr, PING_TIMEOUT)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(PING_TIMEOUT))?;
    let mut reply = [0u8; PONG.len()];
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples.max(1) {
        let started = Instant::now();
        stream.write_all(PING)?;
        stream.read_exact(&mut reply)?;
        times.push(started.elapsed());
        if reply != PONG {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{addr} answered PING with {:?}",
                    String::from_utf8_lossy(&reply)
                ),
            ));
        }
    }
    times.sort_unstable();
    Ok(times[times.len() / 2])
}
