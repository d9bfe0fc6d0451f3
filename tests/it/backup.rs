//! `xtask backup`: the Appendix A layout, the manifest, WAL safety, and
//! every kind of bad input refused with nothing changed.
use predicates::str::contains;
use std::{fs, path::Path, process::Command};

use crate::{assert_code, digest, listing, root, run, run_in, sandbox, snapshot, xtask};

#[test]
fn backup_has_the_runbook_layout_and_an_exact_manifest() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    let result = run_in(&root, &["backup"]);
    assert_code(&result, 0);
    let backup = root.join("backups/pre-phase4");
    // The database's size is deterministic but not the point here.
    snapshot!(&root, listing(&backup, |name| name.starts_with("database/")));
    snapshot!(&root, fs::read_to_string(backup.join("BACKUP_MANIFEST.txt")).unwrap());

    let check = Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(&backup)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    let conn = rusqlite::Connection::open_with_flags(
        backup.join("database/tmws.db.backup"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    let revision: String =
        conn.query_row("SELECT version_num FROM alembic_version", [], |r| r.get(0)).unwrap();
    let manifest = fs::read_to_string(backup.join("BACKUP_MANIFEST.txt")).unwrap();
    assert!(manifest.contains(&format!("database-revision: {revision}\n")));
    let memory: i64 =
        conn.query_row("SELECT COUNT(*) FROM memory_entries", [], |r| r.get(0)).unwrap();
    assert!(manifest.contains(&format!("table: memory_entries {memory}\n")));

    let tag = Command::new("git")
        .args(["cat-file", "-t", "pre-phase4"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&tag.stdout).trim(), "tag", "an annotated tag");
}

#[test]
fn dry_run_writes_nothing() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    let before = digest(&root);
    let result = run_in(&root, &["backup", "--dry-run"]);
    assert_code(&result, 0);
    result.stdout_has(contains("SQLite online backup"));
    result.stdout_has(contains("git tag              pre-phase4 at"));
    assert_eq!(digest(&root), before);
}

#[test]
fn no_tag_leaves_git_alone() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    assert_code(&run_in(&root, &["backup", "--no-tag", "--label", "nightly"]), 0);
    assert!(root.join("backups/nightly/BACKUP_MANIFEST.txt").is_file());
    let tags = Command::new("git").args(["tag", "-l"]).current_dir(&root).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&tags.stdout), "");
}

/// A writer keeps inserting in WAL mode while the backup runs: the copy is
/// sound and holds every row committed before the backup started.
#[test]
fn backup_while_the_service_writes_in_wal_mode() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    let db = root.join("data/tmws.db");
    let writer = rusqlite::Connection::open(&db).unwrap();
    writer.execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;").unwrap();
    for i in 0..500 {
        writer.execute("INSERT INTO audit_log (event, detail) VALUES ('before', ?1)", [i]).unwrap();
    }
    let committed: i64 =
        writer.query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0)).unwrap();
    assert!(fs::metadata(root.join("data/tmws.db-wal")).unwrap().len() > 0, "rows are in the WAL");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let keep_writing = {
        let stop = stop.clone();
        let db = db.clone();
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(db).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
            let mut written = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                conn.execute("INSERT INTO audit_log (event, detail) VALUES ('during', 'x')", [])
                    .unwrap();
                written += 1;
            }
            written
        })
    };
    let result = run_in(&root, &["backup"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written_during = keep_writing.join().unwrap();
    assert_code(&result, 0);
    assert!(written_during > 0, "the writer really ran during the backup");

    let copy = rusqlite::Connection::open_with_flags(
        root.join("backups/pre-phase4/database/tmws.db.backup"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let integrity: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    let before: i64 = copy
        .query_row("SELECT COUNT(*) FROM audit_log WHERE event <> 'during'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(before, committed, "every row committed before the backup is in it");
}

/// Runs a bad backup and checks exit code, message and that nothing changed.
fn refused(root: &Path, args: &[&str], code: i32, message: &str) {
    crate::assert_refused(root, args, code, message);
}

#[test]
fn missing_root_is_a_usage_error() {
    let dir = tempfile::TempDir::new().unwrap();
    let result = run(xtask().args(["backup", "--root"]).arg(dir.path().join("nope")));
    assert_code(&result, 2);
    result.stderr_has(contains("does not exist"));
}

#[test]
fn a_folder_that_is_not_a_tmws_tree_is_refused() {
    let dir = tempfile::TempDir::new().unwrap();
    fs::write(dir.path().join("README"), "not tmws").unwrap();
    refused(dir.path(), &["backup"], 2, "is not a TMWS tree");
}

#[test]
fn missing_database_is_refused() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(root.join(format!("data/tmws.db{suffix}")));
    }
    refused(&root, &["backup"], 2, "database = \"data/tmws.db\" (");
    refused(&root, &["backup"], 2, "tmws-rollback.toml): the database is missing");
}

#[test]
fn a_database_that_is_not_sqlite_is_refused() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    for suffix in ["-wal", "-shm"] {
        let _ = fs::remove_file(root.join(format!("data/tmws.db{suffix}")));
    }
    fs::write(root.join("data/tmws.db"), "this is not a database").unwrap();
    refused(&root, &["backup"], 2, "is not an SQLite database");
}

#[test]
fn a_missing_config_file_is_named() {
    // A missing critical file is recorded as absent (the deploy may add it);
    // a missing config file is an error.
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    fs::remove_file(root.join(".env.example")).unwrap();
    refused(&root, &["backup"], 2, "config_files[1] = \".env.example\" (");
    refused(&root, &["backup"], 2, "tmws-rollback.toml): the config file is missing");
}

#[test]
fn bad_labels_are_refused() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    for label in ["", "a/b", "..", "../up"] {
        refused(&root, &["backup", "--label", label], 2, "invalid label");
    }
}

#[test]
fn an_existing_backup_is_never_overwritten() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    refused(&root, &["backup"], 2, "already exists");
}

#[test]
fn a_backups_folder_that_cannot_be_written_is_refused() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    // A file where the folder should be: unwritable even for root.
    fs::write(root.join("backups"), "").unwrap();
    refused(&root, &["backup", "--no-tag"], 2, "cannot write backups there");
}

#[test]
fn a_tag_of_that_name_elsewhere_is_refused() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    crate::breakage::git(&root, &["tag", "pre-phase4", "HEAD~1"]);
    refused(&root, &["backup"], 2, "git tag pre-phase4 already points at");
}

/// A checkout laid out otherwise, described by tmws-rollback.toml.
#[test]
fn a_profile_moves_the_database_and_the_backup_follows() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    fs::create_dir_all(root.join("var")).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let from = root.join(format!("data/tmws.db{suffix}"));
        if from.exists() {
            fs::rename(from, root.join(format!("var/service.sqlite{suffix}"))).unwrap();
        }
    }
    fs::write(root.join("tmws-rollback.toml"), "database = \"var/service.sqlite\"\n").unwrap();
    assert_code(&run_in(&root, &["backup", "--no-tag"]), 0);
    let manifest = fs::read_to_string(root.join("backups/pre-phase4/BACKUP_MANIFEST.txt")).unwrap();
    assert!(
        manifest.contains("\tdatabase/service.sqlite.backup\tvar/service.sqlite\n"),
        "{manifest}"
    );
    assert_code(&run_in(&root, &["verify-backup"]), 0);
}

#[test]
fn a_profile_with_a_path_outside_the_root_is_refused() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    fs::write(root.join("tmws-rollback.toml"), "database = \"../elsewhere.db\"\n").unwrap();
    refused(
        &root,
        &["backup"],
        2,
        "tmws-rollback.toml: database = \"../elsewhere.db\": a path of the tree is relative to its root",
    );
}

#[test]
fn no_python_is_a_usage_error_that_says_what_to_do() {
    let out = tempfile::TempDir::new().unwrap();
    let result = run(xtask()
        .args(["sandbox", "--python", "/nonexistent/python3", "--out"])
        .arg(out.path().join("t")));
    assert_code(&result, 2);
    result.stderr_has(contains("install Python 3.10 or newer"));
}

#[test]
fn a_python_that_cannot_make_a_virtualenv_is_a_usage_error() {
    // A stand-in interpreter: answers --version, fails `-m venv` (the real
    // one cannot be made to fail on demand).
    let dir = tempfile::TempDir::new().unwrap();
    let fake = dir.path().join("python3");
    fs::write(&fake, "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'Python 3.11.0'; exit 0; }\necho 'No module named venv' >&2\nexit 1\n").unwrap();
    fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let result = run(xtask()
        .args(["sandbox", "--python"])
        .arg(&fake)
        .arg("--out")
        .arg(dir.path().join("t")));
    assert_code(&result, 2);
    result.stderr_has(contains("apt-get install python3-venv"));
}

#[test]
fn json_output_carries_the_schema_and_the_manifest() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    let result = run_in(&root, &["backup", "--format", "json"]);
    assert_code(&result, 0);
    let json: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    crate::schema::assert_valid("backup", &json);
    assert_eq!(json["schema"], 2);
    assert_eq!(json["manifest"]["database_revision"][0], "47a9e2c8b6f0");
    assert_eq!(json["manifest"]["files"].as_array().unwrap().len(), 21);
}
