//! Test support: a real anvil on a free loopback port with `--no-mining`, the demo protocol
//! deployed on it, and its config; anvil is stopped when the `Devnet` is dropped.
#![allow(dead_code, unreachable_pub)]

pub mod fake_node;
pub mod guard;
pub mod http;
pub mod proxy;
pub mod receiver;
pub mod relay;

use std::path::PathBuf;

use preempt::{
    bench::AnvilProcess,
    config::Config,
    devnet::{Deployment, Scenario, deploy, send_scenario},
};

/// Init code of a fresh `VaultReentrancyAttack` aimed at `vault` (its constructor argument), as
/// `0x…` hex from the fixture artifact.
pub fn drainer_init_code(vault: alloy::primitives::Address) -> String {
    let artifact: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/artifacts/VaultReentrancyAttack.json"
        ))
        .expect("artifact"),
    )
    .expect("json");
    let code = artifact["bytecode"].as_str().expect("bytecode").trim_start_matches("0x");
    format!("0x{code}{:0>64}", alloy::primitives::hex::encode(vault))
}

/// Where scripts/setup.sh installed anvil.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("PREEMPT_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools"))
}

/// A running anvil with `--no-mining` on a free loopback port; killed on drop.
pub struct Anvil {
    inner: AnvilProcess,
    pub port: u16,
}

impl Anvil {
    pub fn start_no_mining() -> Self {
        let inner = AnvilProcess::start(&tools_dir().join("bin/anvil"))
            .unwrap_or_else(|e| panic!("{e} (run scripts/setup.sh)"));
        Self { port: inner.port, inner }
    }

    pub fn http_url(&self) -> String {
        self.inner.http_url()
    }

    pub fn ws_url(&self) -> String {
        self.inner.ws_url()
    }
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

    /// A fork of the node at its head, and the env of the next block (12 s later).
    pub async fn fork_at_head(
        &self,
    ) -> (std::sync::Arc<preempt::fork::ForkCache>, preempt::simulate::SimBlock, u64) {
        use alloy::providers::Provider;
        let node = preempt::fork::NodeClient::connect("bench", &self.anvil.http_url())
            .await
            .expect("node");
        let number = node.latest_block_number().await.expect("head");
        let header = node
            .provider()
            .get_block_by_number(number.into())
            .await
            .expect("rpc")
            .expect("head block")
            .header;
        let chain_id = node.provider().get_chain_id().await.expect("chain id");
        let block = preempt::simulate::SimBlock::pending_after(&header, header.timestamp + 12);
        (
            std::sync::Arc::new(preempt::fork::ForkCache::new(header.number, Some(node))),
            block,
            chain_id,
        )
    }

    pub async fn mine(&self) {
        let _: serde_json::Value = self.rpc("evm_mine", serde_json::json!([])).await;
    }
}
