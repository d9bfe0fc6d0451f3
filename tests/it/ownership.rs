//! Nothing others own is trusted: a tree another user owns (or others may
//! write) is refused until the user names it safe; looking for a tree
//! never climbs into a shared folder, where another user could plant a
//! profile and a `.venv/`; the virtualenv's folder must be the user's own.
use std::{
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::Path,
    process::Command,
};

use predicates::{prelude::*, str::contains};

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

/// A virtualenv with the tool's pinned packages that `nobody` can run:
/// from the system's python3 (the one the tests' virtualenv comes from
/// lies under a folder only root may enter), inside the tree, as a
/// service keeps its own. It is built once a run (pip's install was a
/// tenth of the run's CPU) and moved in, its scripts' first lines and
/// activation files pointed at where it now lies.
fn venv_nobody_can_run(root: &Path) {
    let built = crate::from_template("system-python-venv", |at| {
        let made = Command::new("/usr/bin/python3").args(["-m", "venv"]).arg(at).status();
        assert!(made.unwrap().success(), "python3 -m venv");
        let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("python-requirements.txt");
        let installed = Command::new(at.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(requirements)
            .status();
        assert!(installed.unwrap().success(), "pip install");
    });
    let venv = root.join(".venv");
    fs::rename(crate::root(&built), &venv).unwrap();
    let pip = fs::read_to_string(venv.join("bin/pip")).unwrap();
    let python = pip.lines().next().unwrap().trim_start_matches("#!");
    let old = Path::new(python).parent().and_then(Path::parent).unwrap().to_str().unwrap();
    for entry in fs::read_dir(venv.join("bin")).unwrap().flatten() {
        let is_file = entry.file_type().unwrap().is_file();
        let Some(text) = is_file.then(|| fs::read_to_string(entry.path()).ok()).flatten() else {
            continue;
        };
        if text.contains(old) {
            fs::write(entry.path(), text.replace(old, venv.to_str().unwrap())).unwrap();
        }
    }
}

/// Root on a tree another user owns, named safe, runs the tree's programs
/// as that user: alembic (its env.py refuses to run as root here), the
/// import check (a critical module that refuses too), the app and pytest.
/// What it gives them (the migrated copy) stays that user's; and with no
/// virtualenv that user can run, it refuses before anything changes.
#[test]
fn root_runs_the_programs_of_another_users_tree_as_its_owner() {
    let dir = sandbox("phase4");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let root = root(&dir);
    let refuse_root = "import os\nif os.geteuid() == 0:\n    raise SystemExit(\"ran as root\")\n";
    let refusing = [
        "migrations/env.py",
        "src/services/learning_trust_integration.py",
        "src/main.py",
        "tests/conftest.py",
    ];
    for file in refusing {
        let text = fs::read_to_string(root.join(file)).unwrap();
        fs::write(root.join(file), format!("{refuse_root}{text}")).unwrap();
    }
    crate::breakage::git(&root, &["commit", "-q", "-am", "Refuse to run as root"]);
    chown("nobody", &root);
    let trusted = |args: &[&str]| {
        let mut cmd = xtask();
        cmd.args(args).args(["--trust-owner", "--root"]).arg(&root);
        run(&mut cmd)
    };
    // The tool's own virtualenv is root's: refused, naming the way out.
    let before = digest(&root);
    let refused = trusted(&["rollback", "--scenario", "migration", "--yes"]);
    refused.exits(4).stderr_has(contains("the tree's programs run as its owner, nobody"));
    assert_eq!(digest(&root), before);
    venv_nobody_can_run(&root);
    chown("nobody", &root.join(".venv"));
    // The backup root's and private, as a pulled backup is: the owner's
    // interpreter compiles its sources from stdin, never from its folder.
    chown("root", &root.join("backups"));
    let private = fs::Permissions::from_mode(0o700);
    fs::set_permissions(root.join("backups/pre-phase4"), private).unwrap();
    trusted(&["rollback", "--scenario", "migration", "--yes"]).exits(0);
    let database = root.join("data/tmws.db");
    let owner = fs::metadata(&database).unwrap().uid();
    assert_ne!(owner, 0, "the migrated database is root's");
    let check = trusted(&["post-check", "--only", "imports,tests,server"]);
    check.exits(0).stdout_has(contains("3 modules import").and(contains("answered on")));
    // diagnose runs the import check and alembic as the owner too.
    let diagnosed = trusted(&["diagnose"]);
    diagnosed.stdout_has(
        contains("imports                 pass")
            .and(contains("migration.revision      FAIL    database at 47a9e2c8b6f0")),
    );
    // As a control, the same checks as root on a tree of root's fail.
    chown("root", &root);
    let as_root = run_in(&root, &["post-check", "--only", "imports,tests,server"]);
    as_root.exits(1).stdout_has(contains("ran as root"));
}
