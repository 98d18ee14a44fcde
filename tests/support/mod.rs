//! Test support: a real anvil on a free loopback port with `--no-mining`, the demo protocol
//! deployed on it, and its config; anvil is stopped when the `Devnet` is dropped.
#![allow(dead_code, unreachable_pub)]

pub mod guard;
pub mod proxy;
pub mod relay;

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use preempt::{
    config::Config,
    devnet::{Deployment, Scenario, deploy, send_scenario},
};

/// Where scripts/setup.sh installed anvil.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("PREEMPT_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools"))
}

/// A running anvil; killed on drop.
pub struct Anvil {
    child: Child,
    pub port: u16,
}

impl Anvil {
    pub fn start_no_mining() -> Self {
        let anvil = tools_dir().join("bin/anvil");
        assert!(anvil.exists(), "{} missing: run scripts/setup.sh", anvil.display());
        for _attempt in 0..5 {
            let port = free_port();
            let child = Command::new(&anvil)
                .args([
                    "--port",
                    &port.to_string(),
                    "--host",
                    "127.0.0.1",
                    "--no-mining",
                    "--silent",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn anvil");
            let mut node = Self { child, port };
            if node.wait_ready(Duration::from_secs(15)) {
                return node;
            }
            let _ = node.child.kill();
        }
        panic!("anvil did not start");
    }

    fn wait_ready(&mut self, limit: Duration) -> bool {
        let started = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        while started.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// anvil with the demo protocol deployed, and a config protecting it.
pub struct Devnet {
    pub anvil: Anvil,
    pub deployment: Deployment,
    pub config: Config,
    pub config_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Devnet {
    pub async fn start() -> Self {
        let anvil = Anvil::start_no_mining();
        let deployment = deploy(&anvil.http_url()).await.expect("deploy the demo protocol");
        let text =
            preempt::devnet::config_toml(&deployment, &anvil.ws_url(), "PREEMPT_GUARDIAN_KEY");
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("preempt.toml");
        std::fs::write(&config_path, &text).expect("write config");
        let config = Config::load(&config_path).expect("generated config is valid");
        Self { anvil, deployment, config, config_path, _dir: dir }
    }

    pub async fn send(&self, scenario: Scenario) -> alloy::primitives::B256 {
        send_scenario(&self.anvil.http_url(), &self.deployment, scenario)
            .await
            .unwrap_or_else(|e| panic!("send {}: {e}", scenario.name()))
    }

    pub async fn rpc<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: serde_json::Value,
    ) -> T {
        use alloy::providers::{Provider, ProviderBuilder};
        let provider =
            ProviderBuilder::new().connect_http(self.anvil.http_url().parse().expect("url"));
        let params: Vec<serde_json::Value> = match params {
            serde_json::Value::Array(v) => v,
            other => vec![other],
        };
        let value: serde_json::Value = provider
            .raw_request(method.to_string().into(), params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{method}: unexpected answer: {e}"))
    }

    /// Empties the mempool, so the next scenario runs on the deployed state alone.
    pub async fn drop_pending(&self) {
        let _: serde_json::Value =
            self.rpc("anvil_dropAllTransactions", serde_json::json!([])).await;
    }

    pub async fn mine(&self) {
        let _: serde_json::Value = self.rpc("evm_mine", serde_json::json!([])).await;
    }
}
