//! `xtask verify-backup`: a fresh backup passes; each corruption fails with
//! its own check id, and verify never changes the backup.
use predicates::{prelude::*, str::contains};
use std::{fs, os::unix::fs::PermissionsExt, path::Path};

use crate::{Run, assert_code, digest, root, run, run_in, sandbox, xtask};

const BACKUP: &str = "backups/pre-phase4";

/// Makes a backup file writable for a test that corrupts it on purpose.
fn writable(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
}

/// Corrupts a backed-up sandbox, runs verify, and checks that it failed with
/// `id` mentioning `message`, and that verify itself changed nothing.
fn corrupted(corrupt: impl FnOnce(&Path)) -> (Run, tempfile::TempDir) {
    let dir = sandbox("backed-up");
    let backup = root(&dir).join(BACKUP);
    corrupt(&backup);
    let before = digest(&backup);
    let result = run_in(&root(&dir), &["verify-backup", "--format", "json"]);
    assert_eq!(digest(&backup), before, "verify-backup changed the backup");
    if let Ok(json) = serde_json::from_str(&result.stdout) {
        crate::schema::assert_valid("report", &json);
    }
    (result, dir)
}

#[track_caller]
fn assert_failed(result: &Run, id: &str, message: &str) {
    assert_code(result, 1);
    let report: serde_json::Value = serde_json::from_str(&result.stdout).expect("a JSON report");
    assert_eq!(report["result"], "fail");
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {result:?}"));
    assert_eq!(check["status"], "fail", "{id} should fail:\n{result:?}");
    let detail = check["detail"].as_str().unwrap();
    assert!(detail.contains(message), "{id}: expected {message:?} in {detail:?}");
}

#[test]
fn a_fresh_backup_passes_and_stays_unchanged() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    let before = digest(&root.join(BACKUP));
    let human = run_in(&root, &["verify-backup", "-q"]);
    assert_code(&human, 0);
    crate::snapshot_run!(&root, human);
    let json = run_in(&root, &["verify-backup", "--format", "json"]);
    assert_code(&json, 0);
    crate::schema::assert_valid("report", &serde_json::from_str(&json.stdout).unwrap());
    crate::snapshot_run!(&root, json);
    assert_eq!(digest(&root.join(BACKUP)), before);
    assert!(!root.join(BACKUP).join("critical_files/__pycache__").exists());
}

#[test]
fn a_copied_backup_folder_verifies_without_a_root() {
    let dir = sandbox("backed-up");
    let elsewhere = tempfile::TempDir::new().unwrap();
    crate::copy_tree(&root(&dir).join(BACKUP), &elsewhere.path().join("b"));
    let result = run(xtask().args(["verify-backup", "--backup"]).arg(elsewhere.path().join("b")));
    assert_code(&result, 0);
    result.stdout_has(contains("git.tag").not());
}

#[test]
fn junit_output_counts_the_checks() {
    let dir = sandbox("backed-up");
    let junit = dir.path().join("verify.xml");
    let result = run_in(&root(&dir), &["verify-backup", "--junit", junit.to_str().unwrap()]);
    assert_code(&result, 0);
    let rows = result.stdout.lines().filter(|l| l.contains("  pass  ")).count();
    let junit = crate::junit::assert_valid_junit(&junit);
    assert_eq!((junit.tests, junit.failures, junit.errors), (rows, 0, 0), "{junit:?}");
}

#[test]
fn no_backup_folder_is_a_usage_error() {
    let dir = sandbox("pre-phase4");
    let result = run_in(&root(&dir), &["verify-backup"]);
    assert_code(&result, 2);
    result.stderr_has(contains("no backup folder"));
}

/// The offset of a table's root page, to damage a page SQLite uses.
fn root_page_offset(db: &Path, table: &str) -> u64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let page: i64 = conn
        .query_row("SELECT rootpage FROM sqlite_master WHERE name = ?1", [table], |r| r.get(0))
        .unwrap();
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    ((page - 1) * size) as u64
}

fn flip_byte(path: &Path, offset: u64) {
    writable(path);
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0xff;
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_flipped_byte_in_a_used_page_fails_the_integrity_check() {
    let (result, _dir) = corrupted(|b| {
        let db = b.join("database/tmws.db.backup");
        // The b-tree page header's first-freeblock and cell-count fields.
        let offset = root_page_offset(&db, "ix_memory_entries_agent_id");
        flip_byte(&db, offset + 3);
    });
    assert_failed(&result, "database.integrity", "");
    assert_failed(&result, "hashes", "database/tmws.db.backup");
}

#[test]
fn a_flipped_byte_sqlite_never_reads_is_caught_by_the_hash() {
    let (result, _dir) = corrupted(|b| flip_byte(&b.join("database/tmws.db.backup"), 68));
    assert_failed(&result, "hashes", "database/tmws.db.backup: sha256");
    let report: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    let integrity = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "database.integrity")
        .unwrap();
    assert_eq!(integrity["status"], "pass", "SQLite does not see this byte");
}

#[test]
fn a_truncated_database_fails() {
    let (result, _dir) = corrupted(|b| {
        let db = b.join("database/tmws.db.backup");
        writable(&db);
        let file = fs::OpenOptions::new().write(true).open(&db).unwrap();
        file.set_len(file.metadata().unwrap().len() / 2).unwrap();
    });
    assert_failed(&result, "database.size", "bytes, manifest");
    assert_failed(&result, "database.integrity", "");
}

#[test]
fn a_database_replaced_by_another_file_fails() {
    let (result, _dir) = corrupted(|b| {
        let db = b.join("database/tmws.db.backup");
        writable(&db);
        fs::write(&db, "not sqlite at all").unwrap();
    });
    assert_failed(&result, "database.open", "is not an SQLite database");
}

#[test]
fn a_missing_migration_fails() {
    let (result, _dir) = corrupted(|b| {
        fs::remove_file(b.join("migrations/alembic_versions/010_create_agents.py")).unwrap();
    });
    assert_failed(&result, "files.missing", "010_create_agents.py");
    assert_failed(&result, "files.counts", "migration 11/12");
}

#[test]
fn an_edited_migration_fails() {
    let (result, _dir) = corrupted(|b| {
        let file = b.join("migrations/alembic_versions/010_create_agents.py");
        writable(&file);
        let text = fs::read_to_string(&file).unwrap().replace("namespace", "namespaces");
        fs::write(&file, text).unwrap();
    });
    assert_failed(&result, "hashes", "010_create_agents.py");
}

#[test]
fn an_extra_file_fails() {
    let (result, _dir) = corrupted(|b| fs::write(b.join("config/extra.toml"), "x = 1").unwrap());
    assert_failed(&result, "files.unlisted", "config/extra.toml");
}

#[test]
fn an_edited_manifest_fails() {
    let (result, _dir) = corrupted(|b| {
        let file = b.join("BACKUP_MANIFEST.txt");
        writable(&file);
        let text =
            fs::read_to_string(&file).unwrap().replace("table: agents 12", "table: agents 13");
        fs::write(&file, text).unwrap();
    });
    assert_failed(&result, "sums", "BACKUP_MANIFEST.txt was changed");
    assert_failed(&result, "database.row-counts", "table agents has 12 rows, expected 13");
}

#[test]
fn a_manifest_path_with_dotdot_fails() {
    let (result, _dir) = corrupted(|b| {
        let file = b.join("BACKUP_MANIFEST.txt");
        writable(&file);
        let text = fs::read_to_string(&file)
            .unwrap()
            .replace("\tconfig/alembic.ini\t", "\tconfig/../../alembic.ini\t");
        fs::write(&file, text).unwrap();
    });
    assert_failed(&result, "manifest.paths", "must be relative and stay inside");
}

#[test]
fn a_symlink_leading_outside_fails() {
    let (result, _dir) = corrupted(|b| {
        let file = b.join("config/pyproject.toml");
        fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &file).unwrap();
    });
    assert_failed(&result, "manifest.paths", "config/pyproject.toml leads outside");
}

#[test]
fn a_syntax_error_in_a_critical_file_fails() {
    let (result, _dir) = corrupted(|b| {
        let file = b.join("critical_files/tool_category.py");
        writable(&file);
        let text = fs::read_to_string(&file)
            .unwrap()
            .replace("class ToolCategory(str, Enum):", "class ToolCategory(str, Enum)");
        fs::write(&file, text).unwrap();
    });
    assert_failed(&result, "python.compile", "critical_files/tool_category.py:");
    let (_, dir) = (0, _dir);
    assert!(!root(&dir).join(BACKUP).join("critical_files/__pycache__").exists());
}

#[test]
fn an_alembic_version_outside_the_graph_fails() {
    let (result, _dir) = corrupted(|b| {
        let db = b.join("database/tmws.db.backup");
        writable(&db);
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute("UPDATE alembic_version SET version_num = 'deadbeef0000'", []).unwrap();
    });
    assert_failed(
        &result,
        "migrations.revision",
        "deadbeef0000 is not a revision of the backed-up migrations",
    );
    assert_failed(&result, "database.recorded-revision", "deadbeef0000, manifest 47a9e2c8b6f0");
}
