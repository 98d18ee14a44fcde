//! `/metrics` over HTTP/1.1 on `[metrics] listen`: a small tokio handler that renders the
//! guard's recorder per request, plus the upkeep timer; both end with the guard's cancel token.

use std::{net::SocketAddr, time::Duration};

use thiserror::Error;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

use super::{Telemetry, UPKEEP_EVERY};

/// A request head larger than this is not a scrape.
const MAX_REQUEST: usize = 8 * 1024;
/// A client that sends no full request head within this is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("metrics: cannot listen on {addr} (`[metrics] listen`): {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// The bound `/metrics` listener; `run` serves it.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    telemetry: Telemetry,
}

impl MetricsServer {
    /// Binds at start, so a taken port fails the guard before `ready`, naming the address.
    pub async fn bind(addr: SocketAddr, telemetry: Telemetry) -> Result<Self, ServeError> {
        let listener =
            TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
        Ok(Self { listener, telemetry })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `cancel`; each connection on its own task, one request each.
    pub async fn run(self, cancel: CancellationToken) {
        let mut upkeep = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = upkeep.tick() => self.telemetry.upkeep(),
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let telemetry = self.telemetry.clone();
                        tokio::spawn(answer(stream, telemetry));
                    }
                    Err(e) => tracing::debug!(error = %e, "metrics: accept failed"),
                },
            }
        }
    }
}

/// Runs only the upkeep timer (no `[metrics]` section: nothing scrapes, samples still fold).
pub async fn upkeep_only(telemetry: Telemetry, cancel: CancellationToken) {
    let mut upkeep = tokio::time::interval(UPKEEP_EVERY);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = upkeep.tick() => telemetry.upkeep(),
        }
    }
}

async fn answer(mut stream: TcpStream, telemetry: Telemetry) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    })
    .await;
    if !matches!(read, Ok(true)) {
        return;
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = path.split('?').next().unwrap_or_default();
    let (status, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", telemetry.render()),
        ("GET", _) => ("404 Not Found", "only /metrics is served\n".to_string()),
        _ => ("405 Method Not Allowed", "GET /metrics\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn metrics_are_served_over_http_and_other_paths_are_not() {
        let telemetry = Telemetry::new();
        telemetry.counter("preempt_served_total", &[]).increment(7);
        let server = MetricsServer::bind("127.0.0.1:0".parse().expect("addr"), telemetry)
            .await
            .expect("binds");
        let addr = server.local_addr().expect("bound");
        let cancel = CancellationToken::new();
        tokio::spawn(server.run(cancel.clone()));
        let get = |path: &'static str| async move {
            let mut s = TcpStream::connect(addr).await.expect("connects");
            let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
            s.write_all(req.as_bytes()).await.expect("writes");
            let mut out = String::new();
            s.read_to_string(&mut out).await.expect("reads");
            out
        };
        let ok = get("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("preempt_served_total 7"), "{ok}");
        assert!(get("/").await.starts_with("HTTP/1.1 404"));
        cancel.cancel();
    }

    #[tokio::test]
    async fn a_taken_port_is_an_error_naming_the_address() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = taken.local_addr().expect("addr");
        let err = MetricsServer::bind(addr, Telemetry::new()).await.expect_err("taken");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
