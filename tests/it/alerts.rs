//! Alerts against a local HTTP receiver: the payload each service expects, the webhook's
//! signature, retries on 5xx and timeouts but not on 4xx, a full queue that drops and counts
//! without waiting, and repeats (findings, node state, balance levels) told once.

use std::{path::Path, time::Duration};

use alloy::primitives::{Address, B256, U256, address};
use preempt::{
    alert::{
        AlertCounters, AlertEvent, AlertHub, FindingAlert, PauseAlert, SignatureError,
        SinkCounters, verify,
    },
    config::{Asset, Config},
    incident::{DetectionSource, HoldingKept, OutcomeRecord},
    types::Severity,
};
use serde_json::Value;

use crate::support::receiver::{Receiver, Reply, gap};

const VAULT: Address = address!("0x5FbDB2315678afecb367f032d93F642f64180aa3");
const GUARDIAN: Address = address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
const WAIT: Duration = Duration::from_secs(10);

/// Alert credentials in files (`file:` references), as an operator would keep them.
struct Secrets(tempfile::TempDir);

impl Secrets {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("temp dir"))
    }

    fn file(&self, name: &str, value: &str) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, format!("{value}\n")).expect("write secret");
        format!("file:{}", path.display())
    }
}

fn config(alerts: &str) -> Config {
    let text = format!("[[protect]]\nname = \"EthVault\"\naddress = \"{VAULT}\"\n\n{alerts}",);
    Config::parse(&text, Path::new("preempt.toml")).expect("valid alert config")
}

fn attack(n: u64) -> B256 {
    B256::from(U256::from(0x00a7_7ac4_0000_u64 + n))
}

fn finding(n: u64) -> AlertEvent {
    AlertEvent::Finding(FindingAlert {
        contract: VAULT,
        contract_name: "EthVault".into(),
        rule: "reentrancy".into(),
        severity: Severity::Critical,
        attack_tx: attack(n),
        source: DetectionSource::Mempool,
        block: 12,
        summary: "EthVault re-entered from 0xbad while withdraw() was live; 2 stale slots".into(),
    })
}

fn pause_sent(n: u64) -> AlertEvent {
    AlertEvent::PauseSent(PauseAlert {
        contract: VAULT,
        contract_name: "EthVault".into(),
        rule: None,
        severity: None,
        pause_tx: B256::repeat_byte(0x9a),
        attack_tx: Some(attack(n)),
        nonce: 7,
        max_fee_per_gas: 40_000_000_000,
        max_priority_fee_per_gas: 12_500_000_000,
        gas_limit: 200_000,
        outbids_attack: true,
        target_block: 13,
        accepted: vec!["local".into()],
        refused: vec![("flashbots".into(), "HTTP 503: busy".into())],
    })
}

/// Waits until `f` holds of the counters (they move on the sinks' tasks).
async fn counters_until(hub: &AlertHub, f: impl Fn(&AlertCounters) -> bool) -> AlertCounters {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let c = hub.counters();
        if f(&c) {
            return c;
        }
        assert!(tokio::time::Instant::now() < deadline, "counters never settled: {c:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn field<'a>(fields: &'a Value, name: &str) -> &'a str {
    fields
        .as_array()
        .and_then(|a| a.iter().find(|f| f["name"] == name))
        .and_then(|f| f["value"].as_str())
        .unwrap_or_else(|| panic!("no field `{name}` in {fields}"))
}

#[tokio::test]
async fn slack_discord_and_pagerduty_each_get_their_own_payload_shape() {
    let receiver = Receiver::start();
    let secrets = Secrets::new();
    let c = config(&format!(
        r#"
[[alert]]
name = "slack"
kind = "slack"
url = "{}"
[[alert]]
name = "discord"
kind = "discord"
url = "{}"
[[alert]]
name = "pd"
kind = "pagerduty"
routing_key = "{}"
url = "{}"
"#,
        secrets.file("slack", &receiver.url("/slack/T000/B000/s3cr3tpath")),
        secrets.file("discord", &receiver.url("/discord")),
        secrets.file("pd", "R0UT1NGKEY0123456789"),
        receiver.url("/pd"),
    ));
    let hub = AlertHub::start(&c).expect("start");
    hub.notify(finding(1));
    hub.notify(pause_sent(1));
    hub.notify(AlertEvent::node_down("local", "connection reset"));
    hub.notify(AlertEvent::node_up("local"));
    receiver.wait_for(12, WAIT).await;

    // Each sink keeps the order it was told in.
    for path in ["/slack/T000/B000/s3cr3tpath", "/discord", "/pd"] {
        let kinds: Vec<String> = receiver
            .requests_to(path)
            .iter()
            .map(|r| r.header("x-preempt-event").unwrap_or("?").to_string())
            .collect();
        assert_eq!(kinds, ["finding", "pause-sent", "node-down", "node-up"], "{path}");
    }

    let slack = receiver.requests_to("/slack/T000/B000/s3cr3tpath");
    let first = slack[0].json();
    let text = first["text"].as_str().expect("text");
    assert!(text.starts_with("[CRITICAL] reentrancy (critical) on EthVault: "), "{text}");
    assert!(text.contains(&format!("{:#x}", attack(1))), "the attack tx: {text}");
    assert_eq!(first["blocks"][0]["type"], "header");
    assert_eq!(first["blocks"][0]["text"]["text"], "reentrancy on EthVault");
    let fields: Vec<&str> = first["blocks"][2]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["text"].as_str().unwrap_or(""))
        .collect();
    assert!(fields.contains(&format!("*Contract*\nEthVault ({VAULT})").as_str()), "{fields:?}");
    assert!(fields.contains(&"*Rule*\nreentrancy"), "{fields:?}");
    assert!(fields.contains(&"*Block*\n12"), "{fields:?}");
    // The pause alert carries the pause tx, fees and the rule it inherited from the finding.
    let pause = slack[1].json();
    let pause_text = pause["text"].as_str().expect("text");
    assert!(
        pause_text.contains("Pause sent for EthVault (reentrancy)")
            && pause_text.contains(&format!("{:#x}", B256::repeat_byte(0x9a)))
            && pause_text.contains("max fee 40 gwei / tip 12.5 gwei")
            && pause_text.contains("taken by 1 of 2 destination(s)"),
        "{pause_text}"
    );

    let discord = receiver.requests_to("/discord")[0].json();
    assert!(discord["content"].as_str().expect("content").starts_with("**[CRITICAL]** "));
    assert_eq!(discord["allowed_mentions"]["parse"], Value::Array(vec![]));
    let embed = &discord["embeds"][0];
    assert_eq!(embed["title"], "reentrancy on EthVault");
    assert_eq!(embed["color"], 0xD0_00_00);
    assert!(embed["timestamp"].as_str().expect("timestamp").ends_with('Z'));
    let names: Vec<&str> = embed["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["Contract", "Rule", "Severity", "Attack tx", "Seen", "Block", "Evidence"],
        "{embed}"
    );

    let pd: Vec<Value> = receiver.requests_to("/pd").iter().map(|r| r.json()).collect();
    let incident = format!("preempt/{VAULT:#x}/attack/{:#x}", attack(1));
    for (event, action, severity, key) in [
        (&pd[0], "trigger", Some("critical"), incident.as_str()),
        (&pd[1], "trigger", Some("critical"), incident.as_str()),
        (&pd[2], "trigger", Some("error"), "preempt/node/local"),
        (&pd[3], "resolve", None, "preempt/node/local"),
    ] {
        assert_eq!(event["routing_key"], "R0UT1NGKEY0123456789");
        assert_eq!(event["event_action"], action, "{event}");
        assert_eq!(event["dedup_key"], key, "{event}");
        match severity {
            Some(s) => {
                assert_eq!(event["payload"]["severity"], s, "{event}");
                assert_eq!(event["payload"]["source"], "preempt");
                assert!(event["payload"]["summary"].as_str().expect("summary").len() <= 1024);
            }
            None => assert!(event.get("payload").is_none(), "a resolve carries no payload"),
        }
    }
    assert_eq!(pd[0]["payload"]["component"], "EthVault");
    assert_eq!(pd[0]["payload"]["class"], "finding");
    assert_eq!(
        pd[1]["payload"]["custom_details"]["Pause tx"],
        format!("{:#x}", B256::repeat_byte(0x9a))
    );
    assert_eq!(pd[1]["payload"]["custom_details"]["Rule"], "reentrancy");
    assert_eq!(
        pd[1]["payload"]["custom_details"]["Fees"],
        "max fee 40 gwei, tip 12.5 gwei, gas limit 200000 (at most 0.008 ETH)"
    );
    assert_eq!(pd[1]["payload"]["custom_details"]["event"]["kind"], "pause-sent");

    // The routing key goes to PagerDuty only; no body carries a webhook URL.
    for r in receiver.requests() {
        let body = r.text();
        assert!(!body.contains("s3cr3tpath"), "{}: {body}", r.path);
        assert_eq!(body.contains("R0UT1NGKEY"), r.path == "/pd", "{}: {body}", r.path);
    }
    let c = counters_until(&hub, |c| c.sinks.iter().all(|(_, s)| s.sent == 4)).await;
    assert_eq!(c.queued, 4);
    assert_eq!(c.sink("pd"), Some(SinkCounters { sent: 4, ..Default::default() }));
    hub.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn webhook_body_is_signed_over_timestamp_and_body_so_replays_fail() {
    let key = "whsec-0123456789abcdef";
    let receiver = Receiver::with_hmac_key(key.as_bytes());
    let secrets = Secrets::new();
    let c = config(&format!(
        "[[alert]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"{}\"\n\
         [[alert]]\nname = \"wrong-key\"\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"{}\"\nbackoff_ms = 5\n",
        secrets.file("url", &receiver.url("/hook")),
        secrets.file("key", key),
        secrets.file("url2", &receiver.url("/wrong")),
        secrets.file("key2", "not-the-receivers-key"),
    ));
    let hub = AlertHub::start(&c).expect("start");
    let outcome = OutcomeRecord {
        kind: "outcome",
        at_unix_ms: 0,
        block: 13,
        contract: VAULT,
        contract_name: "EthVault".into(),
        pause_tx: B256::repeat_byte(0x9a),
        pause_landed: true,
        pause_succeeded: Some(true),
        pause_index: Some(0),
        attack_tx: Some(attack(2)),
        attack_index: Some(1),
        attack_succeeded: Some(false),
        same_block: true,
        pause_before_attack: true,
        contract_paused: Some(true),
        holdings: vec![HoldingKept {
            asset: Asset::Eth,
            before: U256::from(10u64),
            after: U256::from(10u64),
            kept: true,
        }],
    };
    hub.notify(AlertEvent::pause_landed(&outcome));
    let requests = receiver.wait_for(2, WAIT).await;
    let good = requests.iter().find(|r| r.path == "/hook").expect("signed request");
    assert_eq!(good.signature_ok, Some(true), "the receiver's own HMAC check");
    assert_eq!(good.answered, Some(200));
    let ts = good.header("x-preempt-timestamp").expect("timestamp header");
    let sig = good.header("x-preempt-signature").expect("signature header");
    assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
    let now = preempt::incident::unix_ms() / 1000;
    let sent_at: u64 = ts.parse().expect("unix seconds");
    assert!(now.abs_diff(sent_at) <= 5, "fresh: {sent_at} vs {now}");
    assert_eq!(verify(key.as_bytes(), ts, sig, &good.body, now, 300), Ok(()));
    // The same request replayed ten minutes later, or with its body changed, is refused.
    assert!(matches!(
        verify(key.as_bytes(), ts, sig, &good.body, now + 600, 300),
        Err(SignatureError::Stale { .. })
    ));
    let tampered = good.text().replace("\"value\":\"kept\"", "\"value\":\"LOST\"");
    assert_ne!(tampered, good.text());
    assert_eq!(
        verify(key.as_bytes(), ts, sig, tampered.as_bytes(), now, 300),
        Err(SignatureError::Mismatch)
    );

    let body = good.json();
    assert_eq!(body["version"], 1);
    assert_eq!(body["kind"], "pause-landed");
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["resolved"], false);
    assert_eq!(body["dedup_key"], format!("preempt/{VAULT:#x}/attack/{:#x}", attack(2)));
    assert_eq!(body["event"]["kind"], "pause-landed");
    assert_eq!(body["event"]["value_kept"], true);
    assert_eq!(field(&body["fields"], "Order"), "same block, pause first");
    assert_eq!(field(&body["fields"], "Block"), "13");
    assert!(
        body["summary"]
            .as_str()
            .expect("summary")
            .contains("attack at index 1 reverted; value kept")
    );
    assert!(!good.text().contains(key), "the key is never in the body");

    // Signed with another key: the receiver answers 401, and a 4xx is not retried.
    let wrong = requests.iter().find(|r| r.path == "/wrong").expect("second sink");
    assert_eq!((wrong.signature_ok, wrong.answered), (Some(false), Some(401)));
    let c = counters_until(&hub, |c| c.sink("wrong-key").is_some_and(|s| s.failed == 1)).await;
    assert_eq!(c.sink("wrong-key"), Some(SinkCounters { failed: 1, ..Default::default() }));
    assert_eq!(c.sink("hook"), Some(SinkCounters { sent: 1, ..Default::default() }));
    hub.close(Duration::from_secs(1)).await;
    assert_eq!(receiver.requests_to("/wrong").len(), 1);
}

fn one_sink(receiver: &Receiver, secrets: &Secrets, extra: &str) -> Config {
    config(&format!(
        "[[alert]]\nname = \"s\"\nkind = \"slack\"\nurl = \"{}\"\n{extra}\n",
        secrets.file("url", &receiver.url("/s")),
    ))
}

#[tokio::test]
async fn server_errors_are_retried_with_growing_backoff_until_accepted() {
    let receiver = Receiver::start();
    receiver.script(2, Reply::Status(500));
    let secrets = Secrets::new();
    let hub = AlertHub::start(&one_sink(&receiver, &secrets, "backoff_ms = 40\nmax_attempts = 5"))
        .expect("start");
    hub.notify(finding(3));
    let r = receiver.wait_for(3, WAIT).await;
    assert_eq!(r.iter().map(|r| r.answered).collect::<Vec<_>>(), [Some(500), Some(500), Some(200)]);
    // One delivery id across attempts, so an endpoint can drop a retry it already handled.
    let ids: Vec<_> =
        r.iter().map(|r| r.header("x-preempt-delivery").map(str::to_string)).collect();
    assert!(ids[0].is_some() && ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    // Equal jitter: at least half of 40 ms, then half of 80 ms.
    assert!(gap(&r[0], &r[1]) >= Duration::from_millis(20), "{:?}", gap(&r[0], &r[1]));
    assert!(gap(&r[1], &r[2]) >= Duration::from_millis(40), "{:?}", gap(&r[1], &r[2]));
    let c = counters_until(&hub, |c| c.sink("s").is_some_and(|s| s.sent == 1)).await;
    assert_eq!(c.sink("s"), Some(SinkCounters { sent: 1, retried: 2, failed: 0, dropped_full: 0 }));
    hub.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn client_errors_are_not_retried_and_the_sink_goes_on() {
    let receiver = Receiver::start();
    receiver.script(1, Reply::Status(400));
    let secrets = Secrets::new();
    let hub = AlertHub::start(&one_sink(&receiver, &secrets, "backoff_ms = 1")).expect("start");
    hub.notify(finding(4));
    hub.notify(finding(5));
    let r = receiver.wait_for(2, WAIT).await;
    assert_eq!(r.iter().map(|r| r.answered).collect::<Vec<_>>(), [Some(400), Some(200)]);
    assert_ne!(r[0].header("x-preempt-delivery"), r[1].header("x-preempt-delivery"));
    let c = counters_until(&hub, |c| c.sink("s").is_some_and(|s| s.sent == 1)).await;
    assert_eq!(c.sink("s"), Some(SinkCounters { sent: 1, retried: 0, failed: 1, dropped_full: 0 }));
    hub.close(Duration::from_secs(1)).await;
    assert_eq!(receiver.requests().len(), 2, "the 400 was not tried again");
}

#[tokio::test]
async fn an_attempt_that_times_out_is_retried_and_exhausted_retries_count_as_failed() {
    let receiver = Receiver::start();
    receiver.script(1, Reply::Hold);
    let secrets = Secrets::new();
    let hub = AlertHub::start(&one_sink(
        &receiver,
        &secrets,
        "timeout_ms = 200\nbackoff_ms = 1\nmax_attempts = 3",
    ))
    .expect("start");
    hub.notify(finding(6));
    receiver.wait_for(2, WAIT).await;
    let c = counters_until(&hub, |c| c.sink("s").is_some_and(|s| s.sent == 1)).await;
    assert_eq!(c.sink("s"), Some(SinkCounters { sent: 1, retried: 1, failed: 0, dropped_full: 0 }));

    receiver.otherwise(Reply::Status(503));
    hub.notify(finding(7));
    receiver.wait_for(5, WAIT).await;
    let c = counters_until(&hub, |c| c.sink("s").is_some_and(|s| s.failed == 1)).await;
    assert_eq!(c.sink("s"), Some(SinkCounters { sent: 1, retried: 3, failed: 1, dropped_full: 0 }));
    hub.close(Duration::from_secs(1)).await;
    receiver.release();
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_and_notify_never_waits() {
    let receiver = Receiver::start();
    receiver.otherwise(Reply::Hold);
    let secrets = Secrets::new();
    let c = one_sink(&receiver, &secrets, "queue = 2\ntimeout_ms = 60000\nmax_attempts = 1");
    let hub = AlertHub::start_with_queue(&c, 8).expect("start");
    hub.notify(finding(0));
    receiver.wait_for(1, WAIT).await;
    // The sink is now stuck on its first alert. A plain thread (no async runtime, nothing to
    // await on) fires 5,000 more: if `notify` ever waited for room, this would never finish.
    let sender = hub.clone();
    std::thread::spawn(move || {
        for n in 1..=5_000 {
            sender.notify(finding(n));
        }
    })
    .join()
    .expect("notify thread");
    let c = counters_until(&hub, |c| {
        let s = c.sink("s").unwrap_or_default();
        // Every queued event is routed: two wait in the sink's queue, the rest are dropped.
        c.queued + c.dropped_full == 5_001 && s.dropped_full + 2 + 1 == c.queued
    })
    .await;
    assert!(c.dropped_full + c.sink("s").unwrap_or_default().dropped_full >= 4_997, "{c:?}");
    assert_eq!(receiver.requests().len(), 1, "still on the first alert");
    receiver.release();
    let c = counters_until(&hub, |c| c.sink("s").is_some_and(|s| s.sent == 3)).await;
    assert_eq!(c.sink("s").map(|s| (s.sent, s.failed)), Some((3, 0)));
    hub.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn repeats_are_told_once_balance_once_per_level_and_each_sink_filters_by_severity() {
    let receiver = Receiver::start();
    let secrets = Secrets::new();
    let c = config(&format!(
        "[[alert]]\nname = \"all\"\nkind = \"slack\"\nurl = \"{}\"\nlow_balance_pauses = 3\n\
         [[alert]]\nname = \"pager\"\nkind = \"slack\"\nurl = \"{}\"\nmin_severity = \"critical\"\n",
        secrets.file("all", &receiver.url("/all")),
        secrets.file("pager", &receiver.url("/pager")),
    ));
    let hub = AlertHub::start(&c).expect("start");
    let eth = |n: f64| U256::from((n * 1e18) as u128);
    let balance = |b: U256| AlertEvent::GuardianBalance {
        guardian: GUARDIAN,
        balance_wei: b,
        pause_cost_wei: eth(1.0),
    };
    for event in [
        finding(8),
        finding(8),                   // the same finding again: suppressed
        AlertEvent::node_up("local"), // start-up, not a recovery: suppressed
        AlertEvent::node_down("local", "eof"),
        AlertEvent::node_down("local", "eof"), // still down: suppressed
        AlertEvent::node_up("local"),
        balance(eth(10.0)), // 10 pauses: enough, silent
        balance(eth(2.0)),  // 2 < 3: low
        balance(eth(2.5)),  // still low: silent
        balance(eth(0.5)),  // not one pause: critical
        balance(eth(5.0)),  // enough again: resolved
        balance(eth(6.0)),  // silent
    ] {
        hub.notify(event);
    }
    let c = counters_until(&hub, |c| c.sink("all").is_some_and(|s| s.sent == 6)).await;
    assert_eq!(c.queued, 12);
    assert_eq!(c.suppressed, 3);
    let all: Vec<(String, String)> = receiver
        .requests_to("/all")
        .iter()
        .map(|r| {
            let text = r.json()["text"].as_str().unwrap_or("").to_string();
            (r.header("x-preempt-event").unwrap_or("?").to_string(), text)
        })
        .collect();
    let kinds: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "finding",
            "node-down",
            "node-up",
            "guardian-balance-low",
            "guardian-balance-low",
            "guardian-balance-ok"
        ]
    );
    assert!(
        all[3].1.starts_with("[ERROR] Guardian ") && all[3].1.contains("can pay for 2 pause(s)"),
        "{}",
        all[3].1
    );
    assert!(all[3].1.contains("keep at least 3"), "{}", all[3].1);
    assert!(
        all[4].1.starts_with("[CRITICAL]") && all[4].1.contains("can pay for 0 pause(s)"),
        "{}",
        all[4].1
    );
    assert!(all[5].1.starts_with("[INFO]") && all[5].1.contains("5 pause(s)"), "{}", all[5].1);
    // The pager takes critical alerts only: the finding and the empty balance.
    let c = counters_until(&hub, |c| c.sink("pager").is_some_and(|s| s.sent == 2)).await;
    assert_eq!(c.sink("pager").map(|s| s.sent), Some(2));
    let pager: Vec<String> = receiver
        .requests_to("/pager")
        .iter()
        .map(|r| r.header("x-preempt-event").unwrap_or("?").to_string())
        .collect();
    assert_eq!(pager, ["finding", "guardian-balance-low"]);
    hub.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_secret_that_is_no_url_is_named_by_key_never_shown() {
    let secrets = Secrets::new();
    let c = config(&format!(
        "[[alert]]\nkind = \"discord\"\nurl = \"{}\"\n",
        secrets.file("url", "hunter2-not-a-url"),
    ));
    let e = AlertHub::start(&c).expect_err("not a URL").to_string();
    assert_eq!(e, "preempt.toml: key `alert[0].url`: the secret it names is not an http(s) URL");
    let c = config("[[alert]]\nkind = \"slack\"\nurl = \"env:PREEMPT_TEST_ALERT_UNSET_9F\"\n");
    let e = AlertHub::start(&c).expect_err("unset").to_string();
    assert_eq!(
        e,
        "preempt.toml: key `alert[0].url`: environment variable PREEMPT_TEST_ALERT_UNSET_9F is not set"
    );
    // A started hub shows sink names and hosts, never a webhook's path.
    let receiver = Receiver::start();
    let c = one_sink(&receiver, &secrets, "");
    let hub = AlertHub::start(&c).expect("start");
    let shown = format!("{hub:?}");
    assert!(!shown.contains(&receiver.url("/s")), "{shown}");
    hub.close(Duration::from_millis(100)).await;
}

#[test]
fn alerts_need_a_runtime_and_none_configured_is_a_no_op() {
    let secrets = Secrets::new();
    let c = config(&format!(
        "[[alert]]\nkind = \"slack\"\nurl = \"{}\"\n",
        secrets.file("url", "http://127.0.0.1:9/x")
    ));
    let e = AlertHub::start(&c).expect_err("no runtime here").to_string();
    assert_eq!(e, "alerts need a tokio runtime to run their tasks");
    let off = AlertHub::start(&config("")).expect("nothing to start");
    assert!(!off.is_enabled());
    off.notify(finding(9));
    assert_eq!(off.counters(), AlertCounters::default());
}
