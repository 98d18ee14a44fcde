use std::path::Path;

use alloy::primitives::Address;

use super::{syntax::reason_of, *};

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

/// anvil's first dev key: public, but shaped exactly like a real one.
const KEY_HEX: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

const GWEI: u128 = 1_000_000_000;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("preempt.toml"))
}

fn error_of(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("config should be rejected:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// `GOOD` with `[section]` holding `line` (sections GOOD does not have).
fn with(section: &str, line: &str) -> String {
    format!("{GOOD}\n[{section}]\n{line}\n")
}

fn assert_key_absent(e: &str) {
    let lower = e.to_lowercase();
    assert!(!lower.contains(KEY_HEX), "the key's hex is in the error: {e}");
    // Nor any long piece of it.
    for window in KEY_HEX.as_bytes().windows(16) {
        let piece = std::str::from_utf8(window).expect("ascii");
        assert!(!lower.contains(piece), "a piece of the key ({piece}) is in the error: {e}");
    }
}

#[test]
fn good_config_parses_with_default_pause_call() {
    let config = parse(GOOD).expect("valid config");
    assert_eq!(config.file, Path::new("preempt.toml"));
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
fn defaults_fill_every_omitted_key() {
    let c = parse(GOOD).expect("valid");
    assert_eq!(c.simulation.view_gas_limit, 3_000_000);
    assert_eq!(c.simulation.max_tx_gas, 1 << 24);
    assert_eq!(c.simulation.queue_capacity, 8_192);
    assert!(c.simulation.workers >= 1);
    assert_eq!(c.respond.mode, ResponseMode::Pause);
    assert_eq!(c.respond.max_fee_per_gas_cap, 1_000 * GWEI);
    assert_eq!(c.respond.max_priority_fee_per_gas_cap, 500 * GWEI);
    assert_eq!(c.respond.pause_gas_limit, 200_000);
    assert_eq!(c.respond.resend_blocks, 3);
    assert!(c.nodes[0].pending);
    assert_eq!(c.protected[0].drain_threshold_bps, 1_000);
    let unnamed = parse(&GOOD.replace("name = \"local\"\n", "")).expect("valid");
    assert_eq!(unnamed.nodes[0].name, "node0");
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
fn unknown_key_is_rejected_with_file_line_and_key_path() {
    let e = error_of(&GOOD.replace("drain_threshold_bps", "drain_treshold_bps"));
    assert!(
        e.starts_with("preempt.toml: line 12, column 1: key `protect[0].drain_treshold_bps`: unknown field, expected one of `name`"),
        "{e}"
    );
}

#[test]
fn bad_address_names_the_key() {
    let e = error_of(&GOOD.replace("0x5FbDB2315678afecb367f032d93F642f64180aa3", "0x1234"));
    assert!(
        e.starts_with("preempt.toml: key `protect[0].address`: `0x1234` is not an address"),
        "{e}"
    );
}

#[test]
fn threshold_out_of_range_is_rejected_with_the_range() {
    for bad in ["20000", "0", "-1"] {
        let e = error_of(
            &GOOD.replace("drain_threshold_bps = 1000", &format!("drain_threshold_bps = {bad}")),
        );
        assert!(
            e.starts_with(&format!(
                "preempt.toml: key `protect[0].drain_threshold_bps`: {bad} is outside 1..=10000: "
            )),
            "{e}"
        );
    }
}

#[test]
fn claim_on_a_token_not_held_is_rejected() {
    let text =
        GOOD.replace(r#"asset = "eth""#, r#"asset = "0x0000000000000000000000000000000000000001""#);
    let e = error_of(&text);
    assert!(
        e.starts_with("preempt.toml: key `protect[0].claims[0].asset`: ")
            && e.contains("not in this contract's `tokens`"),
        "{e}"
    );
}

/// Every limit: its floor and ceiling are accepted, one below and one above are refused with
/// the file, the key and the allowed range.
#[test]
fn every_limit_has_a_floor_and_a_ceiling() {
    let cases: [(&str, &str, u64, u64); 6] = [
        ("simulation", "max_tx_gas", 1_000_000, 1 << 24),
        ("simulation", "view_gas_limit", 100_000, 1 << 24),
        ("simulation", "workers", 1, 256),
        ("simulation", "queue_capacity", 1_024, 4_194_304),
        ("simulation", "keep_warm_ms", 0, 1_000),
        ("respond", "resend_blocks", 1, 64),
    ];
    for (section, key, floor, ceiling) in cases {
        for ok in [floor, ceiling] {
            parse(&with(section, &format!("{key} = {ok}")))
                .unwrap_or_else(|e| panic!("{section}.{key} = {ok} is allowed: {e}"));
        }
        for bad in [floor as i64 - 1, ceiling as i64 + 1, -1, 0] {
            if bad == floor as i64 {
                continue;
            }
            let e = error_of(&with(section, &format!("{key} = {bad}")));
            let want = format!(
                "preempt.toml: key `{section}.{key}`: {bad} is outside {floor}..={ceiling}: "
            );
            assert!(e.starts_with(&want), "{section}.{key} = {bad}: {e}");
        }
    }
}

#[test]
fn worker_nice_is_linux_nice_range_and_defaults_ahead_of_the_node() {
    assert_eq!(parse(GOOD).expect("good").simulation.worker_nice, -10);
    for ok in [-20, 0, 19] {
        let c = parse(&with("simulation", &format!("worker_nice = {ok}"))).expect("allowed");
        assert_eq!(c.simulation.worker_nice, ok);
    }
    for bad in [-21, 20] {
        let e = error_of(&with("simulation", &format!("worker_nice = {bad}")));
        assert!(
            e.starts_with(&format!(
                "preempt.toml: key `simulation.worker_nice`: {bad} is outside -20..=19: "
            )),
            "{e}"
        );
    }
}

#[test]
fn max_tx_gas_zero_is_refused_with_why() {
    let e = error_of(&with("simulation", "max_tx_gas = 0"));
    assert_eq!(
        e,
        "preempt.toml: key `simulation.max_tx_gas`: 0 is outside 1000000..=16777216: a tx is \
         simulated with at most this much gas, so an attack that needs more is missed; no tx \
         above 2^24 gas can be mined"
    );
}

#[test]
fn pause_gas_limit_must_cover_intrinsic_gas_calldata_and_one_write() {
    // pause(): four non-zero bytes = 16 tokens: 21,000 + 64 + 5,000.
    assert_eq!(pause_gas_floor(&PAUSE_SELECTOR), 26_064);
    parse(&with("respond", "pause_gas_limit = 26064")).expect("the floor is allowed");
    for bad in ["0", "21000", "26063", "16777217"] {
        let e = error_of(&with("respond", &format!("pause_gas_limit = {bad}")));
        assert!(
            e.starts_with(&format!(
                "preempt.toml: key `respond.pause_gas_limit`: {bad} is outside 26064..=16777216: the node refuses"
            )),
            "{e}"
        );
    }
    // A long custom call raises the floor: 600 non-zero bytes = 2,400 tokens, and EIP-7623's
    // 10 gas a token (24,000) beats 4 a token plus the write (14,600).
    let calldata = format!("0x{}", "ab".repeat(600));
    let text = format!(
        "{GOOD}\n[protect.pause]\ncalldata = \"{calldata}\"\n[respond]\npause_gas_limit = 44999\n"
    );
    let e = error_of(&text);
    assert!(e.contains("44999 is outside 45000..=16777216"), "{e}");
}

#[test]
fn fee_caps_must_be_positive_finite_ordered_and_sane() {
    for bad in ["0", "-5", "nan", "inf", "1000001", "0.0000000001"] {
        let e = error_of(&with("respond", &format!("max_fee_per_gas_gwei = {bad}")));
        assert!(
            e.starts_with("preempt.toml: key `respond.max_fee_per_gas_gwei`: ")
                && e.contains("is outside 0.000000001..=1000000 gwei"),
            "{bad}: {e}"
        );
    }
    let e =
        error_of(&with("respond", "max_fee_per_gas_gwei = 10\nmax_priority_fee_per_gas_gwei = 20"));
    assert!(
        e.starts_with("preempt.toml: key `respond.max_priority_fee_per_gas_gwei`: 20 gwei is above `respond.max_fee_per_gas_gwei` (10 gwei)"),
        "{e}"
    );
    let c =
        parse(&with("respond", "max_fee_per_gas_gwei = 1.5\nmax_priority_fee_per_gas_gwei = 1"))
            .expect("fractions of a gwei");
    assert_eq!(c.respond.max_fee_per_gas_cap, 1_500_000_000);
    assert_eq!(c.respond.max_priority_fee_per_gas_cap, GWEI);
}

#[test]
fn fee_cap_that_cannot_pay_twice_the_next_base_fee_is_refused_at_start() {
    let c =
        parse(&with("respond", "max_fee_per_gas_gwei = 201\nmax_priority_fee_per_gas_gwei = 1"))
            .expect("valid");
    c.check_fee_caps(100 * GWEI).expect("201 gwei pays 2 x 100 + 1");
    let e = c.check_fee_caps(100 * GWEI + 1).expect_err("one wei more").to_string();
    assert_eq!(
        e,
        "preempt.toml: key `respond.max_fee_per_gas_gwei`: 201 gwei cannot pay the next block: \
         its base fee is 100.000000001 gwei, and a pause needs at least 2 x base fee + 1 gwei = \
         201.000000002 gwei"
    );
    assert!(c.check_fee_caps(u128::MAX).is_err(), "no overflow on a hostile base fee");
}

#[test]
fn run_needs_a_node_and_a_guardian_unless_it_only_alerts() {
    let no_node = GOOD.replace("[[node]]\nname = \"local\"\nurl = \"ws://127.0.0.1:8545\"\n", "");
    let c = parse(&no_node).expect("`check --rpc` needs no node");
    let e = c.check_runnable().expect_err("run does").to_string();
    assert_eq!(e, "preempt.toml: key `node`: no node to watch: add a [[node]] table with a `url`");

    let no_guardian = GOOD.replace("[guardian]\nkey = \"env:PREEMPT_GUARDIAN_KEY\"\n", "");
    let e = parse(&no_guardian).expect("valid").check_runnable().expect_err("pause mode");
    assert!(
        e.to_string().starts_with("preempt.toml: key `guardian`: this mode signs pauses"),
        "{e}"
    );
    let alert = format!("{no_guardian}\n[respond]\nmode = \"alert\"\n");
    parse(&alert).expect("valid").check_runnable().expect("alert mode needs no key");
    parse(GOOD).expect("valid").check_runnable().expect("runnable");
}

#[test]
fn node_and_relay_names_are_unique() {
    let two = format!("{GOOD}\n[[node]]\nname = \"local\"\nurl = \"ws://127.0.0.1:8546\"\n");
    let e = error_of(&two);
    assert_eq!(
        e,
        "preempt.toml: key `node[1].name`: `local` names two nodes; node names must be unique"
    );
    // A default name counts too.
    let clash = format!("{GOOD}\n[[node]]\nurl = \"ws://127.0.0.1:8546\"\n")
        .replace("name = \"local\"", "name = \"node1\"");
    assert!(error_of(&clash).contains("key `node[1].name`: `node1` names two nodes"));
    let relays = format!(
        "{GOOD}\n[relay_auth]\nkey = \"env:R\"\n[[relay]]\nname = \"a\"\nurl = \"http://x\"\n[[relay]]\nname = \"a\"\nurl = \"http://y\"\n"
    );
    assert!(
        error_of(&relays).starts_with("preempt.toml: key `relay[1].name`: `a` names two relays")
    );
}

#[test]
fn node_url_scheme_is_checked_without_printing_the_url() {
    let e = error_of(&GOOD.replace("ws://127.0.0.1:8545", "ftp://user:s3cretapikey@x"));
    assert_eq!(
        e,
        "preempt.toml: key `node[0].url`: `ftp://…` is neither ws://, wss://, http(s):// nor an IPC socket path"
    );
    let e = error_of(&format!(
        "{GOOD}\n[relay_auth]\nkey = \"env:R\"\n[[relay]]\nurl = \"ws://k3y@x\"\n"
    ));
    assert_eq!(e, "preempt.toml: key `relay[0].url`: `ws://…` is not an http(s) URL");
}

#[test]
fn config_without_protected_contracts_is_rejected() {
    let e = error_of("[[node]]\nurl = \"ws://127.0.0.1:1\"\n");
    assert_eq!(e, "preempt.toml: key `protect`: no contract to protect: add a [[protect]] table");
}

#[test]
fn malformed_toml_names_the_file_and_line() {
    let e = error_of("[[protect]\nname = ");
    assert_eq!(
        e,
        "preempt.toml: line 1, column 11: key `protect[0]`: unclosed array table, expected `]`"
    );
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
fn relays_need_a_relay_auth_key_and_an_http_url() {
    let with_relay = format!("{GOOD}\n[[relay]]\nurl = \"http://127.0.0.1:1\"\n");
    assert_eq!(
        error_of(&with_relay),
        "preempt.toml: key `relay_auth`: relays need a [relay_auth] key to sign bundles"
    );
    let bad_url = format!("{GOOD}\n[relay_auth]\nkey = \"env:K\"\n[[relay]]\nurl = \"ws://x\"\n");
    assert!(error_of(&bad_url).starts_with("preempt.toml: key `relay[0].url`: "));
}

#[test]
fn unknown_mode_names_the_key_and_the_choices_but_not_the_value() {
    let e = error_of(&with("respond", "mode = \"panic\""));
    assert!(
        e.starts_with("preempt.toml: line 17, column 8: key `respond.mode`: unknown variant, expected one of `pause`, `alert`, `dry-run`"),
        "{e}"
    );
    assert!(!e.contains("panic"), "{e}");
}

// ---- secrets ----

#[test]
fn guardian_key_given_inline_is_refused_without_echoing_it() {
    for secret in [format!("0x{KEY_HEX}"), KEY_HEX.to_string(), KEY_HEX.to_uppercase()] {
        let e = error_of(&GOOD.replace("env:PREEMPT_GUARDIAN_KEY", &secret));
        assert!(
            e.starts_with("preempt.toml: key `guardian.key`: secrets are given by reference only"),
            "{e}"
        );
        assert_key_absent(&e);
    }
}

/// The three ways a key reaches the guardian line by mistake, in upper and lower case, with and
/// without `0x`, in both secret tables: the error names the place and never the key.
#[test]
fn toml_errors_on_a_secret_line_never_print_the_key() {
    for hex in [KEY_HEX.to_string(), KEY_HEX.to_uppercase()] {
        for prefix in ["0x", ""] {
            let k = format!("{prefix}{hex}");
            for (table, key) in
                [("guardian", "key"), ("relay_auth", "key"), ("guardian", "password")]
            {
                for value in [k.clone(), format!("\"{k}"), format!("\"{k}\""), format!("'{k}")] {
                    let text = format!("{GOOD}\n[{table}]\n{key} = {value}\n")
                        .replace("[guardian]\nkey = \"env:PREEMPT_GUARDIAN_KEY\"\n", "");
                    let e = error_of(&text);
                    assert!(e.starts_with("preempt.toml: "), "{e}");
                    let literal = value.len() > 2 && value.starts_with('"') && value.ends_with('"');
                    if literal {
                        // Valid TOML: validation names the table or the key.
                        assert!(e.contains(&format!("key `{table}")), "{value}: {e}");
                    } else {
                        assert!(e.contains(&format!("key `{table}.{key}`: ")), "{value}: {e}");
                    }
                    assert_key_absent(&e);
                }
            }
        }
    }
}

#[test]
fn unquoted_key_error_says_where_and_how_to_give_a_secret() {
    let text = GOOD.replace("\"env:PREEMPT_GUARDIAN_KEY\"", &format!("0x{KEY_HEX}"));
    assert_eq!(
        error_of(&text),
        "preempt.toml: line 7, column 7: key `guardian.key`: integer number overflowed; secrets \
         are given by reference only: \"env:VAR\" or \"file:PATH\""
    );
}

#[test]
fn a_key_pasted_as_a_key_name_a_table_or_a_value_elsewhere_is_redacted() {
    for text in [
        format!("{GOOD}\n[respond]\n0x{KEY_HEX} = 1\n"),
        format!("{GOOD}\n[{KEY_HEX}]\n"),
        format!("{GOOD}\n[respond]\nmode = \"0x{KEY_HEX}\"\n"),
        format!("{GOOD}\n[simulation]\nworkers = \"{KEY_HEX}\"\n"),
        GOOD.replace("0x5FbDB2315678afecb367f032d93F642f64180aa3", &format!("0x{KEY_HEX}")),
        GOOD.replace("solvent()", &format!("{KEY_HEX}()")),
        GOOD.replace("env:PREEMPT_GUARDIAN_KEY", &format!("env:{KEY_HEX}")),
        GOOD.replace("env:PREEMPT_GUARDIAN_KEY", &format!("file:/keys/{KEY_HEX}")),
    ] {
        let e = match parse(&text) {
            Ok(c) => {
                c.resolve_secret(SecretKey::GuardianKey).expect_err("no such file").to_string()
            }
            Err(e) => e.to_string(),
        };
        assert!(e.starts_with("preempt.toml: "), "{e}");
        assert_key_absent(&e);
    }
}

#[test]
fn a_password_of_the_wrong_type_is_not_echoed() {
    let text = GOOD.replace(
        "key = \"env:PREEMPT_GUARDIAN_KEY\"",
        "keystore = \"/k.json\"\npassword = 8675309",
    );
    assert_eq!(
        error_of(&text),
        "preempt.toml: line 8, column 12: key `guardian.password`: invalid type: integer, expected \
         a string; secrets are given by reference only: \"env:VAR\" or \"file:PATH\""
    );
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
fn secret_in_a_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("key");
    std::fs::write(&path, "0xabc\n").expect("write");
    let r: SecretRef = format!("file:{}", path.display()).parse().expect("reference");
    assert_eq!(r.resolve().expect("readable").expose(), "0xabc");
    let missing: SecretRef = "file:/nonexistent/key".parse().expect("reference");
    let e = missing.resolve().expect_err("missing file");
    assert!(e.contains("/nonexistent/key"), "{e}");
    std::fs::write(&path, " \n").expect("write");
    assert!(r.resolve().expect_err("empty").ends_with("is empty"));
}

#[test]
fn unresolvable_secrets_name_the_file_and_the_key() {
    let text = GOOD.replace("PREEMPT_GUARDIAN_KEY", "PREEMPT_TEST_NEVER_SET_7F3A")
        + "\n[relay_auth]\nkey = \"file:/nonexistent/relay.key\"\n";
    let c = parse(&text).expect("valid");
    let e = c.resolve_secret(SecretKey::GuardianKey).expect_err("unset").to_string();
    assert_eq!(
        e,
        "preempt.toml: key `guardian.key`: environment variable PREEMPT_TEST_NEVER_SET_7F3A is not set"
    );
    let e = c.resolve_secret(SecretKey::RelayAuthKey).expect_err("no file").to_string();
    assert!(
        e.starts_with(
            "preempt.toml: key `relay_auth.key`: cannot read secret file /nonexistent/relay.key: "
        ),
        "{e}"
    );
    assert!(c.resolve_secret(SecretKey::GuardianPassword).expect("no keystore").is_none());

    let keystore = GOOD.replace(
        "key = \"env:PREEMPT_GUARDIAN_KEY\"",
        "keystore = \"/k.json\"\npassword = \"env:PREEMPT_TEST_NEVER_SET_7F3B\"",
    );
    let c = parse(&keystore).expect("valid");
    let e = c.resolve_secret(SecretKey::GuardianPassword).expect_err("unset").to_string();
    assert!(e.starts_with("preempt.toml: key `guardian.password`: environment variable"), "{e}");
}

#[test]
fn env_reference_must_name_a_variable() {
    let e = error_of(&GOOD.replace("env:PREEMPT_GUARDIAN_KEY", "file:"));
    assert_eq!(e, "preempt.toml: key `guardian.key`: `file:` needs a path");
    for bad in ["env:1ABC", "env:A-B", "env:A B"] {
        let e = error_of(&GOOD.replace("env:PREEMPT_GUARDIAN_KEY", bad));
        assert!(
            e.starts_with(
                "preempt.toml: key `guardian.key`: `env:` must name an environment variable"
            ),
            "{bad}: {e}"
        );
    }
}

#[test]
fn guardian_and_relay_auth_must_be_different_keys() {
    let same = format!("{GOOD}\n[relay_auth]\nkey = \"env:PREEMPT_GUARDIAN_KEY\"\n");
    assert_eq!(
        error_of(&same),
        "preempt.toml: key `relay_auth.key`: env:PREEMPT_GUARDIAN_KEY is also `guardian.key`: \
         the relay-auth key must be a separate key, so that what signs bundle headers can never \
         sign a pause"
    );
    let c = parse(&format!("{GOOD}\n[relay_auth]\nkey = \"env:OTHER\"\n")).expect("valid");
    let a = Address::with_last_byte(1);
    c.check_distinct_keys(a, Address::with_last_byte(2)).expect("different keys");
    let e = c.check_distinct_keys(a, a).expect_err("same key").to_string();
    assert!(
        e.starts_with("preempt.toml: key `relay_auth.key`: holds the guardian's key (0x0000000000000000000000000000000000000001)"),
        "{e}"
    );
}

// ---- TOML error shapes ----

#[test]
fn key_path_follows_array_tables_and_multi_line_values() {
    let second = "\n[[protect]]\nname = \"Other\"\naddress = \"0x00000000000000000000000000000000000000bb\"\n";
    let e = error_of(&format!("{GOOD}{second}[protect.pause]\ncalldata = 12\n"));
    assert!(
        e.contains("key `protect[1].pause.calldata`: invalid type: integer, expected a string"),
        "{e}"
    );
    let e = error_of(&GOOD.replace(
        "invariants = [\"totalAssets() >= totalDeposits()\", \"solvent()\"]",
        "invariants = [\n  \"solvent()\",\n  5,\n]",
    ));
    assert!(
        e.contains("line 16, column 3: key `protect[0].invariants`: invalid type: integer"),
        "{e}"
    );
}

#[test]
fn reasons_keep_the_schema_and_drop_the_input() {
    assert_eq!(
        reason_of("invalid type: string \"0xdead\", expected usize"),
        "invalid type: string, expected usize"
    );
    assert_eq!(
        reason_of("unknown field `x, expected y`, expected `a` or `b`"),
        "unknown field, expected `a` or `b`"
    );
    assert_eq!(reason_of("missing field `url`"), "missing field `url`");
    assert_eq!(
        reason_of("unexpected keys in table: s3cret, available keys: a"),
        "unexpected keys in table"
    );
    assert_eq!(reason_of("`x`"), "invalid value");
}

#[test]
fn control_characters_from_the_file_never_reach_an_error() {
    let e = error_of(&GOOD.replace("0x5FbDB2315678afecb367f032d93F642f64180aa3", "\\u001b[2J\\n"));
    assert_eq!(
        e,
        "preempt.toml: key `protect[0].address`: `?[2J?` is not an address: invalid string length"
    );
}

#[test]
fn redaction_keeps_addresses_and_hides_longer_hex() {
    let address = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    assert_eq!(error::redact(address), address);
    assert_eq!(error::redact(&format!("a 0x{KEY_HEX}!")), "a 0x<redacted>!");
}

#[test]
fn guardian_safe_is_an_address_and_the_key_is_an_owner_unless_it_says_module() {
    let safe = "0x00000000000000000000000000000000000005af";
    let owner = GOOD.replace(
        "key = \"env:PREEMPT_GUARDIAN_KEY\"\n",
        &format!("key = \"env:PREEMPT_GUARDIAN_KEY\"\nsafe = \"{safe}\"\n"),
    );
    let c = parse(&owner).expect("valid");
    assert_eq!(
        c.respond.safe,
        Some(GuardianSafe { address: safe.parse().expect("address"), role: SafeRole::Owner })
    );
    assert_eq!(parse(GOOD).expect("valid").respond.safe, None, "no Safe: the key pauses itself");

    let module = owner.replace(
        &format!("safe = \"{safe}\"\n"),
        &format!("safe = \"{safe}\"\nsafe_role = \"module\"\n"),
    );
    assert_eq!(parse(&module).expect("valid").respond.safe.map(|s| s.role), Some(SafeRole::Module));

    let e = error_of(&owner.replace(safe, "0xnot-a-safe"));
    assert!(
        e.starts_with("preempt.toml: key `guardian.safe`: `0xnot-a-safe` is not an address"),
        "{e}"
    );
    let e = error_of(&owner.replace(safe, "0x0000000000000000000000000000000000000000"));
    assert_eq!(e, "preempt.toml: key `guardian.safe`: the zero address is not a Safe");
    let e = error_of(&GOOD.replace(
        "key = \"env:PREEMPT_GUARDIAN_KEY\"\n",
        "key = \"env:PREEMPT_GUARDIAN_KEY\"\nsafe_role = \"module\"\n",
    ));
    assert_eq!(
        e,
        "preempt.toml: key `guardian.safe_role`: a role in a Safe needs `safe`, the Safe's address"
    );
    let e = error_of(&module.replace("\"module\"", "\"delegate\""));
    assert!(e.contains("guardian.safe_role"), "{e}");
}

#[test]
fn metrics_are_served_only_where_the_section_says() {
    assert_eq!(parse(GOOD).expect("good").metrics_listen, None);
    let c = parse(&format!("{GOOD}\n[metrics]\nlisten = \"127.0.0.1:9464\"\n")).expect("listen");
    assert_eq!(c.metrics_listen, Some("127.0.0.1:9464".parse().expect("addr")));
}

#[test]
fn a_bad_metrics_section_names_the_key_and_the_file() {
    let bad = error_of(&format!("{GOOD}\n[metrics]\nlisten = \"localhost\"\n"));
    assert!(
        bad.starts_with("preempt.toml: key `metrics.listen`: give an IP address and a port"),
        "{bad}"
    );
    let unknown = error_of(&format!("{GOOD}\n[metrics]\nlisten = \"127.0.0.1:1\"\nport = 2\n"));
    assert!(unknown.contains("preempt.toml") && unknown.contains("port"), "{unknown}");
    let missing = error_of(&format!("{GOOD}\n[metrics]\n"));
    assert!(missing.contains("preempt.toml") && missing.contains("listen"), "{missing}");
}
