//! `xtask diagnose`: what a person reads beside the decision matrix's row.
//! The row each break gets, and that following it mends the tree, is the
//! convergence table's (convergence.rs); these check what it does not: the
//! healthy tree's sentence and the half-applied migration's evidence.
use crate::{assert_code, breakage::*, root, run_in, sandbox};
use predicates::str::contains;

#[test]
fn a_healthy_phase4_tree_says_so_in_words() {
    let dir = sandbox("phase4");
    let human = run_in(&root(&dir), &["diagnose"]);
    assert_code(&human, 0);
    human.stdout_has(contains("healthy: nothing to roll back"));
}

#[test]
fn a_half_applied_migration_names_what_it_made() {
    let dir = sandbox("phase4");
    half_apply_phase4_head(&root(&dir));
    let result = run_in(&root(&dir), &["diagnose", "--format", "json"]);
    assert_code(&result, 1);
    let json: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    crate::schema::assert_valid("diagnose", &json);
    assert_eq!(json["recommendation"], "migration", "{result:?}");
    let half = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "migration.half-applied")
        .unwrap()
        .clone();
    assert!(half["detail"].as_str().unwrap().contains("made table learning_feedback"), "{half}");
}
