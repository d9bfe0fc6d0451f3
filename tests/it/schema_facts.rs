//! The schema is the truth: the manifest records every table's columns and
//! indexes, post-check compares them column by column, and a migration
//! stamped at the backup's revision is done only when its schema is the
//! backup's (also when alembic's offline SQL cannot render the next
//! revision: the `probe-fails` variant).
use std::{fs, path::Path};

use predicates::str::contains;

use crate::{root, run_in, sandbox, sandbox_variant};

const BACKUP: &str = "backups/pre-phase4";

fn sql(root: &Path, statement: &str) {
    let conn = rusqlite::Connection::open(root.join("data/tmws.db")).unwrap();
    conn.execute_batch(statement).unwrap();
}

#[test]
fn the_manifest_records_the_schema_and_verify_checks_it() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    let manifest = fs::read_to_string(root.join(BACKUP).join("BACKUP_MANIFEST.txt")).unwrap();
    assert!(manifest.contains("format: tmws-backup/5"), "{manifest}");
    let tools = manifest.lines().find(|l| l.starts_with("schema:\ttools\t")).expect("tools");
    assert!(tools.contains("id INTEGER NOT NULL PK 1"), "{tools}");
    let verify = run_in(&root, &["verify-backup"]);
    verify.exits(0).stdout_has(contains("database.schema"));
}

#[test]
fn a_leftover_column_fails_the_tables_check() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    sql(&root, "ALTER TABLE tools ADD COLUMN usage_count INTEGER");
    let result = run_in(&root, &["post-check", "--only", "database.tables"]);
    result.exits(1).stdout_has(contains("tools: column usage_count is extra"));
}

#[test]
fn a_half_applied_migration_the_probe_cannot_render_is_not_called_rolled_back() {
    let dir = sandbox_variant("phase4", "probe-fails");
    let root = root(&dir);
    crate::breakage::migrate(&root, &["downgrade", "47a9e2c8b6f0"]);
    sql(
        &root,
        "CREATE TABLE tool_usage_stats (id INTEGER NOT NULL, tool_id INTEGER NOT NULL, \
         calls INTEGER DEFAULT '0' NOT NULL, PRIMARY KEY (id))",
    );
    let diagnose = run_in(&root, &["diagnose"]);
    diagnose.stdout_has(contains("but the schema is not the backup's"));
    diagnose.stdout_has(contains("table tool_usage_stats is extra"));
    let rollback = run_in(&root, &["rollback", "--scenario", "migration", "--yes"]);
    rollback.exits(1).stderr_has(contains("the migrated copy is not what 47a9e2c8b6f0 must be"));
    rollback.stderr_has(contains("table tool_usage_stats is extra"));
    rollback.stderr_has(contains("--scenario database"));
    let conn = rusqlite::Connection::open(root.join("data/tmws.db")).unwrap();
    let left: i64 = conn
        .query_row("SELECT COUNT(*) FROM sqlite_master WHERE name = 'tool_usage_stats'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(left, 1, "the step changed the database before refusing");
    drop(conn);
    let mut names: Vec<String> = fs::read_dir(root.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names.len(),
        2,
        "the copy's folder stays to look at, beside the database: {names:?}"
    );
}
