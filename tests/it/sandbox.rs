//! `xtask sandbox`: each stage builds a working tree.
use predicates::{
    prelude::*,
    str::{contains, starts_with},
};
use std::fs;

use crate::{assert_code, root, run, sandbox, xtask};

#[test]
fn pre_phase4_tree_passes_its_own_tests() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    let venv_python = python_of_sandbox();
    let output = std::process::Command::new(venv_python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .current_dir(&root)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("9 passed"), "{stdout}");
}

#[test]
fn backed_up_stage_has_a_backup_and_a_tag() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    assert!(root.join("backups/pre-phase4/BACKUP_MANIFEST.txt").is_file());
    let tags =
        std::process::Command::new("git").args(["tag", "-l"]).current_dir(&root).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&tags.stdout).trim(), "pre-phase4");
}

#[test]
fn phase4_stage_is_deployed_and_clean() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let conn = rusqlite::Connection::open(root.join("data/tmws.db")).unwrap();
    let revision: String =
        conn.query_row("SELECT version_num FROM alembic_version", [], |r| r.get(0)).unwrap();
    assert_eq!(revision, "f1c7e3a9b5d4");
    let status = std::process::Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "");
}

#[test]
fn a_non_empty_out_folder_is_refused() {
    let dir = tempfile::TempDir::new().unwrap();
    fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    let result = run(xtask().args(["sandbox", "--out"]).arg(dir.path()));
    assert_code(&result, 2);
    result.stderr_has(contains("is not an empty folder"));
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// The interpreter of the virtualenv the xtask built for the sandboxes.
/// A `.venv` of the tree's own, as a service keeps one: a copy of the
/// tests' virtualenv without uvicorn (its script and its package) and
/// without the scripts named in `scripts`.
pub fn service_venv_without_uvicorn(root: &std::path::Path, scripts: &[&str]) {
    let ours = python_of_sandbox().parent().unwrap().parent().unwrap().to_path_buf();
    let venv = root.join(".venv");
    let copied = std::process::Command::new("cp").arg("-a").arg(&ours).arg(&venv).status();
    assert!(copied.unwrap().success());
    for script in scripts.iter().chain(&["uvicorn"]) {
        fs::remove_file(venv.join("bin").join(script)).unwrap();
    }
    let lib = fs::read_dir(venv.join("lib")).unwrap().next().unwrap().unwrap().path();
    fs::remove_dir_all(lib.join("site-packages/uvicorn")).unwrap();
}

pub fn python_of_sandbox() -> std::path::PathBuf {
    let home = crate::test_cache().join("tmws-xtask/venv");
    let venv = fs::read_dir(&home)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join(".ready").is_file())
        .expect("a sandbox was built, so a virtualenv is ready");
    venv.join("bin/python")
}

#[test]
fn help_lists_every_command_and_bad_flags_exit_2() {
    let help = run(xtask().arg("--help"));
    assert_code(&help, 0);
    let commands = [
        "sandbox",
        "backup",
        "verify-backup",
        "rollback",
        "post-check",
        "forensics",
        "diagnose",
        "drill",
        "init",
        "list",
        "bench",
    ];
    for command in commands {
        assert!(
            help.stdout.lines().any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "{command} missing from --help:\n{}",
            help.stdout
        );
    }
    help.stdout_has(contains("EXIT CODES:"));
    // One command's help is that command's only, every flag described,
    // with examples.
    for command in commands {
        let one = run(xtask().args([command, "--help"]));
        assert_code(&one, 0);
        one.stdout_has(starts_with(format!("cargo xtask {command}\n")));
        one.stdout_has(contains("EXAMPLES:\n    cargo xtask"));
        let others = commands.iter().filter(|c| **c != command);
        for other in others {
            one.stdout_has(contains(format!("xtask {other}\n")).not());
        }
        let lines: Vec<&str> = one.stdout.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with('-') && line.starts_with("    ") {
                let described = lines.get(i + 1).is_some_and(|next| !next.trim().is_empty());
                assert!(described, "{command}: {line} has no description");
            }
        }
    }
    let version = run(xtask().arg("--version"));
    assert_code(&version, 0);
    version.stdout_has(contains("SQLite").and(contains("libgit2")));
    for (args, hint) in [
        (&["rolback"][..], "did you mean `rollback`?"),
        (&["rollback", "--scenerio", "database"][..], "did you mean `--scenario`?"),
        (&["backup", "--no-such-flag"][..], "try `cargo xtask backup --help`"),
    ] {
        let bad = run(xtask().args(args));
        assert_code(&bad, 2);
        bad.stderr_has(contains(hint));
    }
}

#[test]
fn phase4_stage_answers_health_at_its_head() {
    let dir = sandbox("phase4");
    let result = crate::run_in(
        &root(&dir),
        &["post-check", "--only", "server", "--expect-revision", "head", "--format", "json"],
    );
    assert_code(&result, 0);
    crate::schema::assert_valid("report", &serde_json::from_str(&result.stdout).unwrap());
    result.stdout_has(contains("HTTP 200, /status \\\"healthy\\\", revision f1c7e3a9b5d4"));
}
