//! A local anvil for the benchmark (started with `--no-mining`, killed on drop).

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::BenchError;

#[derive(Debug)]
pub struct AnvilProcess {
    child: Child,
    pub port: u16,
}

impl AnvilProcess {
    pub fn start(binary: &Path) -> Result<Self, BenchError> {
        Self::start_with(binary, &[])
    }

    /// As `start`, with more arguments for anvil.
    pub fn start_with(binary: &Path, extra: &[&str]) -> Result<Self, BenchError> {
        if !binary.exists() {
            return Err(BenchError::Setup(format!(
                "{} not found: run scripts/setup.sh",
                binary.display()
            )));
        }
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|e| BenchError::Setup(format!("no free port: {e}")))?;
            let child = Command::new(binary)
                .args([
                    "--port",
                    &port.to_string(),
                    "--host",
                    "127.0.0.1",
                    "--no-mining",
                    "--silent",
                ])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| {
                    BenchError::Setup(format!("cannot start {}: {e}", binary.display()))
                })?;
            let mut node = Self { child, port };
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(15) {
                if matches!(node.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                    return Ok(node);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = node.child.kill();
        }
        Err(BenchError::Setup("anvil did not start".into()))
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }
}

impl Drop for AnvilProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
