//! Nothing others own is trusted: a tree another user owns (or others may
//! write) is refused until the user names it safe; looking for a tree
//! never climbs into a shared folder, where another user could plant a
//! profile and a `.venv/`; the virtualenv's folder must be the user's own.
use std::{fs, os::unix::fs::PermissionsExt, path::Path, process::Command};

use predicates::str::contains;

use crate::{assert_refused, digest, root, run, run_in, sandbox, xtask};

fn chown(owner: &str, path: &Path) {
    let owned = Command::new("chown").args(["-R", owner]).arg(path).status().unwrap();
    assert!(owned.success(), "chown {owner} {}", path.display());
}

#[test]
fn a_tree_another_user_owns_is_refused_until_named_safe() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    chown("nobody", &root);
    assert_refused(&root, &["list"], 4, "is not a tree of yours: it belongs to nobody");
    assert_refused(&root, &["diagnose"], 4, "add it to safe_roots in");
    // For one run: --root with --trust-owner.
    let trusted = run(xtask().args(["list", "--trust-owner", "--root"]).arg(&root));
    trusted.exits(0);
    // For good: safe_roots in the user's own config.
    let config = dir.path().join("config");
    fs::create_dir_all(config.join("tmws-xtask")).unwrap();
    let safe = format!("safe_roots = [\"{}\"]\n", root.display());
    fs::write(config.join("tmws-xtask/config.toml"), safe).unwrap();
    let listed = run(xtask().args(["list", "--root"]).arg(&root).env("XDG_CONFIG_HOME", &config));
    listed.exits(0);
    // --trust-owner trusts the tree of --root, and nothing without it.
    let alone = run(xtask().args(["list", "--trust-owner"]).current_dir(&root));
    alone.exits(2).stderr_has(contains("pass --root DIR with it"));
}

#[test]
fn a_tree_others_may_write_is_refused() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
    let before = digest(&root);
    let result = run_in(&root, &["rollback", "--scenario", "database", "--yes"]);
    result.exits(4).stderr_has(contains("others may write it (mode 777)"));
    assert_eq!(digest(&root), before);
}

/// Another user plants an alembic.ini and a `.venv/` whose python writes a
/// mark, in a shared folder (1777) above the folder diagnose runs in: the
/// tool never finds them, never runs that python, and says there is no tree.
#[test]
fn a_tree_planted_in_a_shared_folder_above_is_never_found() {
    let shared = tempfile::TempDir::new().unwrap();
    fs::set_permissions(shared.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let planted = shared.path();
    fs::write(planted.join("alembic.ini"), "[alembic]\nscript_location = migrations\n").unwrap();
    fs::create_dir_all(planted.join("migrations/versions")).unwrap();
    let mark = planted.join("ran-as-root");
    fs::create_dir_all(planted.join(".venv/bin")).unwrap();
    for tool in ["python", "alembic", "pytest", "uvicorn"] {
        let script = format!("#!/bin/sh\ntouch {}\n", mark.display());
        fs::write(planted.join(".venv/bin").join(tool), script).unwrap();
        fs::set_permissions(
            planted.join(".venv/bin").join(tool),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    chown("nobody", &planted.join("alembic.ini"));
    chown("nobody", &planted.join("migrations"));
    chown("nobody", &planted.join(".venv"));
    // The operator's own folder inside it.
    let mine = planted.join("work");
    fs::create_dir(&mine).unwrap();
    fs::set_permissions(&mine, fs::Permissions::from_mode(0o700)).unwrap();
    let result = run(xtask().arg("diagnose").current_dir(&mine));
    result.exits(2).stderr_has(contains("no TMWS tree here"));
    assert!(!mark.exists(), "the planted python ran");
}

#[test]
fn a_cache_folder_another_user_owns_is_refused() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let cache = dir.path().join("cache");
    fs::create_dir_all(cache.join("tmws-xtask/venv")).unwrap();
    chown("nobody", &cache.join("tmws-xtask"));
    let result = run(xtask()
        .args(["post-check", "--only", "imports", "--root"])
        .arg(&root)
        .env("XDG_CACHE_HOME", &cache));
    result.exits(1).stdout_has(contains("is not a folder of this user's (nobody"));
}
