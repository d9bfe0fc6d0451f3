//! Scratch folders: a termination signal removes every scratch folder of
//! the run, and a run removes what a killed run of the same user left,
//! nothing else.
//!
//! Each test gives the xtask a temporary folder of its own (`TMPDIR`), so
//! that what it finds there is what its runs left.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use predicates::str::contains;

use crate::{
    root, run, sandbox,
    signals::{marked, slow_server, wait_for},
    xtask, xtask_path,
};

/// A temporary folder of the test's own, beside the tree.
fn temp_of(dir: &tempfile::TempDir) -> PathBuf {
    let temp = dir.path().join("temp");
    fs::create_dir_all(&temp).unwrap();
    temp
}

/// `post-check --only server` on a tree whose app sleeps when imported
/// (`slow_server`), with `temp` as its temporary folder.
fn slow_post_check(root: &Path, temp: &Path) -> Child {
    crate::with_test_env(&mut Command::new(xtask_path()))
        .args(["post-check", "--only", "server", "--expect-revision", "head", "--root"])
        .arg(root)
        .env("TMPDIR", temp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// What the runs left in `temp` under the tool's names.
fn scratch_folders(temp: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(temp)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("tmws-"))
        .collect();
    names.sort();
    names
}

#[test]
fn sigint_sigterm_and_sighup_remove_every_scratch_folder() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    slow_server(&root);
    for (signal, code) in [("-INT", 130), ("-TERM", 143), ("-HUP", 129)] {
        let temp = dir.path().join(format!("temp{signal}"));
        fs::create_dir(&temp).unwrap();
        let mut xtask = slow_post_check(&root, &temp);
        wait_for("the server and its two workers", || marked(&root).len() >= 3);
        let made = scratch_folders(&temp);
        assert!(
            made.iter().any(|n| n.starts_with("tmws-check-copy-"))
                && made.iter().any(|n| n.starts_with("tmws-program-"))
                && made.iter().any(|n| n.starts_with("tmws-post-check-")),
            "the run's scratch folders: {made:?}"
        );
        let sent = Command::new("kill").arg(signal).arg(xtask.id().to_string()).status();
        assert!(sent.unwrap().success());
        assert_eq!(xtask.wait().unwrap().code(), Some(code), "{signal}");
        assert_eq!(scratch_folders(&temp), Vec::<String>::new(), "{signal} left them");
        wait_for("every program of the run to stop", || marked(&root).is_empty());
    }
}

/// When a process started, in clock ticks since boot (`/proc/PID/stat`).
fn start_of(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit_once(')').unwrap().1.split_whitespace().nth(19).unwrap().parse().unwrap()
}

#[test]
fn a_run_removes_what_killed_runs_of_its_user_left_and_nothing_else() {
    let dir = sandbox("phase4");
    let (root, temp) = (root(&dir), temp_of(&dir));
    let mut finished = Command::new("true").spawn().unwrap();
    let gone = finished.id();
    finished.wait().unwrap();
    let me = std::process::id();
    let dead = temp.join(format!("tmws-check-copy-{gone}.1-Ab3xYz"));
    // This very pid, but a process that started at another time.
    let reused = temp.join(format!("tmws-program-{me}.{}-Cd4wVu", start_of(me) + 1));
    let live = temp.join(format!("tmws-program-{me}.{}-Ef5tSr", start_of(me)));
    let theirs = temp.join(format!("tmws-post-check-{gone}.1-Gh6qPo"));
    for folder in [&dead, &reused, &live, &theirs] {
        fs::create_dir_all(folder.join("tmws/src")).unwrap();
        fs::write(folder.join("tmws/src/main.py"), "app = None\n").unwrap();
    }
    let chowned = Command::new("chown").args(["-R", "nobody"]).arg(&theirs).status();
    assert!(chowned.unwrap().success());
    // A link of a dead run's name is never followed into what it names.
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("keep"), "x").unwrap();
    let link = temp.join(format!("tmws-evidence-{gone}.1-Ij7nMl"));
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();

    let result = run(xtask().args(["list", "--root"]).arg(&root).env("TMPDIR", &temp));
    result
        .exits(0)
        .stderr_has(contains(format!("removed tmws-check-copy-{gone}.1-Ab3xYz and 1 more")));
    assert!(!dead.exists(), "a dead run's folder");
    assert!(!reused.exists(), "the folder of a run whose pid was given again");
    assert!(live.join("tmws/src/main.py").exists(), "a live run's folder");
    assert!(theirs.join("tmws/src/main.py").exists(), "another user's folder");
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "a link");
    assert!(elsewhere.join("keep").exists(), "what a link names");
}
