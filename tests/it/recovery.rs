//! The server is gone: a new machine holds a fresh clone of the service's
//! origin (its history, none of the tool's tags) and the restic repository,
//! nothing else (no data/, no backups/). `rollback --repo` plans the pull in
//! its dry run (changing nothing), then pulls the backup verified and
//! restores, creating the folders it needs and making the backup's tag again
//! at the manifest's commit. Against a local repository and a REST one on
//! loopback.
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

/// `git ARGS` in `dir`, which must succeed; its stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The service's origin as a new machine finds it: a bare repository that
/// `branch` of the dead server was pushed to as main. A push sends no tags
/// (and the tool never pushes), so the backup's tag is not there.
fn origin(root: &Path, dir: &Path, branch: &str) -> PathBuf {
    let origin = dir.join("origin.git");
    git(dir, &["init", "-q", "--bare", "-b", "main", origin.to_str().unwrap()]);
    git(root, &["push", "-q", origin.to_str().unwrap(), &format!("{branch}:refs/heads/main")]);
    origin
}

/// Pushes the sandbox's backup, then clones `origin` as a new machine
/// would get the service's repository: no tag, no data/, no backups/.
fn new_machine(root: &Path, repo: &str, origin: &Path) -> PathBuf {
    let pushed = offsite(root, repo, PASSWORD, &["push"]);
    assert_code(&pushed, 0);
    let fresh = origin.with_file_name("new-server");
    let cloned = Command::new("git").arg("clone").arg("-q").arg(origin).arg(&fresh).status();
    assert!(cloned.unwrap().success());
    for absent in ["data", "backups", "forensics"] {
        assert!(!fresh.join(absent).exists(), "a fresh clone has no {absent}/");
    }
    assert_eq!(git(&fresh, &["tag", "--list"]), "", "the origin never received a tag");
    fresh
}

/// The commit the sandbox's backup was taken at.
fn backup_commit(root: &Path) -> String {
    let manifest =
        std::fs::read_to_string(root.join("backups/pre-phase4/BACKUP_MANIFEST.txt")).unwrap();
    manifest.lines().find_map(|l| l.strip_prefix("git-commit: ")).unwrap().to_string()
}

/// The dry run names the pull before step 1 and changes nothing; its plan.
fn assert_planned(fresh: &Path, repo: &str, scenario: &str) -> Vec<serde_json::Value> {
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
    json["plan"].as_array().unwrap().clone()
}

#[test]
fn a_complete_rollback_on_a_fresh_clone_pulls_from_a_local_repository() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let repo = dir.path().join("offsite");
    fresh_repository(&repo);
    let repo = repo.display().to_string();
    let fresh = new_machine(&root, &repo, &origin(&root, dir.path(), "main"));
    let commit = backup_commit(&root);
    let remake = format!("make tag pre-phase4 again at the manifest's commit {}", &commit[..12]);
    let plan = assert_planned(&fresh, &repo, "complete");
    assert!(plan.iter().any(|step| step["action"].as_str().unwrap().contains(&remake)), "{plan:?}");
    let restored =
        offsite(&fresh, &repo, PASSWORD, &["rollback", "--scenario", "complete", "--yes"]);
    assert_code(&restored, 0);
    restored.stdout_has(
        contains("pulled backup pre-phase4")
            .and(contains("passed verify-backup"))
            .and(contains(remake.as_str()))
            .and(contains(format!(
                "made tag pre-phase4 again at the manifest's commit {}",
                &commit[..12]
            ))),
    );
    assert!(fresh.join("data/tmws.db").is_file());
    // The tag is the backup's again: at its commit, with its manifest's hash.
    assert_eq!(git(&fresh, &["rev-parse", "pre-phase4^{commit}"]), commit);
    assert_eq!(git(&fresh, &["rev-parse", "HEAD"]), commit);
    let verified = run_in(&fresh, &["verify-backup"]);
    assert_code(&verified, 0);
    verified.stdout_has(contains("it records the manifest's sha256, unchanged"));
    let checked = run_in(&fresh, &["post-check"]);
    assert_code(&checked, 0);
    checked.stdout_has(contains("judged: the last rollback (--scenario complete)"));
}

/// An origin whose history was rewritten since the backup (squashed into
/// one commit): the backup's commit is nowhere in the clone. The dry run
/// and the real run refuse naming it and what to do, before the pull writes
/// anything; the database alone, as the refusal suggests, still comes back.
#[test]
fn a_clone_without_the_backups_commit_is_refused_before_the_pull() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let repo = dir.path().join("offsite");
    fresh_repository(&repo);
    let repo = repo.display().to_string();
    let squashed = git(
        &root,
        &["-c", "user.name=t", "-c", "user.email=t@t", "commit-tree", "HEAD^{tree}", "-m", "one"],
    );
    git(&root, &["branch", "squashed", &squashed]);
    let fresh = new_machine(&root, &repo, &origin(&root, dir.path(), "squashed"));
    let commit = backup_commit(&root);
    let before = digest(&fresh);
    for extra in ["--dry-run", "--yes"] {
        let refused =
            offsite(&fresh, &repo, PASSWORD, &["rollback", "--scenario", "complete", extra]);
        assert_code(&refused, 4);
        refused.stderr_has(
            contains(format!("the backup's commit {commit} is not in this repository"))
                .and(contains("git fetch origin"))
                .and(contains("rollback --scenario database --yes")),
        );
        // The real run's lock file stays, empty (as after every locked
        // run); beside it, nothing was pulled or changed.
        let lock = fresh.join(".tmws-rollback/lock");
        if extra == "--yes" {
            assert_eq!(std::fs::read(&lock).unwrap(), b"", "the lock names no holder");
            std::fs::remove_dir_all(fresh.join(".tmws-rollback")).unwrap();
        }
        assert_eq!(digest(&fresh), before, "{extra}: nothing was pulled or changed");
        assert!(!fresh.join("backups").exists());
    }
    let database =
        offsite(&fresh, &repo, PASSWORD, &["rollback", "--scenario", "database", "--yes"]);
    assert_code(&database, 0);
    assert!(fresh.join("data/tmws.db").is_file());
    assert_eq!(git(&fresh, &["tag", "--list"]), "", "no tag made at a commit it lacks");
}

#[test]
fn a_database_rollback_on_a_fresh_clone_pulls_from_a_rest_server() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let (_server, repo) = rest_server(dir.path());
    let fresh = new_machine(&root, &repo, &origin(&root, dir.path(), "main"));
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
