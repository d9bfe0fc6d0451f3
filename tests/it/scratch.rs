//! Scratch copies and scratch folders: the copy a check runs the tree's
//! programs on holds what git tracks and what the profile names, no more
//! readable than the tree, sparse files sparse, at any depth; a
//! termination signal removes every scratch folder of the run (a restore of
//! `verify-backup --repo` too) and what a stopped pull made in the tree;
//! and a run removes what a killed run of the same user left, nothing else.
//!
//! Each test gives the xtask a temporary folder of its own (`TMPDIR`), so
//! that what it finds there is what its runs left.
use std::{
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use predicates::str::contains;

use crate::{
    breakage::git,
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

/// The copy of the tree the server runs on, while it runs: called with it,
/// then the run is stopped with SIGTERM and must leave nothing behind.
fn while_the_server_runs_on_its_copy(root: &Path, temp: &Path, look: impl FnOnce(&Path)) {
    slow_server(root);
    let mut xtask = slow_post_check(root, temp);
    wait_for("the server to run on its copy", || !marked(root).is_empty());
    let copies: Vec<String> =
        scratch_folders(temp).into_iter().filter(|n| n.starts_with("tmws-check-copy-")).collect();
    assert_eq!(copies.len(), 1, "one copy for the server: {copies:?}");
    let copy = temp.join(&copies[0]).join("tmws");
    let looked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| look(&copy)));
    let stopped = Command::new("kill").arg("-TERM").arg(xtask.id().to_string()).status();
    assert!(stopped.unwrap().success());
    assert_eq!(xtask.wait().unwrap().code(), Some(143));
    if let Err(failed) = looked {
        std::panic::resume_unwind(failed);
    }
    assert_eq!(scratch_folders(temp), Vec::<String>::new(), "left behind");
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Every file and folder below `copy`, with its path relative to it.
fn everything_below(copy: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(copy.join(&dir)).unwrap().flatten() {
            let path = dir.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                pending.push(path.clone());
            }
            found.push(path);
        }
    }
    found
}

#[test]
fn a_check_copy_is_never_more_open_than_the_tree() {
    let dir = sandbox("phase4");
    let (root, temp) = (root(&dir), temp_of(&dir));
    set_mode(&root.join("data"), 0o700);
    set_mode(&root.join("src"), 0o750);
    set_mode(&root.join("README.md"), 0o4755);
    fs::write(root.join("helper.sh"), "#!/bin/sh\n").unwrap();
    set_mode(&root.join("helper.sh"), 0o6755);
    while_the_server_runs_on_its_copy(&root, &temp, |copy| {
        assert_eq!(mode(copy.parent().unwrap()), 0o700, "the scratch folder");
        assert_eq!(mode(&copy.join("data")), 0o700);
        assert_eq!(mode(&copy.join("src")), 0o750);
        assert_eq!(mode(&copy.join("README.md")), 0o755, "no setuid");
        assert_eq!(mode(&copy.join("helper.sh")), 0o755, "no setuid, no setgid");
        let below = everything_below(copy);
        assert!(below.len() > 20, "the copy holds the tree: {below:?}");
        for path in [PathBuf::new()].into_iter().chain(below) {
            let (theirs, ours) = (mode(&root.join(&path)), mode(&copy.join(&path)));
            assert_eq!(
                ours & !(theirs & 0o777),
                0,
                "{} is {ours:o}, was {theirs:o}",
                path.display()
            );
        }
    });
}

#[test]
fn a_check_copy_holds_what_git_tracks_and_the_profile_names_but_no_ignored_log() {
    let dir = sandbox("phase4");
    let (root, temp) = (root(&dir), temp_of(&dir));
    // Ignored by `logs/*.log`: a gigabyte the checks never read.
    fs::File::create(root.join("logs/huge.log")).unwrap().set_len(1 << 30).unwrap();
    fs::write(root.join("notes.txt"), "untracked, not ignored\n").unwrap();
    fs::write(root.join(".env"), "TMWS_ENVIRONMENT=development\n").unwrap();
    git(&root, &["check-ignore", "--quiet", "logs/huge.log"]);
    assert!(git(&root, &["ls-files"]).lines().any(|l| l == "src/main.py"));
    while_the_server_runs_on_its_copy(&root, &temp, |copy| {
        assert!(copy.join("src/main.py").is_file(), "a tracked file");
        assert!(copy.join("notes.txt").is_file(), "an untracked file git does not ignore");
        assert!(copy.join(".env").is_file(), "the settings at the root, ignored or not");
        assert!(copy.join("data/tmws.db").is_file(), "the database git ignores");
        assert!(copy.join("logs").is_dir(), "the log's folder, for the app to write in");
        assert!(!copy.join("logs/huge.log").exists(), "an ignored log");
        assert!(!copy.join(".git").exists());
    });
}

#[test]
fn a_sparse_database_stays_sparse_in_the_copy() {
    let dir = sandbox("phase4");
    let (root, temp) = (root(&dir), temp_of(&dir));
    let database = root.join("data/tmws.db");
    // 256 MiB of hole after the pages: SQLite reads the size its header
    // gives, so the database is the same, and sparse.
    let file = fs::OpenOptions::new().write(true).open(&database).unwrap();
    file.set_len(file.metadata().unwrap().len() + (256 << 20)).unwrap();
    let source = fs::metadata(&database).unwrap();
    assert!(source.blocks() * 512 < source.len() / 4, "the database is sparse");
    while_the_server_runs_on_its_copy(&root, &temp, |copy| {
        let copied = fs::metadata(copy.join("data/tmws.db")).unwrap();
        assert_eq!(copied.len(), source.len());
        assert!(
            copied.blocks() <= source.blocks(),
            "{} blocks in the copy, {} in the tree",
            copied.blocks(),
            source.blocks()
        );
    });
}

#[test]
fn a_path_longer_than_the_kernel_takes_in_one_call_is_copied() {
    let dir = sandbox("phase4");
    let (root, temp) = (root(&dir), temp_of(&dir));
    // Relative to the root the path is short enough for git to add; its
    // full path, in the tree and in the copy, is more than 4096 bytes.
    let folder: PathBuf = std::iter::repeat_n("d".repeat(200), 20).collect();
    let name = "f".repeat(4090 - folder.as_os_str().len() - 1);
    let deep = folder.join(&name);
    assert!(root.join(&deep).as_os_str().len() > 4096);
    let made = Command::new("sh")
        .arg("-c")
        .arg(format!("mkdir -p {} && echo deep > {}", folder.display(), deep.display()))
        .current_dir(&root)
        .status();
    assert!(made.unwrap().success());
    git(&root, &["add", deep.to_str().unwrap()]);
    while_the_server_runs_on_its_copy(&root, &temp, |copy| {
        let read = Command::new("cat").arg(&deep).current_dir(copy).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&read.stdout), "deep\n", "{read:?}");
    });
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

/// A restic that, once the real one has restored, touches `marker` and
/// waits, leaving behind a program in a session of its own that holds its
/// output open (its pid in `holder`): the xtask, which reads that output to
/// its end, stays busy after the signal stopped restic, so only the signal
/// path can remove what the run made.
fn slow_restic(dir: &Path, marker: &Path, holder: &Path) -> String {
    let real = Command::new("sh").args(["-c", "command -v restic"]).output().unwrap();
    let real = String::from_utf8(real.stdout).unwrap().trim().to_string();
    assert!(!real.is_empty(), "restic is installed by .ci/run");
    let bin = dir.join("bin");
    fs::create_dir(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\ncase \" $* \" in\n*\" restore \"*) {real} \"$@\" || exit\n  setsid sleep 120 & echo $! > {holder}\n  touch {marker}; exec sleep 60 ;;\n*) exec {real} \"$@\" ;;\nesac\n",
        holder = holder.display(),
        marker = marker.display()
    );
    fs::write(bin.join("restic"), script).unwrap();
    set_mode(&bin.join("restic"), 0o755);
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

#[test]
fn a_stopped_restore_of_verify_backup_repo_or_pull_leaves_nothing_behind() {
    let dir = sandbox("phase4");
    let (root, temp) = (root(&dir), temp_of(&dir));
    let repo = dir.path().join("offsite");
    crate::offsite::fresh_repository(&repo);
    let repo = repo.display().to_string();
    let pushed = crate::offsite::offsite(&root, &repo, crate::offsite::PASSWORD, &["push"]);
    pushed.exits(0);
    // Another machine's checkout: no backups/ until a pull makes one.
    fs::remove_dir_all(root.join("backups")).unwrap();
    let (marker, holder) = (dir.path().join("restored"), dir.path().join("holder"));
    let path = slow_restic(dir.path(), &marker, &holder);
    for command in ["verify-backup", "pull"] {
        let mut xtask = crate::with_test_env(&mut Command::new(xtask_path()))
            .args([command, "--repo", &repo, "--root"])
            .arg(&root)
            .env("RESTIC_PASSWORD", crate::offsite::PASSWORD)
            .env("PATH", &path)
            .env("TMPDIR", &temp)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("restic to restore the snapshot", || marker.exists());
        let restored = match command {
            "pull" => fs::read_dir(root.join("backups")).unwrap().count(),
            _ => {
                scratch_folders(&temp).iter().filter(|n| n.starts_with("tmws-verify-repo-")).count()
            }
        };
        assert_eq!(restored, 1, "{command} restores into a folder of its own");
        let sent = Command::new("kill").arg("-TERM").arg(xtask.id().to_string()).status();
        assert!(sent.unwrap().success());
        let code = xtask.wait().unwrap().code();
        let held = fs::read_to_string(&holder).unwrap();
        assert!(Command::new("kill").arg(held.trim()).status().unwrap().success());
        assert_eq!(code, Some(143), "{command}");
        fs::remove_file(&marker).unwrap();
        assert_eq!(scratch_folders(&temp), Vec::<String>::new(), "{command} left them");
        assert!(!root.join("backups").exists(), "{command} left backups/");
    }
}

/// `cargo xtask test` keeps its trees in /dev/shm only when that is a
/// tmpfs with room: a tmpfs answers its free bytes, a folder on the disk
/// and a missing one answer nothing; and a run's folder in memory (0711)
/// left by a killed run is swept by the next, a live run's never.
#[test]
fn only_a_tmpfs_counts_as_memory_and_a_killed_runs_folder_is_swept() {
    let dir = tempfile::TempDir::new_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mount = dir.path().join("memory");
    fs::create_dir(&mount).unwrap();
    let mounted =
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"]).arg(&mount).status();
    assert!(mounted.unwrap().success(), "mount a tmpfs (the tests run as root)");
    let free = xtask_fs::outside::tmpfs_free(&mount);
    let on_disk = xtask_fs::outside::tmpfs_free(dir.path());
    let missing = xtask_fs::outside::tmpfs_free(mount.join("none"));
    let made = xtask_fs::scratch::Scratch::new_in(&mount, "tmws-tests", 0o711).unwrap();
    let mode = fs::metadata(made.path()).unwrap().permissions().mode() & 0o777;
    // A folder of a run that has ended, named as the tool names them.
    let dead = mount.join("tmws-tests-1.1-AAAAAA");
    fs::create_dir(&dead).unwrap();
    let swept = xtask_fs::leftovers::sweep_in(&mount);
    let live_kept = made.path().is_dir();
    drop(made);
    let unmounted = Command::new("umount").arg(&mount).status();
    assert!(free.is_some_and(|bytes| bytes > 7 << 20 && bytes <= 8 << 20), "{free:?}");
    assert_eq!((on_disk, missing), (None, None));
    assert_eq!(mode, 0o711);
    assert_eq!(swept, ["tmws-tests-1.1-AAAAAA"], "the dead run's folder is swept");
    assert!(live_kept, "a live run's folder is kept");
    assert!(unmounted.unwrap().success());
}
