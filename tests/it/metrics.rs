//! `[metrics]` on a real guard: after an attack is paused, `/metrics` scraped over HTTP shows
//! the pause counted per destination, the findings per rule and contract, every stage's latency
//! histogram filled and the contract paused; `preempt status` prints the same.

use std::{process::Command, time::Duration};

use preempt::{devnet::Scenario, telemetry::Snapshot};

use crate::support::{
    Devnet,
    guard::{RunningGuard, wait_pending_from},
};

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

async fn scrape(port: u16) -> Snapshot {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("the guard answers /metrics")
        .text()
        .await
        .expect("a body");
    Snapshot::parse(&text).expect("Prometheus text")
}

fn status(metrics: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_preempt"))
        .args(["status", "--metrics", metrics])
        .output()
        .expect("run preempt status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_paused_attack_metrics_show_the_pause_findings_and_stage_latencies() {
    let devnet = Devnet::start().await;
    let port = free_port();
    let extra = format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let guard = RunningGuard::start(&devnet, &devnet.anvil.ws_url(), &extra);

    let before = scrape(port).await;
    assert_eq!(before.value("preempt_node_connected", &[("node", "anvil")]), Some(1.0));
    assert_eq!(before.count("preempt_pauses_sent_total", &[("destination", "anvil")]), 0);

    let scenario = Scenario::VaultReentrancyAttack;
    devnet.send(scenario).await;
    let guardian = preempt::devnet::dev_accounts()[1].address;
    let pauses = wait_pending_from(&devnet, guardian, 1, Duration::from_secs(20)).await;
    assert!(!pauses.is_empty(), "no pause reached the pool:\n{}", guard.log().join("\n"));
    devnet.mine().await;
    guard.wait_log(|l| l.contains("pause landed"), Duration::from_secs(10), "pause landed");

    // The contract's paused gauge is set from the same block's report, just after the log line.
    let started = std::time::Instant::now();
    let mut s = scrape(port).await;
    while s.value("preempt_contract_paused", &[("contract", "EthVault")]) != Some(1.0)
        && started.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        s = scrape(port).await;
    }
    assert_eq!(s.value("preempt_contract_paused", &[("contract", "EthVault")]), Some(1.0));
    assert!(s.count("preempt_pauses_sent_total", &[("destination", "anvil")]) >= 1);
    assert_eq!(s.count("preempt_pauses_failed_total", &[("destination", "anvil")]), 0);
    // The worker wrote the pause on the node's pause connection the moment it was signed.
    assert_eq!(s.count("preempt_pauses_written_by_worker_total", &[("destination", "anvil")]), 1);
    assert_eq!(s.count("preempt_pauses_landed_total", &[("contract", "EthVault")]), 1);
    assert_eq!(s.count("preempt_pauses_in_flight", &[("contract", "EthVault")]), 0);
    for (contract, rule) in scenario.expected_findings() {
        let found = s.count("preempt_findings_total", &[("rule", rule), ("contract", contract)]);
        assert!(found >= 1, "no {rule} finding on {contract} counted");
    }
    for stage in ["decoded", "queued", "picked", "simulated", "detected", "signed", "sent"] {
        let count = s.count("preempt_stage_latency_seconds_count", &[("stage", stage)]);
        assert!(count > 0, "stage {stage}: empty histogram");
        assert!(
            s.quantile("preempt_stage_latency_seconds", &[("stage", stage)], 0.5).is_some(),
            "stage {stage}: no buckets"
        );
    }
    assert!(s.count("preempt_simulations_total", &[]) >= 1);
    // The attacker's contract was deployed before the guard started: ingest asked for the
    // attack's pre-state as it arrived, before a worker met it cold.
    assert!(s.count("preempt_ingest_traced_ahead_total", &[]) >= 1, "no trace ahead");
    assert!(s.count("preempt_node_txs_received_total", &[("node", "anvil")]) >= 2);
    assert!(s.count("preempt_fork_block", &[]) >= 1);
    assert!(s.value("preempt_guardian_balance_wei", &[]).unwrap_or_default() > 0.0);
    assert!(s.count("preempt_guardian_nonce", &[]) >= 1, "the pause used a nonce");

    // `preempt status` against the same guard.
    let out = status(&format!("http://127.0.0.1:{port}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let row = |first: &str| {
        text.lines().find(|l| l.split_whitespace().next() == Some(first)).unwrap_or("").to_string()
    };
    let contract = row("EthVault");
    assert!(contract.split_whitespace().nth(1) == Some("yes"), "EthVault paused:\n{text}");
    assert!(contract.contains("reentrancy 1") && contract.contains("drain 1"), "{text}");
    let node = row("anvil");
    assert!(node.split_whitespace().nth(1) == Some("yes"), "anvil connected:\n{text}");
    assert!(text.contains("anvil                sent 1, failed 0"), "{text}");
    assert!(text.contains("landed 1"), "{text}");
    assert!(text.contains(&format!("guardian  {guardian}")), "{text}");

    let (code, stopped, _) = guard.stop_with_counters();
    assert_eq!(code, Some(0));
    // The shutdown summary reads the same recorder.
    assert!(stopped.worker("with_findings") >= 1, "{}", stopped.0);
}

#[test]
fn status_without_a_guard_fails_naming_the_address() {
    let port = free_port();
    let out = status(&format!("127.0.0.1:{port}"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("http://127.0.0.1:{port}/metrics")), "{err}");
    assert!(out.stdout.is_empty());
}
