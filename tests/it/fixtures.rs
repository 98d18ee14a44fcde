//! Committed artifacts match the sources they were compiled from (a full rebuild comparison
//! runs in scripts/test.sh as `scripts/build-fixtures.sh --check`).

use std::path::Path;

use alloy::primitives::keccak256;

#[test]
fn every_artifact_records_the_keccak_of_its_current_source() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("fixtures/artifacts");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("artifacts dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let artifact: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let source = artifact["sourceName"].as_str().expect("sourceName");
        let recorded = artifact["sourceKeccak256"].as_str().expect("sourceKeccak256");
        let bytes = std::fs::read(root.join(source)).unwrap_or_else(|e| panic!("{source}: {e}"));
        assert_eq!(
            format!("{}", keccak256(&bytes)),
            recorded,
            "{} is stale: run scripts/build-fixtures.sh",
            path.display()
        );
        assert!(
            artifact["bytecode"].as_str().is_some_and(|b| b.len() > 2),
            "{} has bytecode",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 14, "all fixture artifacts present ({checked})");
}
