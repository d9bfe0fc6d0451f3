//! Scratch folders: a termination signal removes every scratch folder of
//! the run.
//!
//! Each test gives the xtask a temporary folder of its own (`TMPDIR`), so
//! that what it finds there is what its runs left.
use std::{
    fs,
    path::Path,
    process::{Child, Command, Stdio},
};

use crate::{
    root, sandbox,
    signals::{marked, slow_server, wait_for},
    xtask_path,
};

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
