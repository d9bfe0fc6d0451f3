//! A migration half-applied at column and index level (SQLite DDL is not
//! transactional: a column added, the stamp left behind): diagnose names
//! what is left, and the migration rollback removes it on a copy, or, when
//! it cannot, leaves the database as it found it.
use predicates::{prelude::*, str::contains};

use crate::{assert_code, breakage::*, root, run_in, sandbox_variant};

/// The column-migration variant with its head migration undone and then
/// half made again: its column (and, with `index`, its index) but no stamp.
fn half_applied(index: bool) -> tempfile::TempDir {
    let dir = sandbox_variant("phase4", "column-migration");
    let root = root(&dir);
    migrate(&root, &["downgrade", "-1"]);
    let conn = rusqlite::Connection::open(database_of(&root)).unwrap();
    conn.execute_batch("ALTER TABLE learning_patterns ADD COLUMN weight FLOAT").unwrap();
    if index {
        let sql = "CREATE INDEX ix_learning_patterns_weight ON learning_patterns (weight)";
        conn.execute_batch(sql).unwrap();
    }
    dir
}

#[test]
fn a_leftover_column_and_index_are_named_and_removed() {
    let dir = half_applied(true);
    let root = root(&dir);
    let diagnosed = run_in(&root, &["diagnose"]);
    assert_code(&diagnosed, 1);
    diagnosed.stdout_has(contains(
        "c3d5e7f9a1b2 made column learning_patterns.weight, index ix_learning_patterns_weight but alembic_version still says f1c7e3a9b5d4",
    ));
    diagnosed.stdout_has(contains("recommendation: cargo xtask rollback --scenario migration"));
    let rollback = run_in(&root, &["rollback", "--scenario", "migration", "--yes"]);
    assert_code(&rollback, 0);
    rollback.stdout_has(contains(
        "c3d5e7f9a1b2 was half-applied (column learning_patterns.weight, index ix_learning_patterns_weight exist at f1c7e3a9b5d4)",
    ));
    // Down to the backup's revision with the backup's columns and indexes.
    let check = run_in(&root, &["post-check", "--only", "database"]);
    assert_code(&check, 0);
    check.stdout_has(contains("their columns and indexes equal the backup's"));
}

#[test]
fn a_half_applied_migration_its_downgrade_cannot_undo_leaves_the_database_as_found() {
    // The column without its index: the downgrade's drop_index fails.
    let dir = half_applied(false);
    let root = root(&dir);
    let files = |root: &std::path::Path| {
        let db = database_of(root);
        let sidecar = |end: &str| db.with_file_name(format!("tmws.db{end}"));
        [db.clone(), sidecar("-wal")].map(|f| f.exists().then(|| sha256(&f)))
    };
    let before = files(&root);
    let rollback = run_in(&root, &["rollback", "--scenario", "migration", "--yes"]);
    assert_code(&rollback, 1);
    rollback.stderr_has(
        contains("failed on the copy")
            .and(contains("data/tmws.db is as it was"))
            .and(contains("finished before it: 1. stop-services, 2. preserve")),
    );
    assert_eq!(files(&root), before, "the database changed");
}
