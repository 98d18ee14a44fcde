//! `preempt status`: scrapes a running guard's `/metrics` and prints its nodes, fork, guardian,
//! protected contracts, pauses and counts since start.

use std::{fmt::Write as _, time::Duration};

use thiserror::Error;

use crate::telemetry::{Snapshot, SnapshotError};

/// Where `preempt status` looks when not told: `[metrics] listen`'s usual value.
pub const DEFAULT_METRICS_URL: &str = "http://127.0.0.1:9464";

/// A guard answers a scrape in microseconds; one that takes this long is not answering.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Error)]
pub enum StatusError {
    #[error(
        "no guard answering at {url}: {reason} (is `preempt run` running with `[metrics] listen` at that address?)"
    )]
    Unreachable { url: String, reason: String },
    #[error("{url} answered HTTP {status}, not metrics")]
    Status { url: String, status: u16 },
    #[error("{url}: {source}")]
    Parse {
        url: String,
        #[source]
        source: SnapshotError,
    },
    #[error("{url} answered, but with no preempt metrics: is it a preempt guard?")]
    NotPreempt { url: String },
}

/// `http://host:port` (or with a path) → the URL of its metrics.
pub fn metrics_url(base: &str) -> String {
    let base = base.trim();
    let base = if base.contains("://") { base.to_string() } else { format!("http://{base}") };
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", &base));
    match rest.split_once('/') {
        Some((_, path)) if !path.is_empty() => base.clone(),
        _ => format!("{scheme}://{}/metrics", rest.trim_end_matches('/')),
    }
}

/// Reads the guard's metrics at `base` (`http://127.0.0.1:9464` or a full `/metrics` URL).
pub async fn scrape(base: &str) -> Result<Snapshot, StatusError> {
    let url = metrics_url(base);
    let unreachable = |reason: String| StatusError::Unreachable { url: url.clone(), reason };
    let client = reqwest::Client::builder()
        .timeout(SCRAPE_TIMEOUT)
        .build()
        .map_err(|e| unreachable(e.to_string()))?;
    let answer = client.get(&url).send().await.map_err(|e| unreachable(reason_of(&e)))?;
    if !answer.status().is_success() {
        return Err(StatusError::Status { url, status: answer.status().as_u16() });
    }
    let text = answer.text().await.map_err(|e| unreachable(reason_of(&e)))?;
    let snapshot =
        Snapshot::parse(&text).map_err(|source| StatusError::Parse { url: url.clone(), source })?;
    if !snapshot.samples.iter().any(|s| s.name.starts_with("preempt_")) {
        return Err(StatusError::NotPreempt { url });
    }
    Ok(snapshot)
}

/// The innermost cause: "connection refused" says more than "error sending request".
fn reason_of(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// The status report, as `preempt status` prints it.
pub fn render(s: &Snapshot, url: &str) -> String {
    let mut out = String::new();
    let c = |name: &str, filter: &[(&str, &str)]| s.count(name, filter);
    let _ = writeln!(out, "preempt status from {url}");

    let _ = writeln!(out, "\nnodes");
    let mut nodes = s.label_values("preempt_node_connected", "node");
    nodes.sort();
    if nodes.is_empty() {
        let _ = writeln!(out, "  (none)");
    } else {
        let _ = writeln!(
            out,
            "  {:<16} {:<9} {:>10} {:>5} {:>10} {:>8} {:>8} {:>7} {:>7} {:>10}",
            "node",
            "connected",
            "head",
            "lag",
            "received",
            "deduped",
            "filtered",
            "dropped",
            "forged",
            "reconnects"
        );
    }
    for node in &nodes {
        let n = [("node", node.as_str())];
        let connected = s.value("preempt_node_connected", &n).unwrap_or_default() > 0.0;
        let _ = writeln!(
            out,
            "  {:<16} {:<9} {:>10} {:>5} {:>10} {:>8} {:>8} {:>7} {:>7} {:>10}",
            node,
            if connected { "yes" } else { "no" },
            c("preempt_node_head_block", &n),
            c("preempt_node_head_lag_blocks", &n),
            c("preempt_node_txs_received_total", &n),
            c("preempt_node_txs_deduped_total", &n),
            c("preempt_node_txs_filtered_total", &n),
            c("preempt_node_txs_dropped_total", &n),
            c("preempt_node_txs_forged_total", &n),
            c("preempt_node_reconnects_total", &n),
        );
    }

    let _ = writeln!(
        out,
        "\nfork      block {}, {} cache entries, {} evictions, {} refetches, {} resets",
        c("preempt_fork_block", &[]),
        c("preempt_fork_cache_entries", &[]),
        c("preempt_fork_cache_evictions_total", &[]),
        c("preempt_fork_cache_refetches_total", &[]),
        c("preempt_fork_cache_resets_total", &[]),
    );
    let guardian = s.all("preempt_guardian_info", &[]).find_map(|g| g.label("address"));
    match (guardian, s.value("preempt_guardian_balance_wei", &[])) {
        (Some(address), balance) => {
            let _ = writeln!(
                out,
                "guardian  {address}, nonce {}, balance {}",
                c("preempt_guardian_nonce", &[]),
                balance.map(|b| format!("{:.6} ETH", b / 1e18)).unwrap_or_else(|| "unknown".into()),
            );
        }
        (None, _) => {
            let _ = writeln!(out, "guardian  none (alert-only: no key configured)");
        }
    }

    let _ = writeln!(out, "\nprotected contracts");
    let mut contracts = s.label_values("preempt_contract_paused", "contract");
    contracts.sort();
    if contracts.is_empty() {
        let _ = writeln!(out, "  (none)");
    } else {
        let _ = writeln!(
            out,
            "  {:<20} {:<7} {:>9} {:>7} {:>9}  findings",
            "contract", "paused", "in flight", "landed", "given up"
        );
    }
    for contract in &contracts {
        let k = [("contract", contract.as_str())];
        let paused = s.value("preempt_contract_paused", &k).unwrap_or_default() > 0.0;
        let findings: Vec<String> = s
            .all("preempt_findings_total", &k)
            .filter_map(|f| Some(format!("{} {}", f.label("rule")?, f.value as u64)))
            .collect();
        let _ = writeln!(
            out,
            "  {:<20} {:<7} {:>9} {:>7} {:>9}  {}",
            contract,
            if paused { "yes" } else { "no" },
            c("preempt_pauses_in_flight", &k),
            c("preempt_pauses_landed_total", &k),
            c("preempt_pauses_given_up_total", &k),
            if findings.is_empty() { "-".to_string() } else { findings.join(", ") },
        );
    }

    let _ = writeln!(out, "\npauses by destination");
    let mut destinations = s.label_values("preempt_pauses_sent_total", "destination");
    destinations.sort();
    if destinations.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for d in &destinations {
        let k = [("destination", d.as_str())];
        let _ = writeln!(
            out,
            "  {:<20} sent {}, failed {}",
            d,
            c("preempt_pauses_sent_total", &k),
            c("preempt_pauses_failed_total", &k)
        );
    }

    let _ = writeln!(out, "\ncounts since start");
    let _ = writeln!(
        out,
        "  txs received {}, deduped {}, filtered {}, dropped {}",
        c("preempt_ingest_txs_received_total", &[]),
        c("preempt_ingest_txs_deduped_total", &[]),
        c("preempt_ingest_txs_filtered_total", &[]),
        c("preempt_ingest_txs_dropped_total", &[]),
    );
    let _ = writeln!(
        out,
        "  simulations {}, with findings {}, state errors {}, blocks {}",
        c("preempt_simulations_total", &[]),
        c("preempt_simulations_with_findings_total", &[]),
        c("preempt_simulation_state_errors_total", &[]),
        c("preempt_guard_blocks_total", &[]),
    );
    let _ = writeln!(
        out,
        "  findings {}, pauses sent {}, landed {}, replaced {}, given up {}",
        c("preempt_findings_total", &[]),
        c("preempt_pauses_sent_total", &[]),
        c("preempt_pauses_landed_total", &[]),
        c("preempt_pauses_replaced_total", &[]),
        c("preempt_pauses_given_up_total", &[]),
    );
    for (stage, name) in [("picked", "picked"), ("detected", "detected"), ("sent", "sent")] {
        let k = [("stage", stage)];
        let (p50, p99) = (
            s.quantile("preempt_stage_latency_seconds", &k, 0.5),
            s.quantile("preempt_stage_latency_seconds", &k, 0.99),
        );
        // Read off the histogram's buckets (interpolated inside one, as Prometheus does): with
        // few samples that is coarse, so the sample count goes beside it.
        let n = c("preempt_stage_latency_seconds_count", &k);
        if let (Some(p50), Some(p99)) = (p50, p99) {
            let _ = writeln!(
                out,
                "  {name} after the frame ({n} txs): p50 ~{:.0} µs, p99 ~{:.0} µs",
                p50 * 1e6,
                p99 * 1e6
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_address_gets_the_metrics_path() {
        assert_eq!(metrics_url("http://127.0.0.1:9464"), "http://127.0.0.1:9464/metrics");
        assert_eq!(metrics_url("127.0.0.1:9464/"), "http://127.0.0.1:9464/metrics");
        assert_eq!(metrics_url("http://h:1/custom"), "http://h:1/custom");
    }

    #[tokio::test]
    async fn an_unreachable_guard_is_an_error_naming_the_address() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let addr = closed.local_addr().expect("addr");
        drop(closed);
        let err = scrape(&format!("http://{addr}")).await.expect_err("nothing listens");
        let text = err.to_string();
        assert!(text.contains(&format!("http://{addr}/metrics")), "{text}");
    }

    #[test]
    fn the_report_shows_nodes_contracts_and_pauses() {
        let s = Snapshot::parse(
            r#"preempt_node_connected{node="anvil"} 1
preempt_node_head_block{node="anvil"} 12
preempt_node_head_lag_blocks{node="anvil"} 0
preempt_contract_paused{contract="EthVault"} 1
preempt_findings_total{rule="drain",contract="EthVault"} 1
preempt_pauses_sent_total{destination="anvil"} 1
preempt_guardian_info{address="0xabc"} 1
preempt_guardian_nonce 3
preempt_guardian_balance_wei 2e18
preempt_fork_block 12
"#,
        )
        .expect("parses");
        let text = render(&s, "http://x/metrics");
        assert!(text.contains("anvil            yes"), "{text}");
        assert!(text.contains("EthVault             yes"), "{text}");
        assert!(text.contains("drain 1"), "{text}");
        assert!(text.contains("guardian  0xabc, nonce 3, balance 2.000000 ETH"), "{text}");
        assert!(text.contains("fork      block 12"), "{text}");
        assert!(text.contains("sent 1, failed 0"), "{text}");
    }
}
