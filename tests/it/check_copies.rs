//! Checks change nothing: post-check and diagnose leave the tree byte for
//! byte as it was (database, sidecars, files, `.git`, ignored files), also
//! when the app applies its migrations and writes its data folder when it
//! starts (the `migrates-at-start` variant). `--live` runs on the tree and
//! fails loudly when its database changed.
use std::{fs, path::Path, process::Command};

use predicates::str::contains;

use crate::{digest, root, run, run_in, sandbox, sandbox_variant, xtask};

/// A check as a user runs it on a machine that writes bytecode.
fn check(root: &Path, args: &[&str]) -> crate::Run {
    let mut cmd = xtask();
    cmd.args(args).arg("--root").arg(root).env_remove("PYTHONDONTWRITEBYTECODE");
    run(&mut cmd)
}

fn revision(root: &Path) -> String {
    let out = Command::new("sqlite3")
        .arg(root.join("data/tmws.db"))
        .arg("SELECT version_num FROM alembic_version")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn post_check_and_diagnose_leave_the_tree_byte_identical() {
    for dir in [sandbox("phase4"), sandbox_variant("phase4", "migrates-at-start")] {
        let root = root(&dir);
        run_in(&root, &["rollback", "--scenario", "migration", "--yes"]).exits(0);
        let rolled_back = revision(&root);
        let before = digest(&root);
        check(&root, &["post-check"]);
        check(&root, &["diagnose"]);
        assert_eq!(digest(&root), before, "a check changed the tree {}", root.display());
        assert_eq!(revision(&root), rolled_back, "the app's start-up upgrade reached the tree");
    }
}

#[test]
fn an_app_that_migrates_when_it_starts_is_judged_on_its_copy() {
    let dir = sandbox_variant("phase4", "migrates-at-start");
    let root = root(&dir);
    run_in(&root, &["rollback", "--scenario", "migration", "--yes"]).exits(0);
    let result = check(&root, &["post-check", "--only", "server,migrations,database.revision"]);
    // The start-up upgrade is what the service would do to the tree: said,
    // but done only to the copy.
    result.exits(1).stdout_has(contains("but at revision f1c7e3a9b5d4"));
    assert!(
        result.stdout.lines().any(|l| l.starts_with("migrations.current") && l.contains(" pass ")),
        "alembic answered about a database the app had upgraded"
    );
    result.stdout_has(contains("programs ran on: scratch copies of the tree"));
    // The next restart of the real service would do to it what the start
    // did to the copy: said, with the revisions, as a failure of its own.
    assert!(
        result.stdout.lines().any(|l| l.starts_with("server.restart")
            && l.contains(" FAIL ")
            && l.contains("starting the service applies 47a9e2c8b6f0 → f1c7e3a9b5d4")),
        "{}",
        result.stdout
    );
    result.stdout_has(contains("a restart undoes this rollback"));
    // After a deploy the start-up migration is the deploy's own: reported.
    let deploy = check(&root, &["post-check", "--only", "server", "--after", "deploy"]);
    assert!(
        deploy.stdout.lines().any(|l| l.starts_with("server.restart")
            && l.contains(" pass ")
            && l.contains("the deploy's own start-up migration")),
        "{}",
        deploy.stdout
    );
}

/// An app that needs longer than twenty seconds to start (the
/// `slow-start` variant): the server check waits for its answer, up to the
/// profile's server_timeout (120 s by default), and judges a start that
/// leaves the database alone.
#[test]
fn an_app_slower_than_twenty_seconds_to_start_passes_the_server_check() {
    let dir = sandbox_variant("backed-up", "slow-start");
    let root = root(&dir);
    let result = check(&root, &["post-check", "--only", "server"]);
    result.exits(0);
    for id in ["server.start", "server.health", "server.restart"] {
        assert!(
            result.stdout.lines().any(|l| l.starts_with(id) && l.contains(" pass ")),
            "{id}: {}",
            result.stdout
        );
    }
    result.stdout_has(contains("left the database at"));
}

#[test]
fn live_checks_fail_loudly_when_the_database_changes_and_keep_its_copy() {
    let dir = sandbox_variant("phase4", "migrates-at-start");
    let root = root(&dir);
    run_in(&root, &["rollback", "--scenario", "migration", "--yes"]).exits(0);
    let rolled_back = revision(&root);
    let result = check(&root, &["post-check", "--only", "server", "--live"]);
    result.exits(1).stdout_has(contains("the live database changed"));
    let kept: Vec<_> = fs::read_dir(root.join("forensics"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("live-check-"))
        .collect();
    assert_eq!(kept.len(), 1, "the copy from before is kept");
    let copy = kept[0].path().join("tmws.db");
    let out = Command::new("sqlite3")
        .arg(&copy)
        .arg("SELECT version_num FROM alembic_version")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), rolled_back);
}

#[test]
fn a_profile_that_sends_the_app_to_the_live_tree_bars_the_server_check() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    let url = format!("sqlite:///{}", root.join("data/tmws.db").display());
    let profile = format!("database_url_env = \"\"\n[env]\nTMWS_DATABASE_URL = \"{url}\"\n");
    fs::write(root.join("tmws-rollback.toml"), profile).unwrap();
    let result = check(&root, &["post-check", "--only", "server"]);
    result
        .exits(0)
        .stdout_has(contains("not applicable: the profile's [env] sets TMWS_DATABASE_URL"));
}

/// `--live` runs the app and pytest on the tree itself, where they may
/// write their own folders (data, logs) but never the tool's: its journal
/// and lock, the backups, the forensics bundles.
#[test]
fn live_programs_cannot_write_the_tools_own_folders() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    for folder in [".tmws-rollback", "forensics"] {
        fs::create_dir_all(root.join(folder)).unwrap();
    }
    let main = root.join("src/main.py");
    let text = fs::read_to_string(&main).unwrap();
    let tries = r#"import os as _os
_seen = []
for _where in [".tmws-rollback/journal.json", "backups/pre-phase4/BACKUP_MANIFEST.txt",
               "forensics/planted", "planted-at-the-root", "data/written-by-the-app"]:
    try:
        with open(_where, "a") as _f:
            _f.write("x")
        _seen.append(_where.split("/")[0] + ":done")
    except OSError:
        _seen.append(_where.split("/")[0] + ":blocked")
open("data/written-by-the-app", "a").write(" ".join(_seen) + "\n")
"#;
    fs::write(&main, format!("{tries}{text}")).unwrap();
    let manifest = fs::read(root.join("backups/pre-phase4/BACKUP_MANIFEST.txt")).unwrap();
    check(&root, &["post-check", "--only", "server", "--live"]);
    let seen = fs::read_to_string(root.join("data/written-by-the-app")).unwrap();
    assert!(
        seen.contains(
            ".tmws-rollback:blocked backups:blocked forensics:blocked planted-at-the-root:blocked data:done"
        ),
        "{seen}"
    );
    assert_eq!(fs::read(root.join("backups/pre-phase4/BACKUP_MANIFEST.txt")).unwrap(), manifest);
    assert!(!root.join("forensics/planted").exists());
}
