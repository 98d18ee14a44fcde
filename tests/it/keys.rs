//! Keys end to end: a guardian key in a Web3 secret-storage keystore written by `cast wallet`
//! (its password by `env:` and by `file:` reference) pauses an attack through `preempt run`;
//! and at `RUST_LOG=trace` neither the guardian key nor the relay-auth key (hex, with or
//! without `0x`, any case) nor the keystore password reaches stdout, stderr, the SQLite store
//! or the JSON-lines export.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use alloy::primitives::{Address, B256};
use preempt::devnet::{Scenario, dev_accounts};

use crate::support::{
    Devnet,
    guard::{GUARDIAN_KEY, RELAY_AUTH_KEY, wait_pending_from},
    relay::TestRelay,
    tools_dir,
};

const PASSWORD: &str = "correct horse battery staple 7F3B";

/// `cast wallet import` of the guardian key into `dir` (the format a team's own tooling writes).
fn cast_keystore(dir: &Path) -> PathBuf {
    let out = Command::new(tools_dir().join("bin/cast"))
        .args(["wallet", "import", "guardian", "--private-key", GUARDIAN_KEY, "--keystore-dir"])
        .arg(dir)
        .args(["--unsafe-password", PASSWORD])
        .output()
        .expect("run cast (scripts/setup.sh installs it)");
    assert!(out.status.success(), "cast: {}", String::from_utf8_lossy(&out.stderr));
    let path = dir.join("guardian");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("keystore written")).expect("json");
    assert_eq!(json["version"], 3, "Web3 secret storage v3");
    path
}

/// `preempt run` at trace level with stdout and stderr in files.
struct TracedGuard {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    store: PathBuf,
    jsonl: PathBuf,
}

impl TracedGuard {
    fn start(
        devnet: &Devnet,
        dir: &Path,
        guardian: &str,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let base = preempt::devnet::config_toml(
            &devnet.deployment,
            &devnet.anvil.ws_url(),
            "PREEMPT_GUARDIAN_KEY",
        );
        let base = base.replacen("key = \"env:PREEMPT_GUARDIAN_KEY\"", guardian, 1);
        let (store, jsonl) = (dir.join("incidents.sqlite"), dir.join("incidents.jsonl"));
        let config = format!(
            "{base}\n[incidents]\npath = \"{}\"\nstore = \"{}\"\n{extra}\n",
            jsonl.display(),
            store.display()
        );
        let path = dir.join("preempt.toml");
        std::fs::write(&path, config).expect("config");
        let (stdout, stderr) = (dir.join("stdout.log"), dir.join("stderr.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_preempt"))
            .args(["run", "--config"])
            .arg(&path)
            .env_remove("PREEMPT_GUARDIAN_KEY")
            .env_remove("PREEMPT_RELAY_AUTH_KEY")
            .envs(env.iter().copied())
            .env("RUST_LOG", "trace")
            .stdout(Stdio::from(std::fs::File::create(&stdout).expect("stdout file")))
            .stderr(Stdio::from(std::fs::File::create(&stderr).expect("stderr file")))
            .spawn()
            .expect("spawn preempt run");
        let guard = Self { child, stdout, stderr, store, jsonl };
        guard.wait(|l| l.contains("preempt::run") && l.contains(": ready"), "ready");
        guard
    }

    fn stderr_lines(&self) -> Vec<String> {
        let bytes = std::fs::read(&self.stderr).unwrap_or_default();
        String::from_utf8_lossy(&bytes).lines().map(str::to_string).collect()
    }

    fn wait(&self, pred: impl Fn(&str) -> bool, what: &str) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(40) {
            if self.stderr_lines().iter().any(|l| pred(l)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let lines = self.stderr_lines();
        let tail = &lines[lines.len().saturating_sub(60)..];
        panic!("preempt never logged {what}:\n{}", tail.join("\n"));
    }

    /// SIGTERM and wait; the exit code.
    fn stop(&mut self) -> Option<i32> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        None
    }

    /// Every file the guard wrote, as lower-case text.
    fn outputs(&self) -> Vec<(PathBuf, String)> {
        let mut files = vec![self.stdout.clone(), self.stderr.clone(), self.jsonl.clone()];
        // The store's write-ahead log may hold pages not yet checkpointed into the file.
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.store.clone().into_os_string();
            p.push(suffix);
            files.push(PathBuf::from(p));
        }
        files
            .into_iter()
            .filter(|p| p.exists())
            .map(|p| {
                let bytes = std::fs::read(&p).expect("read output");
                (p, String::from_utf8_lossy(&bytes).to_lowercase())
            })
            .collect()
    }
}

impl Drop for TracedGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn succeeded(devnet: &Devnet, hash: B256) -> bool {
    let receipt: serde_json::Value =
        devnet.rpc("eth_getTransactionReceipt", serde_json::json!([hash])).await;
    receipt["status"] == "0x1"
}

/// Sends the vault reentrancy attack; the guardian's pause must land first in the same block.
async fn attack_is_paused(devnet: &Devnet, guard: &TracedGuard) {
    let guardian: Address = dev_accounts()[1].address;
    let attack = devnet.send(Scenario::VaultReentrancyAttack).await;
    let pauses = wait_pending_from(devnet, guardian, 1, Duration::from_secs(30)).await;
    assert!(!pauses.is_empty(), "no pause from the keystore's key reached the pool");
    devnet.mine().await;
    let block: serde_json::Value =
        devnet.rpc("eth_getBlockByNumber", serde_json::json!(["latest", true])).await;
    let txs = block["transactions"].as_array().expect("txs");
    let at = |pred: &dyn Fn(&serde_json::Value) -> bool| txs.iter().position(pred);
    let pause =
        at(&|t| t["from"].as_str().and_then(|f| f.parse::<Address>().ok()) == Some(guardian))
            .expect("pause mined in the attack's block");
    let attack_at =
        at(&|t| t["hash"].as_str().and_then(|h| h.parse::<B256>().ok()) == Some(attack))
            .expect("attack mined");
    assert!(pause < attack_at, "pause at {pause}, attack at {attack_at}");
    assert!(!succeeded(devnet, attack).await, "the attack reverts against the paused vault");
    guard.wait(|l| l.contains(": pause landed"), "pause landed");
}

/// Each secret in every spelling a log or a file could hold it in.
fn assert_no_secret_in(guard: &TracedGuard, secrets: &[&str]) {
    let outputs = guard.outputs();
    assert!(outputs.len() >= 4, "stdout, stderr, the export and the store: {outputs:?}");
    let stderr = outputs.iter().find(|(p, _)| *p == guard.stderr).expect("stderr");
    assert!(stderr.1.lines().count() > 200, "trace level logs a lot: {}", stderr.1.lines().count());
    // The search sees what was written: the attacked contract's name is in the store and the log.
    let store_name =
        guard.store.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    assert!(
        outputs
            .iter()
            .any(|(p, t)| p.to_string_lossy().contains(&store_name) && t.contains("ethvault")),
        "the store holds the incident"
    );
    assert!(stderr.1.contains("ethvault"));
    for secret in secrets {
        // Lower-cased haystack: any case of the hex matches; without `0x` covers with `0x`.
        let needle = secret.trim_start_matches("0x").to_lowercase();
        for (path, text) in &outputs {
            assert!(!text.contains(&needle), "{} holds a secret", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystore_guardian_with_env_password_pauses_an_attack_and_leaks_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let keystore = cast_keystore(dir.path());
    let devnet = Devnet::start().await;
    let guardian = format!(
        "keystore = \"{}\"\npassword = \"env:PREEMPT_KEYSTORE_PASSWORD\"",
        keystore.display()
    );
    let mut guard = TracedGuard::start(
        &devnet,
        dir.path(),
        &guardian,
        "",
        &[("PREEMPT_KEYSTORE_PASSWORD", PASSWORD)],
    );
    attack_is_paused(&devnet, &guard).await;
    assert_eq!(guard.stop(), Some(0));
    assert_no_secret_in(&guard, &[GUARDIAN_KEY, PASSWORD]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystore_guardian_with_file_password_pauses_an_attack_and_leaks_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let keystore = cast_keystore(dir.path());
    let password = dir.path().join("keystore.password");
    // A trailing newline, as `echo` writes it, is not part of the password.
    std::fs::write(&password, format!("{PASSWORD}\n")).expect("password file");
    let devnet = Devnet::start().await;
    let guardian = format!(
        "keystore = \"{}\"\npassword = \"file:{}\"",
        keystore.display(),
        password.display()
    );
    let mut guard = TracedGuard::start(&devnet, dir.path(), &guardian, "", &[]);
    attack_is_paused(&devnet, &guard).await;
    assert_eq!(guard.stop(), Some(0));
    assert_no_secret_in(&guard, &[GUARDIAN_KEY, PASSWORD]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_trace_level_neither_the_guardian_nor_the_relay_key_is_written_anywhere() {
    let dir = tempfile::tempdir().expect("dir");
    let devnet = Devnet::start().await;
    let relay = TestRelay::start(&devnet.anvil.http_url());
    let extra = format!(
        "[[relay]]\nname = \"test-relay\"\nurl = \"{}\"\n\n[relay_auth]\nkey = \"env:PREEMPT_RELAY_AUTH_KEY\"\n",
        relay.url()
    );
    // The guardian key in upper case with `0x`: loading takes any case.
    let upper = format!("0x{}", GUARDIAN_KEY.trim_start_matches("0x").to_uppercase());
    let mut guard = TracedGuard::start(
        &devnet,
        dir.path(),
        "key = \"env:PREEMPT_GUARDIAN_KEY\"",
        &extra,
        &[("PREEMPT_GUARDIAN_KEY", &upper), ("PREEMPT_RELAY_AUTH_KEY", RELAY_AUTH_KEY)],
    );
    attack_is_paused(&devnet, &guard).await;
    assert!(!relay.bundles().is_empty(), "the relay got the pause, signed with the relay key");
    assert_eq!(relay.rejected(), 0);
    assert_eq!(guard.stop(), Some(0));
    assert_no_secret_in(&guard, &[GUARDIAN_KEY, RELAY_AUTH_KEY]);
}

#[test]
fn the_same_key_for_guardian_and_relay_auth_is_refused_naming_file_and_key() {
    let dir = tempfile::tempdir().expect("dir");
    let keystore = cast_keystore(dir.path());
    // Different references, the same key: caught once both are loaded, before anything runs.
    let config = dir.path().join("preempt.toml");
    std::fs::write(
        &config,
        format!(
            "[[node]]\nurl = \"ws://127.0.0.1:9\"\n\n[guardian]\nkeystore = \"{}\"\npassword = \"env:PREEMPT_KEYSTORE_PASSWORD\"\n\n[relay_auth]\nkey = \"env:PREEMPT_RELAY_AUTH_KEY\"\n\n[[relay]]\nurl = \"http://127.0.0.1:9\"\n\n[[protect]]\nname = \"Vault\"\naddress = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n",
            keystore.display()
        ),
    )
    .expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_preempt"))
        .args(["run", "--config"])
        .arg(&config)
        .env("PREEMPT_KEYSTORE_PASSWORD", PASSWORD)
        .env("PREEMPT_RELAY_AUTH_KEY", GUARDIAN_KEY)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}: key `relay_auth.key`: holds the guardian's key",
            config.display()
        )),
        "{err}"
    );
    assert!(!err.to_lowercase().contains(GUARDIAN_KEY.trim_start_matches("0x")), "{err}");
    assert!(!err.contains(PASSWORD));
}
