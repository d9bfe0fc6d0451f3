//! `xtask diagnose`: the right row of the decision matrix for each breakage.
use crate::{Run, assert_code, breakage::*, root, run_in, sandbox};
use predicates::str::contains;

fn diagnose(root: &std::path::Path, extra: &[&str]) -> (Run, serde_json::Value) {
    let mut args = vec!["diagnose", "--format", "json"];
    args.extend_from_slice(extra);
    let result = run_in(root, &args);
    let json = serde_json::from_str(&result.stdout).unwrap_or_else(|e| panic!("{e}: {result:?}"));
    crate::schema::assert_valid("diagnose", &json);
    (result, json)
}

#[track_caller]
fn assert_recommends(result: &(Run, serde_json::Value), scenario: &str) {
    assert_code(&result.0, 1);
    assert_eq!(result.1["recommendation"], scenario, "{:?}", result.0);
}

#[test]
fn a_healthy_phase4_tree_needs_nothing() {
    let dir = sandbox("phase4");
    let (result, json) = diagnose(&root(&dir), &[]);
    assert_code(&result, 0);
    assert_eq!(json["recommendation"], "healthy");
    let human = run_in(&root(&dir), &["diagnose"]);
    human.stdout_has(contains("healthy: nothing to roll back"));
}

#[test]
fn a_corrupt_page_means_database() {
    let dir = sandbox("phase4");
    corrupt_database(&root(&dir));
    assert_recommends(&diagnose(&root(&dir), &[]), "database");
}

#[test]
fn a_half_applied_migration_means_migration() {
    let dir = sandbox("phase4");
    half_apply_phase4_head(&root(&dir));
    let result = diagnose(&root(&dir), &[]);
    assert_recommends(&result, "migration");
    let half = result.1["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "migration.half-applied")
        .unwrap()
        .clone();
    assert!(half["detail"].as_str().unwrap().contains("made table learning_feedback"), "{half}");
}

#[test]
fn a_module_that_no_longer_imports_means_files() {
    let dir = sandbox("phase4");
    break_import(&root(&dir), "src/services/learning_trust_integration.py");
    assert_recommends(&diagnose(&root(&dir), &[]), "files");
}

#[test]
fn head_moved_to_a_bad_commit_means_git() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let deployed = git(&root, &["rev-parse", "HEAD"]).trim().to_string();
    bad_commit(&root);
    let result = diagnose(&root, &["--expect-commit", &deployed]);
    assert_recommends(&result, "git");
    // The git row back to the expected commit, as a command that runs: a
    // hard reset, so that the bad commit's changes do not stay staged (the
    // discarded HEAD is kept as a ref).
    let command = result.1["rollback"].as_str().unwrap();
    let flags = format!("--scenario git --commit {deployed} --hard --force --root ");
    assert!(command.contains(&flags), "{command}");
    let args =
        ["rollback", "--scenario", "git", "--commit", &deployed, "--hard", "--force", "--yes"];
    assert_code(&run_in(&root, &args), 0);
    assert_eq!(git(&root, &["rev-parse", "HEAD"]).trim(), deployed);
}

#[test]
fn several_at_once_means_complete() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    half_apply_phase4_head(&root);
    break_import(&root, "src/services/learning_trust_integration.py");
    corrupt_database(&root);
    assert_recommends(&diagnose(&root, &[]), "complete");
}
