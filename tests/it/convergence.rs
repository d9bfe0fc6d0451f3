//! diagnose converges: each recommended command changes something and
//! leads to a tree diagnose calls healthy and post-check passes.
use predicates::str::contains;

use crate::{assert_code, breakage::*, root, run_in, sandbox};

#[test]
fn a_database_behind_the_code_is_migrated_up_on_a_copy() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let deployed = revision(&root);
    // The database row under the deployed code: the backup's database,
    // behind the code's head.
    assert_code(&run_in(&root, &["rollback", "--scenario", "database", "--yes"]), 0);
    assert_ne!(revision(&root), deployed);
    let behind = sha256(&database_of(&root));
    let args = ["rollback", "--scenario", "migration", "--to", "head"];
    let dry = run_in(&root, &[&args[..], &["--dry-run"]].concat());
    assert_code(&dry, 0);
    dry.stdout_has(contains(format!("upgrade a copy of data/tmws.db to {deployed}")));
    assert_eq!(sha256(&database_of(&root)), behind, "the dry run wrote");
    let up = run_in(&root, &[&args[..], &["--yes"]].concat());
    assert_code(&up, 0);
    up.stdout_has(contains(format!("alembic upgrade {deployed} on the copy")));
    assert_eq!(revision(&root), deployed);
    // What it replaced is kept, byte for byte.
    let bundles = std::fs::read_dir(root.join("forensics")).unwrap().flatten();
    let kept = bundles.map(|b| b.path().join("database/tmws.db")).filter(|p| p.is_file());
    assert!(kept.map(|p| sha256(&p)).any(|s| s == behind), "the database behind is not kept");
    assert_code(&run_in(&root, &["post-check"]), 0);
}
