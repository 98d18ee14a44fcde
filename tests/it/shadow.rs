//! `preempt shadow` on real anvil: replaying a chain of the corpus's honest traffic (built once
//! by `preempt devnet corpus-chain`, loaded with its history into a fresh anvil per test), the
//! chain's last block holding one corpus attack, the live pipeline with a pending attack, and
//! bad arguments.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use alloy::primitives::B256;
use preempt::devnet::Scenario;
use serde_json::Value;

use crate::support::{Devnet, tools_dir};

/// The attack mined after the honest traffic: one the current rules catch.
const ATTACK: &str = "eth-bank-withdrawall-reentrancy";
/// Blocks of honest traffic asked for.
const HONEST_BLOCKS: u64 = 250;

/// The chain every replay test reads: built on first use, once per test run.
struct Chain {
    dir: PathBuf,
    manifest: Value,
}

impl Chain {
    fn u64(&self, key: &str) -> u64 {
        self.manifest[key].as_u64().unwrap_or_else(|| panic!("chain.json {key}: {}", self.manifest))
    }

    fn config(&self) -> PathBuf {
        self.dir.join("preempt.toml")
    }

    fn attack_tx(&self) -> B256 {
        self.manifest["attack"]["txs"][0].as_str().expect("attack tx").parse().expect("hash")
    }
}

fn chain() -> &'static Chain {
    static CHAIN: OnceLock<Chain> = OnceLock::new();
    CHAIN.get_or_init(|| {
        // Under the target dir (not a temp dir a static never removes): rebuilt on every run.
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shadow-chain");
        let _ = std::fs::remove_dir_all(&dir);
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_preempt"))
            .args(["devnet", "corpus-chain", "--out"])
            .arg(&dir)
            .args(["--blocks", &HONEST_BLOCKS.to_string(), "--attack", ATTACK])
            .env("PREEMPT_TOOLS", tools_dir())
            .output()
            .expect("run preempt devnet corpus-chain");
        assert_eq!(
            out.status.code(),
            Some(0),
            "corpus-chain:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("corpus chain built in {:.1} s", started.elapsed().as_secs_f64());
        let text = std::fs::read_to_string(dir.join("chain.json")).expect("chain.json");
        Chain { dir, manifest: serde_json::from_str(&text).expect("chain.json is JSON") }
    })
}

/// anvil serving a dumped chain with its history; killed on drop.
struct LoadedAnvil {
    child: Child,
    port: u16,
}

impl LoadedAnvil {
    fn start(state: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let child = Command::new(tools_dir().join("bin/anvil"))
            .args(["--port", &port.to_string(), "--host", "127.0.0.1", "--no-mining", "--silent"])
            .arg("--load-state")
            .arg(state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start anvil (run scripts/setup.sh)");
        let mut node = Self { child, port };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(matches!(node.child.try_wait(), Ok(None)), "anvil exited loading {state:?}");
            assert!(started.elapsed() < Duration::from_secs(60), "anvil did not load {state:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for LoadedAnvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn preempt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_preempt"))
        .args(args)
        // Shadow never needs the guardian key: make sure none is there to be used.
        .env_remove("PREEMPT_GUARDIAN_KEY")
        .output()
        .expect("run preempt")
}

/// `preempt shadow` over `from..=to` of the chain, on a fresh anvil holding it.
fn shadow_range(chain: &Chain, from: u64, to: u64, json: bool) -> Output {
    let node = LoadedAnvil::start(&chain.dir.join("state.json"));
    let config = chain.config();
    let (rpc, from, to) = (node.http_url(), from.to_string(), to.to_string());
    let mut args = vec!["shadow", "--config", config.to_str().expect("utf-8 path"), "--rpc", &rpc];
    args.extend(["--from-block", &from, "--to-block", &to]);
    if json {
        args.push("--json");
    }
    preempt(&args)
}

fn report_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "shadow --json prints JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("a count: {v}"))
}

/// The txs a report would have paused, as (tx, contract name).
fn pauses(report: &Value) -> Vec<(B256, String)> {
    report["pauses"]
        .as_array()
        .expect("pauses")
        .iter()
        .map(|p| {
            (
                p["tx"].as_str().expect("tx").parse().expect("hash"),
                p["contract_name"].as_str().expect("name").to_string(),
            )
        })
        .collect()
}

#[test]
fn corpus_chain_holds_every_honest_scenario_in_order_then_the_attack_last() {
    let chain = chain();
    let (from, honest_to, to) =
        (chain.u64("from_block"), chain.u64("honest_to_block"), chain.u64("to_block"));
    assert!(chain.u64("honest_blocks") >= HONEST_BLOCKS, "{}", chain.manifest);
    assert_eq!(honest_to + 1 - from, chain.u64("honest_blocks"));
    assert!(chain.u64("honest_txs") >= chain.u64("honest_blocks"), "a tx or more a block");

    // Round 0 is every honest scenario of the corpus, in corpus order.
    let list = preempt(&["devnet", "corpus", "--list"]);
    let honest: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            (words.next()? == "honest").then(|| name.to_string())
        })
        .collect();
    assert!(honest.len() >= 30, "{honest:?}");
    let scenarios = chain.manifest["scenarios"].as_array().expect("scenarios");
    let round0: Vec<&str> = scenarios
        .iter()
        .filter(|s| {
            s["round"] == 0 && !s["name"].as_str().unwrap_or_default().starts_with("top-up")
        })
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(round0, honest, "skipped: {}", chain.manifest["skipped"]);
    // Scenarios run back to back: their blocks tile the honest range.
    let mut next = from;
    for s in scenarios {
        assert_eq!(n(&s["first_block"]), next, "{s}");
        next = n(&s["last_block"]) + 1;
    }
    assert_eq!(next, honest_to + 1);

    // The attack is the last block's, and the last block is the chain's head.
    let attack = &chain.manifest["attack"];
    assert_eq!(attack["name"], ATTACK);
    assert_eq!((n(&attack["block"]), to), (honest_to + 1, honest_to + 1));

    // The plain configs: the whole corpus, and each shape's, all valid, none with claims.
    for rel in std::iter::once("preempt.toml".to_string()).chain(
        chain.manifest["configs"]
            .as_object()
            .expect("configs")
            .values()
            .map(|v| v.as_str().expect("path").to_string()),
    ) {
        let path = chain.dir.join(&rel);
        let config = preempt::config::Config::load(&path).expect("a valid config");
        assert!(!config.protected.is_empty(), "{rel}");
        assert!(config.protected.iter().all(|p| p.claims.is_empty() && p.invariants.is_empty()));
    }
    assert_eq!(chain.manifest["configs"].as_object().expect("configs").len(), 10);
}

/// The target: zero would-pause verdicts on honest traffic with the plain config.
#[test]
fn shadow_over_the_honest_corpus_chain_reports_no_would_pause() {
    let chain = chain();
    let out = shadow_range(chain, chain.u64("from_block"), chain.u64("honest_to_block"), true);
    let report = report_of(&out);
    assert_eq!(n(&report["blocks"]), chain.u64("honest_blocks"));
    assert_eq!(n(&report["would_pause"]), 0, "would pause: {:#?}", report["pauses"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn shadow_over_the_honest_chain_exits_as_its_report_says_and_counts_add_up() {
    let chain = chain();
    let (from, to) = (chain.u64("from_block"), chain.u64("honest_to_block"));
    let out = shadow_range(chain, from, to, true);
    let report = report_of(&out);

    // It replayed exactly the range, every tx of it, as the chain's receipts say.
    assert_eq!(report["source"], "replay");
    assert_eq!((n(&report["from_block"]), n(&report["to_block"])), (from, to));
    assert_eq!(n(&report["blocks"]), chain.u64("honest_blocks"));
    assert_eq!(n(&report["txs"]), chain.u64("honest_txs"));
    assert_eq!(n(&report["divergences"]), 0, "notes: {}", report["notes"]);
    assert_eq!(report["configured_mode"], "pause");

    // Exit code 1 exactly when something would have been paused.
    let would_pause = n(&report["would_pause"]);
    assert_eq!(out.status.code(), Some(if would_pause > 0 { 1 } else { 0 }), "{report}");

    // Every protected contract is listed; per-contract counts add up to the totals, each
    // would-pause is listed with its block in range, and each rule row is named.
    let config = preempt::config::Config::load(&chain.config()).expect("config");
    let contracts = report["contracts"].as_array().expect("contracts");
    let names: Vec<&str> = contracts.iter().filter_map(|c| c["name"].as_str()).collect();
    let configured: Vec<&str> = config.protected.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, configured);
    for (total, field) in [
        ("would_pause", "pause"),
        ("would_alert", "alert"),
        ("would_record", "record"),
        ("skipped", "skip"),
    ] {
        let sum: u64 = contracts.iter().map(|c| n(&c[field])).sum();
        assert_eq!(sum, n(&report[total]), "{total}");
    }
    let listed = report["pauses"].as_array().expect("pauses");
    assert_eq!(listed.len() as u64, would_pause);
    for p in listed {
        let block = n(&p["block"]);
        assert!((from..=to).contains(&block), "{p}");
        assert!(!p["rules"].as_array().expect("rules").is_empty(), "{p}");
        let summaries = p["findings"].as_array().expect("findings");
        assert!(summaries.iter().all(|f| !f["summary"].as_str().unwrap_or_default().is_empty()));
    }
    for rule in report["rules"].as_array().expect("rules") {
        assert!(rule["rule"].as_str().is_some_and(|r| !r.is_empty()), "{rule}");
        let _ = (n(&rule["pause"]), n(&rule["alert"]), n(&rule["record"]), n(&rule["skip"]));
    }
    eprintln!(
        "honest chain {from}..={to}: would pause {would_pause}, alert {}, record {}; {:.1} s",
        report["would_alert"], report["would_record"], report["wall_time_s"]
    );

    // The table says the same, and ends with the same exit code.
    let table = shadow_range(chain, from, to, false);
    assert_eq!(table.status.code(), out.status.code());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains(&format!("blocks {from}..={to} replayed")), "{text}");
    let said = if would_pause == 0 {
        "would pause: none".to_string()
    } else {
        format!("would pause ({would_pause}):")
    };
    assert!(text.contains(&said), "{text}");
}

#[test]
fn shadow_over_the_attack_block_reports_exactly_the_attack_tx_as_would_pause() {
    let chain = chain();
    let block = n(&chain.manifest["attack"]["block"]);
    let out = shadow_range(chain, block, block, true);
    let report = report_of(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(n(&report["would_pause"]), 1, "{report}");
    assert_eq!(pauses(&report), vec![(chain.attack_tx(), "EtherBank".to_string())]);
    let pause = &report["pauses"][0];
    assert_eq!((n(&pause["block"]), n(&pause["index"])), (block, 0));
    let rules: Vec<&str> =
        pause["rules"].as_array().expect("rules").iter().filter_map(|r| r.as_str()).collect();
    assert!(rules.contains(&"reentrancy") || rules.contains(&"drain"), "{rules:?}");
    let bank = report["contracts"]
        .as_array()
        .expect("contracts")
        .iter()
        .find(|c| c["name"] == "EtherBank")
        .expect("EtherBank row");
    assert_eq!(n(&bank["pause"]), 1);
}

/// The target: on the whole chain, the attack is the one would-pause.
#[test]
fn shadow_over_the_whole_chain_reports_only_the_attack_as_would_pause() {
    let chain = chain();
    let out = shadow_range(chain, chain.u64("from_block"), chain.u64("to_block"), true);
    let report = report_of(&out);
    let paused = pauses(&report);
    assert_eq!(
        paused,
        vec![(chain.attack_tx(), "EtherBank".to_string())],
        "{} would-pause(s); the first: {:?}",
        paused.len(),
        paused.iter().take(3).collect::<Vec<_>>()
    );
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_live_reports_a_pending_attack_as_would_pause_and_no_guardian_tx_reaches_the_pool() {
    let devnet = Devnet::start().await;
    let attack = devnet.send(Scenario::VaultReentrancyAttack).await;
    let config = devnet.config_path.to_string_lossy().into_owned();
    let out = tokio::task::spawn_blocking(move || {
        preempt(&["shadow", "--config", &config, "--live", "--duration", "3", "--json"])
    })
    .await
    .expect("shadow");
    let report = report_of(&out);
    assert_eq!(report["source"], "live");
    assert_eq!(out.status.code(), Some(1), "{report}");
    let paused = pauses(&report);
    assert!(paused.contains(&(attack, "EthVault".to_string())), "{report}");
    let pause = report["pauses"]
        .as_array()
        .expect("pauses")
        .iter()
        .find(|p| p["tx"].as_str().and_then(|t| t.parse::<B256>().ok()) == Some(attack))
        .expect("the attack");
    assert_eq!(pause["seen_in"], "mempool");
    assert!(pause["block"].is_null());
    assert!(report["duration_s"].as_f64().is_some_and(|d| d >= 2.9), "{report}");

    // The pool holds the attack alone: no pause was sent, by any key.
    let pool: Value = devnet.rpc("txpool_content", serde_json::json!([])).await;
    let pending: Vec<B256> = pool["pending"]
        .as_object()
        .expect("pending")
        .values()
        .flat_map(|by_nonce| by_nonce.as_object().expect("by nonce").values())
        .filter_map(|tx| tx["hash"].as_str().and_then(|h| h.parse().ok()))
        .collect();
    assert_eq!(pending, vec![attack], "{pool}");
    assert!(pool["queued"].as_object().is_none_or(|q| q.is_empty()), "{pool}");
}

#[test]
fn shadow_bad_arguments_exit_2_with_one_line() {
    let dir = tempfile::tempdir().expect("dir");
    let node = crate::support::Anvil::start_no_mining();
    let config = dir.path().join("preempt.toml");
    let text = format!(
        "[[node]]\nurl = \"{}\"\n\n[[protect]]\nname = \"V\"\naddress = \"0x00000000000000000000000000000000000000aa\"\n",
        node.http_url()
    );
    std::fs::write(&config, text).expect("write");
    let config = config.to_string_lossy().into_owned();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--from-block", "9", "--to-block", "3"], "--from-block 9 is after --to-block 3"),
        (vec!["--from-block", "0", "--to-block", "3"], "block 0 has no parent"),
        (vec!["--from-block", "1"], "give --from-block N and --to-block M"),
        (vec!["--live"], "--live needs --duration SECS"),
        (vec!["--live", "--duration", "0"], "--duration must be at least 1 second"),
        (vec!["--live", "--duration", "2", "--to-block", "3"], "not both"),
        (
            vec!["--duration", "2", "--from-block", "1", "--to-block", "2"],
            "--duration goes with --live",
        ),
        // A fresh anvil is at block 0.
        (vec!["--from-block", "1", "--to-block", "5"], "--to-block 5 is beyond the node's head 0"),
        (
            vec!["--rpc", "http://127.0.0.1:1", "--from-block", "1", "--to-block", "2"],
            "no node is reachable",
        ),
    ];
    for (args, says) in cases {
        let mut all = vec!["shadow", "--config", config.as_str()];
        all.extend(&args);
        let out = preempt(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line: {err}");
        assert!(lines[0].starts_with("error: ") && lines[0].contains(says), "{args:?}: {err}");
    }
    let out =
        preempt(&["shadow", "--config", "/nonexistent/preempt.toml", "--live", "--duration", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/preempt.toml") && err.trim().lines().count() == 1, "{err}");
}
