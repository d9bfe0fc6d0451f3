//! `xtask forensics`: the bundle's contents, its report, its permissions,
//! and that a second bundle never overwrites the first.
use predicates::str::contains;
use std::{fs, os::unix::fs::PermissionsExt};

use crate::{assert_code, breakage::*, listing, root, run_in, sandbox, snapshot};

#[test]
fn a_bundle_holds_the_failed_state_and_a_report() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    break_import(&root, "src/services/learning_trust_integration.py");
    let db_before = sha256(&root.join("data/tmws.db"));
    let result = run_in(&root, &["forensics"]);
    assert_code(&result, 0);
    assert_eq!(sha256(&root.join("data/tmws.db")), db_before, "forensics changed the database");
    let bundle = only_bundle(&root);
    assert_eq!(fs::metadata(&bundle).unwrap().permissions().mode() & 0o777, 0o700);
    snapshot!(&root, listing(&bundle, |_| true));
    let report = fs::read_to_string(bundle.join("FAILURE_REPORT.md")).unwrap();
    snapshot!(
        &root,
        report.replace(&bundle.file_name().unwrap().to_string_lossy().to_string(), "[BUNDLE]")
    );
    let facts = facts(&bundle);
    assert_eq!(facts["database_revision"][0], PHASE4_HEAD);
    assert_eq!(facts["integrity"][0], "ok");
    let dump = fs::read_to_string(bundle.join("database/dump.sql")).unwrap();
    assert!(dump.contains("CREATE TABLE learning_feedback"), "the dump holds the Phase 4 schema");
    let diff =
        fs::read_to_string(bundle.join("diffs/src/services/learning_trust_integration.py.diff"))
            .unwrap();
    assert!(diff.contains("+import a_module_that_is_not_installed"), "{diff}");
}

#[test]
fn a_second_bundle_never_overwrites_the_first() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    assert_code(&run_in(&root, &["forensics"]), 0);
    let first: Vec<_> =
        fs::read_dir(root.join("forensics")).unwrap().flatten().map(|e| e.path()).collect();
    let first_report = fs::read_to_string(first[0].join("failure.json")).unwrap();
    assert_code(&run_in(&root, &["forensics"]), 0);
    let all: Vec<_> = fs::read_dir(root.join("forensics")).unwrap().flatten().collect();
    assert_eq!(all.len(), 2, "a second, separate bundle");
    assert_eq!(fs::read_to_string(first[0].join("failure.json")).unwrap(), first_report);
}

#[test]
fn a_missing_log_is_noted_not_fatal() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    fs::remove_file(root.join("logs/tmws.log")).unwrap();
    assert_code(&run_in(&root, &["forensics"]), 0);
    let facts = facts(&only_bundle(&root));
    assert!(
        facts["log"].as_str().unwrap().starts_with("no service log at logs/tmws.log"),
        "{facts}"
    );
}

#[test]
fn dry_runs_write_nothing() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let before = crate::digest(&root);
    let result = run_in(&root, &["forensics", "--dry-run"]);
    assert_code(&result, 0);
    result.stdout_has(contains("FAILURE_REPORT.md and failure.json"));
    assert_eq!(crate::digest(&root), before);
    let out = dir.path().join("new-sandbox");
    let sandbox = crate::run(
        crate::xtask().args(["sandbox", "--stage", "phase4", "--dry-run", "--out"]).arg(&out),
    );
    assert_code(&sandbox, 0);
    sandbox.stdout_has(contains("deploy"));
    assert!(!out.exists());
}
