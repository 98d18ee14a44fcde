//! A local anvil on a free loopback port (`--no-mining`, killed on drop): the one start loop
//! the bench, the tests and the corpus chain builder share.

use std::{
    ffi::{OsStr, OsString},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use super::BenchError;

/// Start attempts (a port picked free can be taken before anvil binds it).
const ATTEMPTS: usize = 5;
/// How long one attempt waits for anvil's port to open.
const READY_WITHIN: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub struct AnvilProcess {
    child: Child,
    pub port: u16,
}

impl AnvilProcess {
    pub fn start(binary: &Path) -> Result<Self, BenchError> {
        Self::start_with(binary, &[] as &[&str])
    }

    /// As `start`, with more arguments for anvil.
    pub fn start_with<S: AsRef<OsStr>>(binary: &Path, extra: &[S]) -> Result<Self, BenchError> {
        if !binary.exists() {
            return Err(BenchError::Setup(format!(
                "{} not found: run scripts/setup.sh",
                binary.display()
            )));
        }
        let extra: Vec<OsString> = extra.iter().map(|a| a.as_ref().to_owned()).collect();
        for _ in 0..ATTEMPTS {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|e| BenchError::Setup(format!("no free port: {e}")))?;
            let child = Command::new(binary)
                .args(["--port", &port.to_string(), "--host", "127.0.0.1", "--no-mining"])
                .arg("--silent")
                .args(&extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| {
                    BenchError::Setup(format!("cannot start {}: {e}", binary.display()))
                })?;
            let mut node = Self { child, port };
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let started = Instant::now();
            while started.elapsed() < READY_WITHIN {
                if matches!(node.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                    return Ok(node);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // Dropping `node` kills and reaps this attempt's process.
        }
        Err(BenchError::Setup("anvil did not start".into()))
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// The process id, to signal it (e.g. SIGINT, so that anvil writes `--dump-state`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status once it has exited (`Ok(None)` while it runs).
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }
}

impl Drop for AnvilProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
