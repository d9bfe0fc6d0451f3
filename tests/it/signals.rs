//! Only our processes, and all of them: a termination signal to the xtask
//! stops every program it started (a server's workers included) before it
//! exits; after a SIGKILL, which nothing can catch, the next run reports
//! what was left behind for the root.
use std::{
    fs,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use predicates::{prelude::*, str::contains};

use crate::{root, run_in, sandbox, xtask_path};

/// The processes the tool started for this root that still run (by the
/// mark they carry: they may run in a scratch copy of the tree).
pub fn marked(root: &Path) -> Vec<i32> {
    let wanted = format!("TMWS_XTASK_ROOT={}", root.display());
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(environ) = fs::read(entry.path().join("environ")) else { continue };
        let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'));
        if !zombie && environ.split(|&b| b == 0).any(|v| v == wanted.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A tree whose app takes long to import, served by two workers: while
/// post-check waits for /health, the server and both workers run.
pub fn slow_server(root: &Path) {
    fs::write(
        root.join("tmws-rollback.toml"),
        "server_args = [\"--workers\", \"2\"]\nserver_timeout = 120\n",
    )
    .unwrap();
    let main = root.join("src/main.py");
    let text = fs::read_to_string(&main).unwrap();
    fs::write(&main, format!("import time\ntime.sleep(60)\n{text}")).unwrap();
}

/// `post-check --only server ... EXTRA`, running while the test signals it.
pub fn post_check_in_background(root: &Path, extra: &[&str]) -> std::process::Child {
    crate::with_test_env(&mut Command::new(xtask_path()))
        .args(["post-check", "--only", "server", "--expect-revision", "head", "--root"])
        .arg(root)
        .args(extra)
        .env_remove("TMWS_ROOT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_termination_signal_stops_every_program_the_run_started() {
    for signal in ["-TERM", "-INT"] {
        let dir = sandbox("phase4");
        let root = root(&dir);
        slow_server(&root);
        let mut xtask = post_check_in_background(&root, &[]);
        wait_for("the server and its two workers", || marked(&root).len() >= 3);
        let killed = Command::new("kill").arg(signal).arg(xtask.id().to_string()).status();
        assert!(killed.unwrap().success());
        let status = xtask.wait().unwrap();
        let expected = if signal == "-TERM" { 143 } else { 130 };
        assert_eq!(status.code(), Some(expected), "{signal}");
        wait_for("every program of the run to stop", || marked(&root).is_empty());
    }
}

#[test]
fn after_a_sigkill_the_next_run_reports_what_was_left_behind() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    slow_server(&root);
    let mut xtask = post_check_in_background(&root, &[]);
    wait_for("the server and its two workers", || marked(&root).len() >= 3);
    // multiprocessing's helper counts too: give both workers time to start.
    std::thread::sleep(Duration::from_millis(1500));
    xtask.kill().unwrap();
    xtask.wait().unwrap();
    // The server dies with the xtask; its workers may not.
    std::thread::sleep(Duration::from_millis(500));
    let left = marked(&root);
    // A run that imports no app (the app here sleeps a minute as it loads).
    let report = run_in(&root, &["post-check", "--only", "migrations"]);
    for pid in &left {
        let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
    }
    assert!(!left.is_empty(), "nothing was left behind: the test proves nothing");
    report.stderr_has(
        contains("was killed before it could stop what it started")
            .and(contains(format!("pid {}", left[0]))),
    );
}

/// Ctrl-C during `post-check --format json`: stdout still holds one JSON
/// document, the error's, with exit 130 (and its schema allows it).
#[test]
fn a_json_run_stopped_by_ctrl_c_prints_its_error_document() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    slow_server(&root);
    let xtask = crate::with_test_env(&mut Command::new(xtask_path()))
        .args(["post-check", "--only", "server", "--expect-revision", "head", "--format", "json"])
        .arg("--root")
        .arg(&root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the server and its two workers", || marked(&root).len() >= 3);
    let killed = Command::new("kill").arg("-INT").arg(xtask.id().to_string()).status();
    assert!(killed.unwrap().success());
    let out = xtask.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    crate::schema::assert_valid("error", &document);
    assert_eq!(document["exit"], 130);
    assert_eq!(document["command"], "post-check");
    wait_for("every program of the run to stop", || marked(&root).is_empty());
}

/// Ctrl-C while alembic downgrades the copy: the run stops then, not when
/// the downgrade is done (its programs get the signal: they do not inherit
/// the mask that keeps it for the xtask's own signal thread), the live
/// database is as it was, and the first `--resume` finishes the rollback.
#[test]
fn ctrl_c_during_a_migration_rollback_stops_it_and_one_resume_finishes_it() {
    use std::io::BufRead;
    let dir = sandbox("phase4");
    let root = root(&dir);
    let hold = dir.path().join("hold-the-downgrade");
    fs::write(&hold, "").unwrap();
    let env_py = root.join("migrations/env.py");
    let text = fs::read_to_string(&env_py).unwrap();
    let slow = format!(
        "import os as _os, time as _time\nfrom alembic import context as _context\n\
         _cmd = getattr(getattr(_context.config, 'cmd_opts', None), 'cmd', None)\n\
         if _cmd and _cmd[0].__name__ == 'downgrade' and _os.path.exists({hold:?}):\n    \
         _time.sleep(120)\n",
        hold = hold.display().to_string()
    );
    fs::write(&env_py, format!("{slow}{text}")).unwrap();
    let before = crate::breakage::revision(&root);
    let mut xtask = crate::with_test_env(&mut Command::new(xtask_path()))
        .args(["rollback", "--scenario", "migration", "--yes", "--root"])
        .arg(&root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = std::io::BufReader::new(xtask.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("alembic downgrade") {
        line.clear();
        assert!(said.read_line(&mut line).unwrap() > 0, "the rollback ended before the downgrade");
    }
    wait_for("alembic to run env.py", || marked(&root).len() == 1);
    let killed = Command::new("kill").arg("-INT").arg(xtask.id().to_string()).status();
    assert!(killed.unwrap().success());
    assert_eq!(xtask.wait().unwrap().code(), Some(130));
    assert!(marked(&root).is_empty(), "a program of the stopped run still runs");
    assert_eq!(crate::breakage::revision(&root), before, "the live database changed");
    fs::remove_file(&hold).unwrap();
    let resumed = run_in(&root, &["rollback", "--resume", "--yes"]);
    resumed.exits(0);
    assert_eq!(crate::breakage::revision(&root), crate::breakage::PRE_PHASE4_HEAD);
}
