//! Hostile input, as property tests and a replayed corpus (`fixtures/hostile/`): config files,
//! pending-tx frames, incident timelines and fee outbidding never panic and keep their
//! promises. Case counts keep the whole file well under a minute on 2 cores in a debug build;
//! `PROPTEST_CASES=N` runs every property N times instead.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use alloy::primitives::{Address, B256};
use preempt::{
    config::{self, Config, RespondConfig, ResponseMode},
    respond::{AttackFees, PauseFees, outbid},
};
use proptest::{prelude::*, sample::Index};
use serde_json::{Map, Value};

// ---- the targets, in one place so a rewrite of a module retargets one line ----

/// The frame decoder under test: a full pending-tx frame → (hash, sender), or why not.
fn decode_frame(frame: &str) -> Result<(B256, Address), String> {
    let source: Arc<str> = Arc::from("fuzz");
    preempt::ingest::decode_pending(frame, &source, Instant::now())
        .map(|p| (p.hash, p.tx.signer()))
        .map_err(|e| e.to_string())
}

/// Whether the decoder refuses frames whose claimed hash or sender is not what the signed
/// bytes say. The decoder on main trusts the node's `from` and hash; set this when ingest
/// verifies every frame (issue 9 item 1), and the forged corpus must then be refused.
const DECODER_REFUSES_FORGED_FRAMES: bool = false;

fn render_timeline(text: &str) -> String {
    preempt::incident::render_timeline(text)
}

// ---- helpers ----

const FILE: &str = "hostile.toml";
const GWEI: u128 = 1_000_000_000;

fn cases(n: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = n;
    }
    // The corpus in fixtures/hostile is the regression store: add what a failure prints there.
    config.failure_persistence = None;
    config
}

fn hostile_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hostile")
}

fn corpus(prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(hostile_dir())
        .expect("fixtures/hostile")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no {prefix}* files in fixtures/hostile");
    files
}

/// Maximal runs of 64 or more hex digits in `text`, lowercased.
fn long_hex_runs(text: &str) -> Vec<String> {
    let mut runs = Vec::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c.to_ascii_lowercase());
        } else {
            if run.len() >= 64 {
                runs.push(run.clone());
            }
            run.clear();
        }
    }
    runs
}

/// An error about `input` names the file, is one line, and carries no 64-hex-digit run of the
/// input (a private key), in any case, with or without `0x`.
fn assert_safe_error(input: &str, file: &str, error: &str) {
    assert!(error.starts_with(&format!("{file}: ")), "error does not name the file: {error}");
    assert!(!error.chars().any(char::is_control), "control character in: {error:?}");
    let lower = error.to_lowercase();
    for run in long_hex_runs(input) {
        for window in run.as_bytes().windows(64) {
            let window = std::str::from_utf8(window).expect("ascii");
            assert!(!lower.contains(window), "64 hex digits of the input in: {error}");
        }
    }
}

/// A config that parses cannot disarm the guard: every limit is inside its range.
fn assert_cannot_disarm(c: &Config) {
    let s = &c.simulation;
    assert!(config::MAX_TX_GAS.contains(&s.max_tx_gas), "{s:?}");
    assert!(config::VIEW_GAS_LIMIT.contains(&s.view_gas_limit), "{s:?}");
    assert!(config::WORKERS.contains(&(s.workers as u64)), "{s:?}");
    assert!(config::QUEUE_CAPACITY.contains(&(s.queue_capacity as u64)), "{s:?}");
    let r = &c.respond;
    assert!(config::RESEND_BLOCKS.contains(&r.resend_blocks), "{r:?}");
    assert!(r.max_priority_fee_per_gas_cap > 0, "{r:?}");
    assert!(r.max_priority_fee_per_gas_cap <= r.max_fee_per_gas_cap, "{r:?}");
    assert!(r.max_fee_per_gas_cap <= 1_000_000 * GWEI, "{r:?}");
    assert!(r.pause_gas_limit <= config::TX_GAS_CAP, "{r:?}");
    assert!(!c.protected.is_empty());
    for p in &c.protected {
        assert!(r.pause_gas_limit >= config::pause_gas_floor(&p.pause.calldata), "{r:?}");
        assert!(config::DRAIN_THRESHOLD_BPS.contains(&u64::from(p.drain_threshold_bps)));
    }
    let names: std::collections::HashSet<_> = c.nodes.iter().map(|n| &n.name).collect();
    assert_eq!(names.len(), c.nodes.len(), "node names are unique");
}

fn check_config_text(text: &str) {
    match Config::parse(text, Path::new(FILE)) {
        Ok(c) => {
            assert_cannot_disarm(&c);
            if let Err(e) = c.check_runnable() {
                assert_safe_error(text, FILE, &e.to_string());
            }
        }
        Err(e) => assert_safe_error(text, FILE, &e.to_string()),
    }
}

// ---- config ----

/// Every section, every key: the seed the structured mutations start from.
const FULL_CONFIG: &str = r#"[[node]]
name = "local"
url = "ws://127.0.0.1:8545"
pending = true

[[node]]
url = "http://127.0.0.1:8546"

[guardian]
key = "env:PREEMPT_GUARDIAN_KEY"

[simulation]
view_gas_limit = 3000000
max_tx_gas = 16777216
workers = 1
queue_capacity = 8192

[respond]
mode = "pause"
max_fee_per_gas_gwei = 1000
max_priority_fee_per_gas_gwei = 500
pause_gas_limit = 200000
resend_blocks = 3

[[relay]]
name = "flashbots"
url = "https://relay.example"

[relay_auth]
key = "file:/run/secrets/relay"

[incidents]
path = "incidents.jsonl"

[[protect]]
name = "EthVault"
address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
tokens = ["0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"]
drain_threshold_bps = 1000
claims = [{ view = "balances(address)", asset = "eth" }]
invariants = ["totalAssets() >= totalDeposits()", "solvent()"]
[protect.pause]
target = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
calldata = "0x8456cb59"
"#;

fn key_hex() -> impl Strategy<Value = String> {
    "[0-9a-fA-F]{64}"
}

/// Values a hostile or careless config holds: out-of-range numbers, wrong types, broken
/// strings, and private keys in every shape they get pasted.
fn hostile_value() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        "0",
        "-1",
        "1",
        "21000",
        "16777217",
        "9223372036854775807",
        "-9223372036854775808",
        "99999999999999999999",
        "1e400",
        "nan",
        "-inf",
        "inf",
        "0.0",
        "1e-12",
        "true",
        "[]",
        "{}",
        "[[]]",
        "1979-05-27T07:32:00Z",
        "\"\"",
        "\"env:\"",
        "\"file:\"",
        "\"env:PREEMPT_FUZZ_UNSET\"",
        "\"ws://\"",
        "\"alert\"",
        "\"dry-run\"",
        "'''",
        "\"\"\"",
        "\"\\u0000\"",
        "\"é\"",
    ])
    .prop_map(str::to_string);
    prop_oneof![
        6 => edge_number(),
        3 => fixed,
        2 => key_hex().prop_map(|k| format!("0x{k}")),
        2 => key_hex().prop_map(|k| format!("\"0x{k}")),
        2 => key_hex().prop_map(|k| format!("\"0x{k}\"")),
        1 => key_hex().prop_map(|k| format!("'{k}'")),
        1 => key_hex(),
        1 => key_hex().prop_map(|k| format!("\"env:{k}\"")),
        2 => any::<i64>().prop_map(|v| v.to_string()),
        1 => any::<f64>().prop_map(|v| format!("{v:?}")),
        2 => "\\PC{0,24}".prop_map(|s| format!("\"{s}\"")),
        1 => "[ -~]{0,24}",
    ]
}

/// Numbers at and beside every floor and ceiling, so mutations reach validation.
fn edge_number() -> impl Strategy<Value = String> {
    let edges: Vec<i64> = vec![
        0, 1, 2, 63, 64, 65, 255, 256, 257, 1_000, 1_023, 1_024, 9_999, 10_000, 10_001, 20_999,
        21_000, 26_063, 26_064, 99_999, 100_000, 999_999, 1_000_000, 4_194_304, 4_194_305,
        16_777_215, 16_777_216, 16_777_217,
    ];
    prop_oneof![
        3 => prop::sample::select(edges).prop_map(|v| v.to_string()),
        1 => prop::sample::select(vec!["0.5", "1e-9", "1e-10", "999999.9", "1000000.0", "1000000.1"])
            .prop_map(str::to_string),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(Index),
    Duplicate(Index),
    SetValue(Index, String),
    RenameKey(Index, String),
    Insert(Index, String),
    Swap(Index, Index),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    let line = prop_oneof![
        hostile_value().prop_map(|v| format!("key = {v}")),
        key_hex().prop_map(|k| format!("[{k}]")),
        key_hex().prop_map(|k| format!("0x{k} = 1")),
        prop::sample::select(vec![
            "[guardian]",
            "[[node]]",
            "[[protect]]",
            "[respond]",
            "[simulation]",
            "[[relay]]",
            "[relay_auth]",
            "[protect.pause]",
            "[[",
            "]",
            "=",
            "x =",
            "# comment",
        ])
        .prop_map(str::to_string),
    ];
    prop_oneof![
        1 => any::<Index>().prop_map(Edit::Delete),
        1 => any::<Index>().prop_map(Edit::Duplicate),
        4 => (any::<Index>(), hostile_value()).prop_map(|(i, v)| Edit::SetValue(i, v)),
        1 => (any::<Index>(), "[a-z_]{1,12}|\\PC{1,8}").prop_map(|(i, k)| Edit::RenameKey(i, k)),
        2 => (any::<Index>(), line).prop_map(|(i, l)| Edit::Insert(i, l)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for e in edits {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match e {
            Edit::Delete(i) => {
                lines.remove(i.index(n));
            }
            Edit::Duplicate(i) => {
                let l = lines[i.index(n)].clone();
                lines.insert(i.index(n), l);
            }
            Edit::SetValue(i, v) => {
                let l = &mut lines[i.index(n)];
                if let Some(eq) = l.find('=') {
                    *l = format!("{}= {v}", &l[..eq]);
                }
            }
            Edit::RenameKey(i, k) => {
                let l = &mut lines[i.index(n)];
                if let Some(eq) = l.find('=') {
                    *l = format!("{k} {}", &l[eq..]);
                }
            }
            Edit::Insert(i, l) => lines.insert(i.index(n + 1), l.clone()),
            Edit::Swap(a, b) => lines.swap(a.index(n), b.index(n)),
            Edit::Truncate(i) => {
                let l = &mut lines[i.index(n)];
                let mut cut = i.index(l.len() + 1);
                while !l.is_char_boundary(cut) {
                    cut -= 1;
                }
                l.truncate(cut);
            }
        }
    }
    lines.join("\n")
}

#[test]
fn the_full_config_seed_is_valid() {
    let c = Config::parse(FULL_CONFIG, Path::new(FILE)).expect("the mutation seed parses");
    assert_cannot_disarm(&c);
    assert_eq!(c.nodes.len(), 2);
}

proptest! {
    #![proptest_config(cases(1024))]

    /// Arbitrary bytes, read from a file as `preempt run` reads one.
    #[test]
    fn config_from_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(FILE);
        std::fs::write(&path, &bytes).expect("write");
        let file = path.display().to_string();
        let text = String::from_utf8_lossy(&bytes);
        match Config::load(&path) {
            Ok(c) => assert_cannot_disarm(&c),
            Err(e) => assert_safe_error(&text, &file, &e.to_string()),
        }
    }

    /// Text made of TOML's own punctuation, so the parser's deeper paths are reached.
    #[test]
    fn config_from_toml_shaped_text_never_panics(
        text in "([\\[\\]{}=\",.'#a-z_0-9 \\n-]|0x[0-9a-f]{64}|\\[\\[protect\\]\\]|\\[guardian\\]\\nkey = ){0,48}"
    ) {
        check_config_text(&text);
    }
}

proptest! {
    #![proptest_config(cases(1536))]

    /// Edits of a full config: a parsed result can never disarm the guard, an error always
    /// names the file, and no key pasted anywhere reaches the error.
    #[test]
    fn config_mutations_never_panic_disarm_or_leak(edits in prop::collection::vec(edit(), 1..5)) {
        check_config_text(&apply(FULL_CONFIG, &edits));
    }

    /// Values only, mostly numbers at the edges of their ranges: most of these parse, so this
    /// is the property that a config the loader accepts cannot disarm the guard.
    #[test]
    fn config_value_edits_never_disarm_the_guard(
        edits in prop::collection::vec(
            (any::<Index>(), prop_oneof![4 => edge_number(), 1 => hostile_value()])
                .prop_map(|(i, v)| Edit::SetValue(i, v)),
            1..4,
        )
    ) {
        check_config_text(&apply(FULL_CONFIG, &edits));
    }

}

#[test]
fn hostile_configs_are_refused_naming_file_and_key_and_never_the_secret() {
    for path in corpus("config-") {
        let bytes = std::fs::read(&path).expect("read");
        let text = String::from_utf8_lossy(&bytes);
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", path.display()));
        let file = path.display().to_string();
        let error = match Config::load(&path).and_then(|c| c.check_runnable().map(|()| c)) {
            Ok(_) => panic!("{file} was accepted"),
            Err(e) => e.to_string(),
        };
        assert_safe_error(&text, &file, &error);
        assert!(error.contains(expect), "{file}: want `{expect}` in: {error}");
    }
}

// ---- frames ----

fn real_frames() -> Vec<String> {
    corpus("frame-real-").iter().map(|p| std::fs::read_to_string(p).expect("read")).collect()
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "0x[0-9a-fA-F]{0,80}".prop_map(Value::String),
        "-?0x[0-9a-f]{1,3}|0x|0X1|0xzz|".prop_map(Value::String),
        "\\PC{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The keys a tx frame carries, and a few it never should.
const FRAME_KEYS: [&str; 24] = [
    "type",
    "chainId",
    "nonce",
    "gas",
    "gasPrice",
    "maxFeePerGas",
    "maxPriorityFeePerGas",
    "to",
    "value",
    "input",
    "accessList",
    "authorizationList",
    "r",
    "s",
    "v",
    "yParity",
    "hash",
    "from",
    "blockHash",
    "blockNumber",
    "transactionIndex",
    "blobVersionedHashes",
    "maxFeePerBlobGas",
    "data",
];

#[derive(Debug, Clone)]
enum FrameEdit {
    Set(Index, Value),
    Remove(Index),
    FlipByte(Index, u8),
    InsertByte(Index, u8),
    DeleteByte(Index),
    Truncate(Index),
}

fn frame_edit() -> impl Strategy<Value = FrameEdit> {
    prop_oneof![
        4 => (any::<Index>(), json_value()).prop_map(|(i, v)| FrameEdit::Set(i, v)),
        2 => any::<Index>().prop_map(FrameEdit::Remove),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| FrameEdit::FlipByte(i, b)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| FrameEdit::InsertByte(i, b)),
        1 => any::<Index>().prop_map(FrameEdit::DeleteByte),
        1 => any::<Index>().prop_map(FrameEdit::Truncate),
    ]
}

fn mutate_frame(frame: &str, edits: &[FrameEdit]) -> String {
    let mut object: Map<String, Value> = serde_json::from_str(frame).expect("a real frame");
    let mut bytes: Option<Vec<u8>> = None;
    for e in edits {
        match (e, bytes.as_mut()) {
            (FrameEdit::Set(i, v), None) => {
                object.insert(i.get(&FRAME_KEYS).to_string(), v.clone());
            }
            (FrameEdit::Remove(i), None) => {
                object.remove(*i.get(&FRAME_KEYS));
            }
            (FrameEdit::Set(..) | FrameEdit::Remove(_), Some(_)) => {}
            (byte_edit, _) => {
                let b =
                    bytes.get_or_insert_with(|| serde_json::to_vec(&object).expect("serialize"));
                edit_bytes(b, byte_edit);
            }
        }
    }
    match bytes {
        Some(b) => String::from_utf8_lossy(&b).into_owned(),
        None => serde_json::to_string(&object).expect("serialize"),
    }
}

fn edit_bytes(b: &mut Vec<u8>, e: &FrameEdit) {
    let n = b.len();
    match e {
        FrameEdit::FlipByte(i, x) if n > 0 => b[i.index(n)] ^= x | 1,
        FrameEdit::InsertByte(i, x) => b.insert(i.index(n + 1), *x),
        FrameEdit::DeleteByte(i) if n > 0 => {
            b.remove(i.index(n));
        }
        FrameEdit::Truncate(i) => b.truncate(i.index(n + 1)),
        _ => {}
    }
}

#[test]
fn real_frames_decode_to_their_hash_and_sender() {
    let dev0: Address = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266".parse().expect("address");
    for frame in real_frames() {
        let claimed: Value = serde_json::from_str(&frame).expect("json");
        let hash: B256 = claimed["hash"].as_str().expect("hash").parse().expect("hash");
        assert_eq!(decode_frame(&frame), Ok((hash, dev0)), "{frame}");
    }
}

proptest! {
    #![proptest_config(cases(2048))]

    #[test]
    fn frames_of_arbitrary_text_never_panic(text in "\\PC{0,256}") {
        let _ = decode_frame(&text);
    }

    #[test]
    fn frames_of_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_frame(&String::from_utf8_lossy(&bytes));
    }

    /// Real frames with fields replaced, removed or bytes broken.
    #[test]
    fn mutated_real_frames_never_panic(
        which in any::<Index>(),
        edits in prop::collection::vec(frame_edit(), 1..5),
    ) {
        let frames = real_frames();
        let frame: &String = which.get(&frames);
        let _ = decode_frame(&mutate_frame(frame, &edits));
    }
}

#[test]
fn hostile_frames_never_panic_and_bad_ones_are_refused() {
    for path in corpus("frame-") {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let bytes = std::fs::read(&path).expect("read");
        let decoded = decode_frame(&String::from_utf8_lossy(&bytes));
        let must_refuse = name.starts_with("frame-bad-")
            || (name.starts_with("frame-forged-") && DECODER_REFUSES_FORGED_FRAMES);
        if must_refuse {
            assert!(decoded.is_err(), "{name} decoded: {decoded:?}");
        } else if name.starts_with("frame-real-") {
            assert!(decoded.is_ok(), "{name}: {decoded:?}");
        }
    }
}

#[test]
fn a_20_mb_frame_is_refused_without_panic() {
    let frame = format!("{{\"input\":\"0x{}\"}}", "ab".repeat(10 << 20));
    assert!(decode_frame(&frame).is_err());
}

// ---- incident timeline ----

/// Records shaped like the incident file, with any JSON in every field the reader looks at.
fn timeline_record() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        Just(Value::from("detection")),
        Just(Value::from("outcome")),
        Just(Value::from("resend")),
        json_value(),
    ];
    let unicode = "\\PC{0,24}".prop_map(Value::String);
    let field = prop_oneof![3 => unicode, 2 => json_value()];
    let fields = prop::collection::btree_map(
        prop::sample::select(vec![
            "attack_tx",
            "attack_from",
            "attack_to",
            "seen_from",
            "source",
            "sim_time_us",
            "sim_block",
            "sim_gas_used",
            "sent_us",
            "pause_tx",
            "block",
            "attack_index",
            "attack_succeeded",
            "pause_before_attack",
            "same_block",
            "pause_index",
            "contract_name",
            "contract_paused",
            "max_fee_per_gas",
            "tx_hash",
        ]),
        field.clone(),
        0..12,
    );
    let nested = prop::collection::btree_map(
        prop::sample::select(vec![
            "attack_fees",
            "times",
            "findings",
            "decisions",
            "submitted",
            "holdings",
            "report",
        ]),
        (field.clone(), field).prop_map(|(a, b)| {
            // Arrays of objects and pairs: the shapes the reader walks into.
            Value::Array(vec![
                a.clone(),
                Value::Array(vec![
                    b.clone(),
                    Value::Object(Map::from_iter([
                        (
                            "plan".to_string(),
                            Value::Object(Map::from_iter([
                                ("tx_hash".to_string(), a.clone()),
                                ("max_fee_per_gas".to_string(), b.clone()),
                            ])),
                        ),
                        ("action".to_string(), a.clone()),
                        ("results".to_string(), Value::Array(vec![b.clone()])),
                        (
                            "asset".to_string(),
                            Value::Object(Map::from_iter([("Token".to_string(), a)])),
                        ),
                    ])),
                ]),
                b,
            ])
        }),
        0..5,
    );
    (kind, fields, nested).prop_map(|(kind, fields, nested)| {
        let mut record = Map::new();
        record.insert("kind".into(), kind);
        record.extend(fields.into_iter().map(|(k, v)| (k.to_string(), v)));
        record.extend(nested.into_iter().map(|(k, v)| (k.to_string(), v)));
        Value::Object(record)
    })
}

proptest! {
    #![proptest_config(cases(768))]

    /// Any text: every line that is not JSON is named as such, by its number.
    #[test]
    fn timeline_of_arbitrary_lines_never_panics(lines in prop::collection::vec("\\PC{0,64}", 0..8)) {
        let text = lines.join("\n");
        let out = render_timeline(&text);
        for (n, line) in text.lines().enumerate() {
            if !line.trim().is_empty() && serde_json::from_str::<Value>(line).is_err() {
                prop_assert!(out.contains(&format!("line {}: not a record", n + 1)), "{out}");
            }
        }
    }

    #[test]
    fn timeline_of_hostile_records_never_panics(records in prop::collection::vec(timeline_record(), 1..4)) {
        let text: Vec<String> = records.iter().map(Value::to_string).collect();
        let out = render_timeline(&text.join("\n"));
        prop_assert!(!out.is_empty(), "every record prints something");
    }
}

#[test]
fn hostile_timelines_never_panic() {
    for path in corpus("timeline-") {
        let bytes = std::fs::read(&path).expect("read");
        let out = render_timeline(&String::from_utf8_lossy(&bytes));
        assert!(!out.is_empty(), "{}", path.display());
    }
}

// ---- fee outbidding ----

/// Caps as validation allows them (0 < tip cap <= max-fee cap <= 1,000,000 gwei, the max-fee
/// cap above 1 gwei as `check_fee_caps` needs), and a next base fee the cap can pay.
fn caps_and_base_fee() -> impl Strategy<Value = (RespondConfig, u64)> {
    (GWEI + 1..=1_000_000 * GWEI)
        .prop_flat_map(|max| (Just(max), 1..=max, 0..=((max - GWEI) / 2) as u64))
        .prop_map(|(max, tip, base)| {
            let config = RespondConfig {
                mode: ResponseMode::Pause,
                max_fee_per_gas_cap: max,
                max_priority_fee_per_gas_cap: tip,
                pause_gas_limit: 200_000,
                resend_blocks: 3,
                safe: None,
            };
            (config, base)
        })
}

/// Attack fees anywhere: near the caps, far above them, or anything at all.
fn attack_fees() -> impl Strategy<Value = AttackFees> {
    let fee = prop_oneof![
        3 => 0..=2_000_000 * GWEI,
        1 => any::<u128>(),
        1 => prop::sample::select(vec![0, 1, GWEI - 1, GWEI, u128::MAX - 1, u128::MAX]),
    ];
    (fee.clone(), fee).prop_map(|(max_fee_per_gas, max_priority_fee_per_gas)| AttackFees {
        max_fee_per_gas,
        max_priority_fee_per_gas,
    })
}

/// `new` is at least 10% above `old` (what nodes require of a replacement), or at the cap.
fn bumped_enough(new: u128, old: u128, cap: u128) -> bool {
    new.saturating_mul(10) >= old.saturating_mul(11) || new == cap
}

proptest! {
    #![proptest_config(cases(4096))]

    #[test]
    fn pause_fees_outbid_the_attack_on_both_fields_or_say_a_cap_binds(
        (config, base_fee) in caps_and_base_fee(),
        attack in attack_fees(),
    ) {
        let pause = outbid(attack, base_fee, &config);
        prop_assert!(pause.max_fee_per_gas >= pause.max_priority_fee_per_gas);
        prop_assert!(pause.max_fee_per_gas <= config.max_fee_per_gas_cap);
        prop_assert!(pause.max_priority_fee_per_gas <= config.max_priority_fee_per_gas_cap);
        prop_assert!(pause.max_fee_per_gas >= 2 * u128::from(base_fee), "pays the next base fee");
        let room = attack.max_priority_fee_per_gas < config.max_priority_fee_per_gas_cap
            && attack.max_fee_per_gas < config.max_fee_per_gas_cap;
        prop_assert_eq!(pause.outbids(attack), room, "{:?} vs {:?}", pause, attack);
        if pause.outbids(attack) {
            prop_assert!(pause.max_fee_per_gas > attack.max_fee_per_gas);
            prop_assert!(pause.max_priority_fee_per_gas > attack.max_priority_fee_per_gas);
        }
    }

    #[test]
    fn replacement_pause_is_bumped_ten_percent_or_capped(
        (config, base_fee) in caps_and_base_fee(),
        attack in attack_fees(),
        old_max in any::<Index>(),
        old_tip in any::<Index>(),
    ) {
        // The pause being replaced was signed within the same caps, tip <= max fee.
        let old_max = old_max.index(config.max_fee_per_gas_cap as usize) as u128 + 1;
        let old_tip = old_tip.index(old_max.min(config.max_priority_fee_per_gas_cap) as usize) as u128 + 1;
        let fresh = outbid(attack, base_fee, &config);
        let bumped: PauseFees = fresh.bumped_over(old_max, old_tip, &config);
        prop_assert!(bumped.max_fee_per_gas >= bumped.max_priority_fee_per_gas);
        prop_assert!(bumped.max_fee_per_gas <= config.max_fee_per_gas_cap);
        prop_assert!(bumped.max_priority_fee_per_gas <= config.max_priority_fee_per_gas_cap);
        prop_assert!(bumped_enough(bumped.max_priority_fee_per_gas, old_tip, config.max_priority_fee_per_gas_cap), "{:?} over tip {}", bumped, old_tip);
        prop_assert!(bumped_enough(bumped.max_fee_per_gas, old_max, config.max_fee_per_gas_cap), "{:?} over max {}", bumped, old_max);
        prop_assert!(bumped.max_fee_per_gas >= fresh.max_fee_per_gas, "never below the fresh bid");
        prop_assert!(bumped.max_priority_fee_per_gas >= fresh.max_priority_fee_per_gas);
    }
}
