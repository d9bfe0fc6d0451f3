//! A database is its file plus every file SQLite keeps beside it. A writer
//! killed in the middle of a transaction leaves a hot `-journal`: it is
//! evidence, kept with the database; a restored database never sits beside
//! it; a backup refuses to copy through it; a check never opens through it;
//! and a sidecar that is a link is refused before anything changes.
use std::{fs, os::unix::fs::symlink, path::Path, process::Command};

use predicates::{prelude::*, str::contains};

use crate::{assert_refused, digest, root, run_in, sandbox};

const DB: &str = "data/tmws.db";

/// Leaves a hot journal, as a writer killed mid-transaction does: rollback
/// journal mode, a cache of one page and megabytes of changes, so that they
/// spill into the file (after the journal is synced) before the commit, then
/// the process exits without committing.
fn kill_a_writer_mid_transaction(root: &Path) {
    let script = "import os, sqlite3, sys\n\
                  db = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
                  db.execute('PRAGMA journal_mode=DELETE')\n\
                  db.execute('PRAGMA cache_size=1')\n\
                  db.execute('BEGIN')\n\
                  db.execute(\"UPDATE tools SET name = name || '-half-written'\")\n\
                  db.execute('CREATE TABLE spill AS SELECT randomblob(4000) AS b FROM tools, tools')\n\
                  os._exit(0)\n";
    let status = Command::new("python3").args(["-c", script]).arg(root.join(DB)).status().unwrap();
    assert!(status.success());
    let journal = fs::read(root.join(format!("{DB}-journal"))).unwrap();
    assert_eq!(journal[..8], [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7], "not hot");
}

#[test]
fn a_hot_journal_goes_into_the_bundle_with_its_database_and_never_meets_the_restore() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    kill_a_writer_mid_transaction(&root);
    let journal = fs::read(root.join(format!("{DB}-journal"))).unwrap();
    let result = run_in(&root, &["rollback", "--scenario", "database", "--yes"]);
    result.exits(0);
    assert!(!root.join(format!("{DB}-journal")).exists(), "a journal beside the restore");
    let conn = rusqlite::Connection::open(root.join(DB)).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let kept = fs::read_dir(root.join("forensics"))
        .unwrap()
        .flatten()
        .map(|b| b.path().join("database/tmws.db-journal"))
        .find(|p| p.exists())
        .expect("the journal is in the bundle");
    assert_eq!(fs::read(kept).unwrap(), journal, "kept byte for byte");
}

#[test]
fn a_backup_and_the_checks_never_open_a_database_through_its_hot_journal() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    kill_a_writer_mid_transaction(&root);
    assert_refused(&root, &["backup"], 4, "hot journal");
    let before = digest(&root);
    let diagnosis = run_in(&root, &["diagnose"]);
    diagnosis.exits(1).stdout_has(contains("database.integrity").and(contains("hot journal")));
    let check = run_in(&root, &["post-check", "--only", "database", "--expect-revision", "head"]);
    check.exits(1).stdout_has(contains("hot journal"));
    assert_eq!(digest(&root), before, "a check changed the tree");
}

#[test]
fn a_sidecar_that_is_a_link_is_refused_before_anything_changes() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let outside = dir.path().join("elsewhere.db-journal");
    fs::write(&outside, "not ours").unwrap();
    symlink(&outside, root.join(format!("{DB}-journal"))).unwrap();
    for scenario in ["database", "complete", "migration"] {
        assert_refused(&root, &["rollback", "--scenario", scenario, "--yes"], 4, "tmws.db-journal");
    }
    assert_eq!(fs::read_to_string(&outside).unwrap(), "not ours");
}
