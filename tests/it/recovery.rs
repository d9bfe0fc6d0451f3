//! The server is gone: a new machine holds a fresh clone of the git
//! repository and the restic repository, nothing else (no data/, no
//! backups/). `rollback --repo` plans the pull in its dry run (changing
//! nothing), then pulls the backup verified and restores, creating the
//! folders it needs. Against a local repository and a REST one on loopback.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use predicates::{prelude::*, str::contains};

use crate::{
    assert_code, digest,
    offsite::{PASSWORD, fresh_repository, offsite, rest_server},
    root, run_in, sandbox,
};

/// Pushes the sandbox's backup, then clones the repository as a new
/// machine would get it.
fn new_machine(root: &Path, repo: &str, dir: &Path) -> PathBuf {
    let pushed = offsite(root, repo, PASSWORD, &["push"]);
    assert_code(&pushed, 0);
    let fresh = dir.join("new-server");
    let cloned = Command::new("git").arg("clone").arg("-q").arg(root).arg(&fresh).status();
    assert!(cloned.unwrap().success());
    for absent in ["data", "backups", "forensics"] {
        assert!(!fresh.join(absent).exists(), "a fresh clone has no {absent}/");
    }
    fresh
}

/// The dry run names the pull before step 1 and changes nothing.
fn assert_planned(fresh: &Path, repo: &str, scenario: &str) {
    let before = digest(fresh);
    let args = ["rollback", "--scenario", scenario, "--dry-run", "--format", "json"];
    let planned = offsite(fresh, repo, PASSWORD, &args);
    assert_code(&planned, 0);
    let json: serde_json::Value = serde_json::from_str(&planned.stdout).unwrap();
    crate::schema::assert_valid("rollback", &json);
    let pull = json["pull"].as_str().unwrap_or_default();
    assert!(pull.starts_with("pull snapshot ") && pull.contains(repo), "{json}");
    assert!(!json["plan"].as_array().unwrap().is_empty(), "{json}");
    planned.stderr_has(contains("before step 1: pull snapshot"));
    assert_eq!(digest(fresh), before, "the dry run changed the clone");
}

#[test]
fn a_complete_rollback_on_a_fresh_clone_pulls_from_a_local_repository() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let repo = dir.path().join("offsite");
    fresh_repository(&repo);
    let repo = repo.display().to_string();
    let fresh = new_machine(&root, &repo, dir.path());
    assert_planned(&fresh, &repo, "complete");
    let restored =
        offsite(&fresh, &repo, PASSWORD, &["rollback", "--scenario", "complete", "--yes"]);
    assert_code(&restored, 0);
    restored.stdout_has(contains("pulled backup pre-phase4").and(contains("passed verify-backup")));
    assert!(fresh.join("data/tmws.db").is_file());
    let checked = run_in(&fresh, &["post-check"]);
    assert_code(&checked, 0);
    checked.stdout_has(contains("judged: the last rollback (--scenario complete)"));
}

#[test]
fn a_database_rollback_on_a_fresh_clone_pulls_from_a_rest_server() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let (_server, repo) = rest_server(dir.path());
    let fresh = new_machine(&root, &repo, dir.path());
    // A label the repository does not hold: exit 2, and no backups/ made.
    let missing = offsite(&fresh, &repo, PASSWORD, &["pull", "--label", "nosuch"]);
    assert_code(&missing, 2);
    assert!(!fresh.join("backups").exists());
    // What an earlier pull killed half-way left is cleared, not kept forever.
    let stale = fresh.join("backups/.pre-phase4.pulling-999999999");
    std::fs::create_dir_all(&stale).unwrap();
    assert_planned(&fresh, &repo, "database");
    let restored =
        offsite(&fresh, &repo, PASSWORD, &["rollback", "--scenario", "database", "--yes"]);
    assert_code(&restored, 0);
    restored.stdout_has(contains("pulled backup pre-phase4"));
    restored.stderr_has(contains("that an interrupted pull left"));
    assert!(!stale.exists());
    let listed = run_in(&fresh, &["list", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let backed_up = json["backups"][0]["database_revision"][0].as_str().unwrap().to_string();
    let conn = rusqlite::Connection::open(fresh.join("data/tmws.db")).unwrap();
    let revision: String =
        conn.query_row("SELECT version_num FROM alembic_version", [], |r| r.get(0)).unwrap();
    assert_eq!(revision, backed_up, "the clone's database is the backup's");
}

#[test]
fn a_repository_never_initialised_is_named_with_restic_init() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    let repo = dir.path().join("never-initialised").display().to_string();
    // The push verifies the backup first (and records that it did); the
    // backup and the database stay as they are.
    let before = (digest(&root.join("backups")), digest(&root.join("data")));
    let pushed = offsite(&root, &repo, PASSWORD, &["push", "--format", "json"]);
    assert_code(&pushed, 1);
    pushed.stderr_has(
        contains("unable to open config file")
            .and(contains(format!("create it once with `restic -r {repo} init`"))),
    );
    let json: serde_json::Value = serde_json::from_str(&pushed.stdout).unwrap();
    crate::schema::assert_valid("error", &json);
    assert_eq!(json["next"], format!("restic -r {repo} init"));
    assert_eq!((digest(&root.join("backups")), digest(&root.join("data"))), before);
    assert!(!Path::new(&repo).exists(), "no repository was created");
}
