//! `xtask post-check`: a rolled-back tree passes; each failure is its own
//! check; the server never outlives the check.
use predicates::{prelude::*, str::contains};
use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use crate::{Run, assert_code, breakage::*, root, run, run_in, sandbox, snapshot, xtask};

/// A Phase 4 sandbox after a complete rollback: what CI checks. The rollback
/// runs once per test process; each test gets a copy of its result.
fn rolled_back() -> tempfile::TempDir {
    crate::from_template("rolled-back", |template| {
        let dir = sandbox("phase4");
        let result = run_in(&root(&dir), &["rollback", "--scenario", "complete", "--yes"]);
        assert_code(&result, 0);
        crate::copy_tree(&root(&dir), template);
    })
}

fn json_check(result: &Run, id: &str) -> serde_json::Value {
    let report: serde_json::Value =
        serde_json::from_str(&result.stdout).unwrap_or_else(|e| panic!("{e}: {result:?}"));
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no {id}: {result:?}"))
}

#[track_caller]
fn assert_check_fails(result: &Run, id: &str, message: &str) {
    assert_code(result, 1);
    let check = json_check(result, id);
    assert_eq!(check["status"], "fail", "{id}: {result:?}");
    let detail = check["detail"].as_str().unwrap();
    assert!(detail.contains(message), "{id}: expected {message:?} in {detail:?}");
}

fn post_check_json(root: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["post-check", "--format", "json"];
    args.extend_from_slice(extra);
    let result = run_in(root, &args);
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(&result.stdout) {
        let schema = if json["result"] == "error" { "error" } else { "report" };
        crate::schema::assert_valid(schema, &json);
    }
    result
}

/// No uvicorn process whose working directory is inside `root` remains.
fn assert_no_server(root: &Path) {
    let root = root.canonicalize().unwrap();
    for _ in 0..100 {
        if uvicorns_of(&root).is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("a server of {} is still running", root.display());
}

/// The uvicorn processes the tool started for `root` that still run.
fn uvicorns_of(root: &Path) -> Vec<i32> {
    let uvicorn = |pid: &i32| {
        fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("uvicorn"))
    };
    crate::signals::marked(root).into_iter().filter(uvicorn).collect()
}

#[test]
fn a_rolled_back_tree_passes_with_table_checklist_and_junit() {
    let dir = rolled_back();
    let root = root(&dir);
    let checklist = dir.path().join("checklist.md");
    let junit = dir.path().join("post-check.xml");
    let result = run(xtask()
        .args(["post-check", "-q", "--root"])
        .arg(&root)
        .arg("--checklist")
        .arg(&checklist)
        .arg("--junit")
        .arg(&junit));
    assert_code(&result, 0);
    crate::snapshot_run!(&root, result);
    snapshot!(&root, fs::read_to_string(&checklist).unwrap());
    let rows = |status: &str| result.stdout.lines().filter(|l| l.contains(status)).count();
    let (passed, not_applicable) = (rows("  pass  "), rows("  n/a  "));
    let junit = crate::junit::assert_valid_junit(&junit);
    // A check that is not applicable is a skipped testcase.
    let counts = (junit.tests, junit.failures, junit.errors, junit.skipped);
    assert_eq!(counts, (passed + not_applicable, 0, 0, not_applicable), "{junit:?}");
    assert_no_server(&root);
    let status = git(&root, &["status", "--porcelain", "--ignored"]);
    assert!(
        !status.contains(".pytest_cache") && !status.contains("__pycache__"),
        "pytest left files:\n{status}"
    );
}

#[test]
fn without_a_backup_head_is_the_expectation() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    let result = post_check_json(&root, &["--expect-revision", "head", "--skip", "forensics"]);
    assert_code(&result, 0);
    let tables = json_check(&result, "database.tables");
    assert_eq!(tables["status"], "not_applicable", "{tables}");
    assert!(tables["detail"].as_str().unwrap().contains("no backup pre-phase4"), "{tables}");
    assert_eq!(json_check(&result, "database.revision")["status"], "pass");
    assert_eq!(json_check(&result, "forensics")["status"], "skip");
}

#[test]
fn a_module_that_no_longer_imports_fails_imports() {
    let dir = rolled_back();
    let root = root(&dir);
    break_import(&root, "src/services/verification_service.py");
    let result = post_check_json(&root, &["--only", "imports"]);
    assert_check_fails(
        &result,
        "imports",
        "src.services.verification_service: ModuleNotFoundError",
    );
}

#[test]
fn a_failing_test_is_named() {
    let dir = rolled_back();
    let root = root(&dir);
    let file = root.join("tests/unit/services/test_verification_service.py");
    let text = fs::read_to_string(&file)
        .unwrap()
        .replace("assert service.success_rate(7) == 0.5", "assert service.success_rate(7) == 0.25");
    fs::write(&file, text).unwrap();
    let result = post_check_json(&root, &["--only", "tests"]);
    assert_check_fails(
        &result,
        "tests.unit",
        "test_success_rate_counts_recorded_verifications (failure)",
    );
    assert_eq!(json_check(&result, "tests.integration")["status"], "pass");
}

#[test]
fn pytest_failing_although_every_test_passed_is_told_apart() {
    let dir = rolled_back();
    let root = root(&dir);
    let conftest = root.join("tests/conftest.py");
    let mut text = fs::read_to_string(&conftest).unwrap();
    text.push_str(
        "\n\ndef pytest_sessionfinish(session, exitstatus):\n    session.exitstatus = 3\n",
    );
    fs::write(&conftest, text).unwrap();
    let result = post_check_json(&root, &["--only", "tests"]);
    assert_check_fails(&result, "tests.unit", "but pytest itself failed (exit code 3)");
}

#[test]
fn an_app_that_crashes_on_start_fails_with_its_log() {
    let dir = rolled_back();
    let root = root(&dir);
    let main = root.join("src/main.py");
    let text =
        fs::read_to_string(&main).unwrap() + "\nraise RuntimeError('configuration is missing')\n";
    fs::write(&main, text).unwrap();
    let result = post_check_json(&root, &["--only", "server"]);
    assert_check_fails(&result, "server.start", "configuration is missing");
    // A server that never started says nothing of a restart.
    assert_check_fails(&result, "server.restart", "not reached: the server did not start");
    assert_no_server(&root);
}

#[test]
fn health_returning_500_fails() {
    let dir = rolled_back();
    let root = root(&dir);
    let main = root.join("src/main.py");
    let text = fs::read_to_string(&main)
        .unwrap()
        .replace("status = 200 if healthy else 503", "status = 500");
    fs::write(&main, text).unwrap();
    let result = post_check_json(&root, &["--only", "server"]);
    assert_check_fails(&result, "server.health", "HTTP 500");
    assert_no_server(&root);
}

#[test]
fn a_database_at_another_revision_fails() {
    let dir = rolled_back();
    let root = root(&dir);
    let conn = rusqlite::Connection::open(root.join("data/tmws.db")).unwrap();
    conn.execute("UPDATE alembic_version SET version_num = '0e7b3a5c9d21'", []).unwrap();
    drop(conn);
    let result = post_check_json(&root, &["--only", "database", "--only", "server"]);
    assert_check_fails(&result, "database.revision", "0e7b3a5c9d21, expected 47a9e2c8b6f0");
    assert_check_fails(&result, "server.health", "at revision 0e7b3a5c9d21, expected 47a9e2c8b6f0");
}

#[test]
fn a_dirty_git_tree_fails() {
    let dir = rolled_back();
    let root = root(&dir);
    fs::write(root.join("notes.txt"), "left behind").unwrap();
    let result = post_check_json(&root, &["--only", "git"]);
    assert_check_fails(&result, "git.clean", "notes.txt");
}

#[test]
fn a_restored_file_that_differs_fails() {
    let dir = rolled_back();
    let root = root(&dir);
    fs::write(root.join(".env.example"), "TMWS_ENVIRONMENT=staging\n").unwrap();
    let result = post_check_json(&root, &["--only", "files"]);
    assert_check_fails(&result, "files.restored", ".env.example differs from the backup");
}

#[test]
fn a_taken_port_fails_quickly() {
    let dir = rolled_back();
    let root = root(&dir);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let result = post_check_json(&root, &["--only", "server", "--port", &port]);
    assert_check_fails(&result, "server.start", "the server exited");
}

#[test]
fn a_missing_python_is_a_clear_failure() {
    let dir = rolled_back();
    let root = root(&dir);
    let result = post_check_json(&root, &["--only", "imports", "--python", "/nonexistent/python3"]);
    assert_check_fails(&result, "imports", "no Python interpreter at /nonexistent/python3");
}

#[test]
fn alembic_missing_from_the_virtualenv_is_a_clear_failure() {
    let dir = rolled_back();
    let root = root(&dir);
    // A folder that looks like a virtualenv with alembic (an `alembic`
    // script is there, so it is used as is) but whose python, linked outside
    // its virtualenv (no pyvenv.cfg beside it), is the base Python, where the
    // alembic module is not installed.
    let venv = dir.path().join("venv/bin");
    fs::create_dir_all(&venv).unwrap();
    let real = crate::sandbox::python_of_sandbox().parent().unwrap().to_path_buf();
    for tool in ["python", "pytest", "uvicorn"] {
        std::os::unix::fs::symlink(real.join(tool), venv.join(tool)).unwrap();
    }
    fs::write(venv.join("alembic"), "#!/bin/sh\nexit 1\n").unwrap();
    fs::set_permissions(venv.join("alembic"), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    let result = post_check_json(
        &root,
        &["--only", "migrations", "--python", venv.join("python").to_str().unwrap()],
    );
    assert_check_fails(&result, "migrations.current", "No module named 'alembic'");
    assert_check_fails(&result, "migrations.history", "No module named 'alembic'");
}

#[test]
fn an_unknown_check_is_a_usage_error() {
    let dir = sandbox("pre-phase4");
    let result = post_check_json(&root(&dir), &["--only", "everything"]);
    assert_code(&result, 2);
    result.stderr_has(contains("unknown check \"everything\""));
}

#[test]
fn ctrl_c_on_the_xtask_stops_the_server() {
    let dir = rolled_back();
    let root = root(&dir);
    // A server that answers but never becomes healthy keeps the check polling.
    crate::breakage::slow_health(&root);
    let mut child = xtask()
        .args(["post-check", "--only", "server", "--root"])
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let canonical = root.canonicalize().unwrap();
    let mut seen = false;
    for _ in 0..400 {
        seen = !uvicorns_of(&canonical).is_empty();
        if seen {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(seen, "the server never started");
    // Ctrl-C, as a person would send it, to our own child by its pid.
    let interrupted = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    assert!(interrupted.unwrap().success(), "kill -INT {}", child.id());
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_no_server(&root);
}

#[test]
fn a_server_that_never_answers_times_out_and_is_stopped() {
    let dir = rolled_back();
    let root = root(&dir);
    fs::write(root.join("tmws-rollback.toml"), "server_timeout = 2\n").unwrap();
    let main = root.join("src/main.py");
    let text = fs::read_to_string(&main).unwrap().replace(
        "            if message[\"type\"] == \"lifespan.startup\":",
        "            if message[\"type\"] == \"lifespan.startup\":\n                import time; time.sleep(60)",
    );
    fs::write(&main, text).unwrap();
    let result = post_check_json(&root, &["--only", "server"]);
    assert_check_fails(&result, "server.start", "no answer on 127.0.0.1:");
    assert_no_server(&root);
}

/// A server that listens but whose /health never answers has started; its
/// health check is what fails, with the time it waited.
#[test]
fn a_health_endpoint_that_hangs_fails_health_not_start() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    fs::write(
        root.join("src/hang.py"),
        "import asyncio\n\n\nasync def app(scope, receive, send):\n    if scope[\"type\"] != \"http\":\n        return\n    await asyncio.sleep(3600)\n",
    )
    .unwrap();
    fs::write(root.join("tmws-rollback.toml"), "app = \"src.hang:app\"\nserver_timeout = 3\n")
        .unwrap();
    let result = post_check_json(&root, &["--only", "server", "--expect-revision", "head"]);
    assert_code(&result, 1);
    assert_eq!(json_check(&result, "server.start")["status"], "pass", "{result:?}");
    assert_check_fails(&result, "server.health", "/health did not answer within 3s");
    assert_no_server(&root);
}

#[test]
fn an_expected_revision_no_migration_defines_is_a_usage_error() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let result = run_in(&root, &["post-check", "--expect-revision", "zzzz"]);
    result.exits(2).stderr_has(contains("--expect-revision zzzz: no revision file"));
}

#[test]
fn after_a_files_rollback_only_what_it_wrote_is_judged() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let rollback = run_in(&root, &["rollback", "--scenario", "files", "--all", "--yes"]);
    assert_code(&rollback, 0);
    // A config file the files rollback never touches: the deploy's own.
    let pyproject = root.join("pyproject.toml");
    let text = fs::read_to_string(&pyproject).unwrap();
    fs::write(&pyproject, format!("{text}\n# changed after the deploy\n")).unwrap();
    let result = post_check_json(&root, &["--only", "files"]);
    assert_code(&result, 0);
    let check = json_check(&result, "files.restored");
    let detail = check["detail"].as_str().unwrap();
    assert!(detail.contains("the files the last rollback (--scenario files) wrote"), "{detail}");
    // A file it wrote, changed again, still fails.
    let written = root.join("src/services/verification_service.py");
    fs::write(&written, "BROKEN = True\n").unwrap();
    let result = post_check_json(&root, &["--only", "files"]);
    assert_check_fails(&result, "files.restored", "verification_service.py differs");
}

#[test]
fn a_history_that_lists_other_revisions_than_the_profiles_fails() {
    let dir = rolled_back();
    let root = root(&dir);
    // The profile names a folder holding one revision more than the one
    // alembic.ini's script_location reads.
    let other = root.join("elsewhere/versions");
    fs::create_dir_all(&other).unwrap();
    for entry in fs::read_dir(root.join("migrations/versions")).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, other.join(path.file_name().unwrap())).unwrap();
    }
    let extra = "revision = \"5e0c1f7a2b93\"\ndown_revision = \"47a9e2c8b6f0\"\n\ndef upgrade():\n    pass\n\ndef downgrade():\n    pass\n";
    fs::write(other.join("5e0c1f7a2b93_extra.py"), extra).unwrap();
    fs::write(root.join("tmws-rollback.toml"), "migrations = \"elsewhere/versions\"\n").unwrap();
    let result = post_check_json(&root, &["--only", "migrations"]);
    assert_check_fails(&result, "migrations.history", "lists 12 of the 13 revisions");
}

/// A backed-up tree that no rollback touched has no failure to keep: the
/// forensics check is not applicable, and post-check passes; once a bundle
/// is written it passes; with `--after rollback` a missing bundle fails.
#[test]
fn forensics_on_a_tree_never_rolled_back_is_not_applicable() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    let before = crate::digest(&root);
    let check = run_in(&root, &["post-check", "--skip", "tests,server"]);
    check.exits(0).stdout_has(
        contains("forensics            n/a")
            .and(contains("no rollback on record here and no bundle under forensics/")),
    );
    assert_eq!(crate::digest(&root), before, "post-check changed the tree");
    let after = run_in(&root, &["post-check", "--only", "forensics", "--after", "rollback"]);
    after.exits(1).stdout_has(contains("no bundle under forensics/"));
    run_in(&root, &["forensics"]).exits(0);
    let bundled = run_in(&root, &["post-check", "--only", "forensics"]);
    bundled.exits(0).stdout_has(contains("1 bundle(s), latest"));
}

/// The service's own virtualenv without uvicorn or pytest is used as it
/// is (the tool never swaps it for its own silently): the checks that need
/// them fail saying so, the others run in it.
#[test]
fn a_service_interpreter_without_uvicorn_or_pytest_is_kept_and_named() {
    let dir = rolled_back();
    let root = root(&dir);
    crate::sandbox::service_venv_without_uvicorn(&root, &["pytest", "py.test"]);
    let result = post_check_json(&root, &["--skip", "git"]);
    let report: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    let interpreter = report["interpreter"].as_str().unwrap();
    assert!(interpreter.contains(".venv/bin/python (the checkout's own .venv, which has alembic but no pytest and no uvicorn"), "{interpreter}");
    assert_check_fails(&result, "tests.unit", "has no pytest: install pytest in that interpreter");
    assert_check_fails(
        &result,
        "server.start",
        "is an ASGI app and this interpreter has no uvicorn",
    );
    assert_eq!(json_check(&result, "migrations.current")["status"], "pass", "{result:?}");
    assert_eq!(json_check(&result, "imports")["status"], "pass", "{result:?}");
}
