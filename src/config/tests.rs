use std::path::Path;

use super::*;

const GOOD: &str = r#"
[[node]]
name = "local"
url = "ws://127.0.0.1:8545"

[guardian]
key = "env:PREEMPT_GUARDIAN_KEY"

[[protect]]
name = "EthVault"
address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
drain_threshold_bps = 1000
claims = [{ view = "balances(address)", asset = "eth" }]
invariants = ["totalAssets() >= totalDeposits()", "solvent()"]
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("preempt.toml"))
}

fn error_of(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("config should be rejected"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn good_config_parses_with_default_pause_call() {
    let config = parse(GOOD).expect("valid config");
    let p = &config.protected[0];
    assert_eq!(p.pause.target, p.address);
    assert_eq!(p.pause.calldata.as_ref(), &PAUSE_SELECTOR);
    assert_eq!(p.claims[0].asset, Asset::Eth);
    assert_eq!(p.claims[0].selector, selector("balances(address)"));
    assert_eq!(p.invariants.len(), 2);
    assert!(
        matches!(config.guardian, Some(GuardianKey::Raw(SecretRef::Env(ref v))) if v == "PREEMPT_GUARDIAN_KEY")
    );
}

#[test]
fn invariant_expressions_parse_into_comparisons_and_bool_checks() {
    let inv: Invariant = "totalAssets() >= totalDebt()".parse().expect("comparison");
    match inv.check {
        InvariantCheck::Compare {
            lhs: Operand::Call(l),
            op: CompareOp::Ge,
            rhs: Operand::Call(r),
        } => {
            assert_eq!(l.signature, "totalAssets()");
            assert_eq!(r.signature, "totalDebt()");
        }
        other => panic!("unexpected {other:?}"),
    }
    let lit: Invariant = "totalShares() > 0".parse().expect("literal");
    assert!(
        matches!(lit.check, InvariantCheck::Compare { rhs: Operand::Literal(v), op: CompareOp::Gt, .. } if v.is_zero())
    );
    let b: Invariant = "solvent()".parse().expect("bool check");
    assert!(
        matches!(b.check, InvariantCheck::IsTrue(ref v) if v.selector == selector("solvent()"))
    );
    assert!("balanceOf(address) > 0".parse::<Invariant>().is_err());
    assert!("1nvalid() > 0".parse::<Invariant>().is_err());
}

#[test]
fn unknown_key_is_rejected_with_file_and_key() {
    let e = error_of(&GOOD.replace("drain_threshold_bps", "drain_treshold_bps"));
    assert!(e.starts_with("preempt.toml:"), "{e}");
    assert!(e.contains("drain_treshold_bps"), "{e}");
}

#[test]
fn bad_address_names_the_key() {
    let e = error_of(&GOOD.replace("0x5FbDB2315678afecb367f032d93F642f64180aa3", "0x1234"));
    assert!(e.contains("key `protect[0].address`"), "{e}");
}

#[test]
fn threshold_out_of_range_is_rejected() {
    let e = error_of(&GOOD.replace("drain_threshold_bps = 1000", "drain_threshold_bps = 20000"));
    assert!(e.contains("protect[0].drain_threshold_bps"), "{e}");
}

#[test]
fn claim_on_a_token_not_held_is_rejected() {
    let text =
        GOOD.replace(r#"asset = "eth""#, r#"asset = "0x0000000000000000000000000000000000000001""#);
    let e = error_of(&text);
    assert!(
        e.contains("protect[0].claims[0].asset") && e.contains("not in this contract's `tokens`"),
        "{e}"
    );
}

#[test]
fn guardian_key_given_inline_is_refused_without_echoing_it() {
    let secret = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    let e = error_of(&GOOD.replace("env:PREEMPT_GUARDIAN_KEY", secret));
    assert!(e.contains("guardian.key"), "{e}");
    assert!(!e.contains(secret), "the error must not print the key: {e}");
}

#[test]
fn secret_values_never_print() {
    // SAFETY of the test: a unique variable name, set only here.
    unsafe { std::env::set_var("PREEMPT_TEST_SECRET_PRINT", "hunter2") };
    let value = SecretRef::Env("PREEMPT_TEST_SECRET_PRINT".into()).resolve().expect("set");
    assert_eq!(value.expose(), "hunter2");
    assert!(!format!("{value:?}").contains("hunter2"));
}

#[test]
fn node_url_scheme_is_checked() {
    let e = error_of(&GOOD.replace("ws://127.0.0.1:8545", "ftp://x"));
    assert!(e.contains("node[0].url"), "{e}");
}

#[test]
fn config_without_protected_contracts_is_rejected() {
    let e = error_of("[[node]]\nurl = \"ws://127.0.0.1:1\"\n");
    assert!(e.contains("key `protect`"), "{e}");
}

#[test]
fn malformed_toml_names_the_file_and_line() {
    let e = error_of("[[protect]\nname = ");
    assert!(e.starts_with("preempt.toml:") && e.contains("line 1"), "{e}");
}

#[test]
fn custom_pause_call_is_decoded() {
    let text = format!(
        "{GOOD}\n[protect.pause]\ntarget = \"0x0000000000000000000000000000000000000009\"\ncalldata = \"0xdeadbeef\"\n"
    );
    let config = parse(&text).expect("valid");
    assert_eq!(config.protected[0].pause.calldata.as_ref(), &[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(config.protected[0].pause.target, Address::with_last_byte(9));
}

#[test]
fn secret_in_a_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("key");
    std::fs::write(&path, "0xabc\n").expect("write");
    let r: SecretRef = format!("file:{}", path.display()).parse().expect("reference");
    assert_eq!(r.resolve().expect("readable").expose(), "0xabc");
    let missing: SecretRef = "file:/nonexistent/key".parse().expect("reference");
    let e = missing.resolve().expect_err("missing file");
    assert!(e.contains("/nonexistent/key"), "{e}");
}

#[test]
fn relays_need_a_relay_auth_key_and_an_http_url() {
    let with_relay = format!("{GOOD}\n[[relay]]\nurl = \"http://127.0.0.1:1\"\n");
    assert!(error_of(&with_relay).contains("key `relay_auth`"));
    let bad_url = format!("{GOOD}\n[relay_auth]\nkey = \"env:K\"\n[[relay]]\nurl = \"ws://x\"\n");
    assert!(error_of(&bad_url).contains("relay[0].url"));
    let mode = format!("{GOOD}\n[respond]\nmode = \"panic\"\n");
    assert!(error_of(&mode).contains("panic"), "unknown mode is named");
}
