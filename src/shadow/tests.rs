use std::{path::Path, time::Duration};

use alloy::primitives::{Address, B256, address};
use serde_json::json;

use super::{
    ShadowArgs, ShadowTarget,
    live::decided_of,
    report::{Decided, ReportHeader, SeenFinding, Tally, Would, render_human},
};
use crate::{config::Config, types::Severity};

const VAULT: Address = address!("00000000000000000000000000000000000000aa");
const POOL: Address = address!("00000000000000000000000000000000000000bb");

fn config() -> Config {
    let text = "[[node]]\nurl = \"http://127.0.0.1:1\"\n\n\
                [[protect]]\nname = \"Vault\"\naddress = \"0x00000000000000000000000000000000000000aa\"\n\n\
                [[protect]]\nname = \"Pool\"\naddress = \"0x00000000000000000000000000000000000000bb\"\n";
    Config::parse(text, Path::new("preempt.toml")).expect("valid config")
}

fn args(live: bool, from: Option<u64>, to: Option<u64>, duration: Option<u64>) -> ShadowArgs {
    ShadowArgs {
        config: "preempt.toml".into(),
        rpc: None,
        from_block: from,
        to_block: to,
        live,
        duration,
        json: false,
    }
}

#[test]
fn arguments_name_one_target_or_say_what_is_wrong() {
    assert!(matches!(
        args(false, Some(3), Some(9), None).target(),
        Ok(ShadowTarget::Blocks { from: 3, to: 9 })
    ));
    assert!(matches!(
        args(true, None, None, Some(5)).target(),
        Ok(ShadowTarget::Live(d)) if d == Duration::from_secs(5)
    ));
    let wrong = [
        (args(false, Some(9), Some(3), None), "--from-block 9 is after --to-block 3"),
        (args(false, Some(0), Some(3), None), "--from-block must be at least 1"),
        (args(false, Some(3), None, None), "give --from-block N and --to-block M"),
        (args(false, None, None, None), "give --from-block N and --to-block M"),
        (args(true, None, None, None), "--live needs --duration SECS"),
        (args(true, None, None, Some(0)), "--duration must be at least 1 second"),
        (args(true, Some(1), None, Some(2)), "not both"),
        (args(false, Some(1), Some(2), Some(2)), "--duration goes with --live"),
    ];
    for (a, says) in wrong {
        let e = a.target().expect_err("refused");
        assert!(e.contains(says), "{e}");
    }
}

fn finding(contract: Address, rule: &str, severity: Severity) -> SeenFinding {
    SeenFinding { contract, rule: rule.into(), severity, summary: format!("{rule} on {contract}") }
}

fn tx(n: u8, findings: Vec<SeenFinding>, decisions: Vec<(Address, Would)>) -> Decided {
    Decided {
        block: Some(100 + u64::from(n)),
        index: Some(0),
        tx: B256::repeat_byte(n),
        from: Address::repeat_byte(0x11),
        to: Some(VAULT),
        seen_in: "block",
        findings,
        decisions,
    }
}

#[test]
fn a_contract_counts_once_per_tx_at_its_strongest_action_and_each_rule_at_its_own() {
    let config = config();
    let mut tally = Tally::new(&config);
    // A critical drain and a low re-entry on the vault: the tx pauses; the re-entry alone
    // would only be recorded.
    tally.add(tx(
        1,
        vec![
            finding(VAULT, "drain", Severity::Critical),
            finding(VAULT, "reentrancy", Severity::Low),
        ],
        vec![(VAULT, Would::Pause)],
    ));
    // A medium finding on the pool: an alert.
    tally.add(tx(
        2,
        vec![finding(POOL, "price-manipulation", Severity::Medium)],
        vec![(POOL, Would::Alert)],
    ));
    // The vault already paused: nothing is done for any of its findings.
    tally.add(tx(3, vec![finding(VAULT, "drain", Severity::High)], vec![(VAULT, Would::Skip)]));
    let report = tally.finish(ReportHeader { source: "replay", blocks: 3, ..Default::default() });

    assert_eq!(
        (report.would_pause, report.would_alert, report.would_record, report.skipped),
        (1, 1, 0, 1)
    );
    assert_eq!(report.txs_with_findings, 3);
    assert_eq!(report.exit_code(), 1);
    let vault = &report.contracts[0];
    assert_eq!((vault.name.as_str(), vault.counts.pause, vault.counts.skip), ("Vault", 1, 1));
    let rule = |name: &str| {
        vault.rules.iter().find(|r| r.rule == name).map(|r| r.counts).expect("rule row")
    };
    assert_eq!((rule("drain").pause, rule("drain").skip), (1, 1));
    assert_eq!((rule("reentrancy").record, rule("reentrancy").pause), (1, 0));
    assert_eq!(report.contracts[1].counts.alert, 1);

    assert_eq!(report.pauses.len(), 1);
    let p = &report.pauses[0];
    assert_eq!(
        (p.tx, p.block, p.contract_name.as_str()),
        (B256::repeat_byte(1), Some(101), "Vault")
    );
    assert_eq!(p.rules, vec!["drain".to_string(), "reentrancy".to_string()]);
    assert_eq!(p.findings[1].would, Would::Record);

    let text = render_human(&report);
    assert!(text.contains("would pause (1):"), "{text}");
    assert!(
        text.contains(&format!(
            "block 101 #0 tx {} Vault: drain, reentrancy",
            B256::repeat_byte(1)
        )),
        "{text}"
    );
}

#[test]
fn nothing_to_pause_exits_0_and_lists_every_contract_at_zero() {
    let config = config();
    let report =
        Tally::new(&config).finish(ReportHeader { source: "replay", ..Default::default() });
    assert_eq!(report.exit_code(), 0);
    let names: Vec<&str> = report.contracts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["Vault", "Pool"]);
    assert!(render_human(&report).contains("would pause: none"));
}

#[test]
fn a_live_detection_record_reads_as_the_tx_and_what_was_decided() {
    let finding = json!({
        "rule": "drain", "severity": "critical", "contract": VAULT, "contract_name": "Vault",
        "summary": "Vault lost 100 of 100 ETH", "evidence": {}
    });
    let pending = json!({
        "kind": "detection", "source": "mempool", "attack_tx": B256::repeat_byte(7),
        "attack_from": Address::repeat_byte(0x11), "attack_to": VAULT, "sim_block": 12,
        "findings": [finding], "decisions": [[VAULT, {"action": "dry-run", "plan": {}}]]
    });
    let d = decided_of(&pending).expect("readable");
    assert_eq!((d.tx, d.block, d.seen_in), (B256::repeat_byte(7), None, "mempool"));
    assert_eq!(d.decisions, vec![(VAULT, Would::Pause)]);
    assert_eq!(
        (d.findings[0].rule.as_str(), d.findings[0].severity),
        ("drain", Severity::Critical)
    );

    let mined = json!({
        "kind": "detection", "source": "block-guard", "attack_tx": B256::repeat_byte(8),
        "attack_from": Address::repeat_byte(0x11), "attack_to": null, "sim_block": 12,
        "findings": [], "decisions": [[VAULT, {"action": "skip", "reason": "paused"}]]
    });
    let d = decided_of(&mined).expect("readable");
    assert_eq!((d.block, d.to, d.seen_in), (Some(12), None, "block"));
    assert_eq!(d.decisions, vec![(VAULT, Would::Skip)]);

    let unknown = json!({
        "kind": "detection", "source": "mempool", "attack_tx": B256::repeat_byte(9),
        "attack_from": Address::repeat_byte(0x11), "findings": [],
        "decisions": [[VAULT, {"action": "launch-missiles"}]]
    });
    assert!(decided_of(&unknown).is_none());
}
