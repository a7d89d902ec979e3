//! The HTTP endpoint on `metrics.listen_addr`: `/metrics` (Prometheus text format), `/health`
//! (the process is alive) and `/ready` (store reachable, leader or healthy standby, lag under
//! `metrics.ready_max_lag`). Answers come from in-memory gauges on the server's own thread, so
//! they take milliseconds however busy the pipeline is.

use pipeline::metrics::metrics;
use prometheus::{Encoder, TextEncoder};
use std::net::SocketAddr;

/// Why readiness is false, or `None` when ready.
pub fn not_ready_reason(max_lag: u64) -> Option<String> {
    let m = metrics();
    if m.store_up.get() != 1 {
        return Some("store unreachable".into());
    }
    let lag = m.execution_lag.get();
    if m.leader.get() == 1 && lag > max_lag as i64 {
        return Some(format!("execution lag {lag} blocks exceeds {max_lag}"));
    }
    None
}

/// Serve the endpoints on `addr` on a background thread.
pub fn serve(addr: SocketAddr, max_lag: u64) -> Result<(), String> {
    let server =
        tiny_http::Server::http(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let (status, body, content_type) =
                    match request.url().split('?').next().unwrap_or_default() {
                        "/metrics" => {
                            let mut body = Vec::new();
                            let families = metrics().registry.gather();
                            match TextEncoder::new().encode(&families, &mut body) {
                                Ok(()) => (200, body, "text/plain; version=0.0.4"),
                                Err(e) => (500, e.to_string().into_bytes(), "text/plain"),
                            }
                        }
                        "/health" => (200, b"ok\n".to_vec(), "text/plain"),
                        "/ready" => match not_ready_reason(max_lag) {
                            None => (200, b"ready\n".to_vec(), "text/plain"),
                            Some(reason) => (
                                503,
                                format!("not ready: {reason}\n").into_bytes(),
                                "text/plain",
                            ),
                        },
                        _ => (404, b"not found\n".to_vec(), "text/plain"),
                    };
                let header =
                    tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes());
                let mut response = tiny_http::Response::from_data(body).with_status_code(status);
                if let Ok(header) = header {
                    response = response.with_header(header);
                }
                // A client that hung up is not the server's problem.
                let _ = request.respond(response);
            }
        })
        .map_err(|e| format!("cannot start the HTTP thread: {e}"))?;
    Ok(())
}
