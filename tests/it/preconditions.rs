//! Every precondition before step 1: what would stop a rollback half-way is
//! refused before anything changes, or handled. A folder of the tree that
//! is a mount point of its own (a move into the bundle crosses file
//! systems), a stale `index.lock`, a rollback branch left by an earlier
//! run, a journal that cannot be read, a root that is not UTF-8.
use std::{ffi::OsStr, fs, os::unix::ffi::OsStrExt, path::Path, process::Command};

use predicates::{prelude::*, str::contains};

use crate::{assert_refused, breakage::revision, digest, root, run, run_in, sandbox, xtask};

/// A tmpfs mounted over a folder of the tree, with the folder's content;
/// unmounted (the content gone with it) when dropped.
struct Mounted(std::path::PathBuf);

impl Mounted {
    fn over(folder: &Path) -> Mounted {
        let aside = folder.with_extension("aside");
        fs::create_dir_all(folder).unwrap();
        fs::rename(folder, &aside).unwrap();
        fs::create_dir(folder).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
            .arg(folder)
            .status();
        assert!(mounted.unwrap().success(), "mount a tmpfs (the tests run as root)");
        let copied = Command::new("cp").arg("-a").arg(aside.join(".")).arg(folder).status();
        assert!(copied.unwrap().success());
        fs::remove_dir_all(&aside).unwrap();
        Mounted(folder.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_data_or_forensics_folder_on_its_own_file_system_is_crossed_by_copying() {
    for (folder, scenario) in
        [("data", "database"), ("forensics", "complete"), ("migrations", "complete")]
    {
        let dir = sandbox("phase4");
        let root = root(&dir);
        let db = fs::read(root.join("data/tmws.db")).unwrap();
        let _mounted = Mounted::over(&root.join(folder));
        let result = run_in(&root, &["rollback", "--scenario", scenario, "--yes"]);
        result.exits(0);
        assert_eq!(revision(&root), crate::breakage::PRE_PHASE4_HEAD, "{folder}");
        let bundle = fs::read_dir(root.join("forensics")).unwrap().flatten().next().unwrap().path();
        assert_eq!(
            fs::read(bundle.join("database/tmws.db")).unwrap(),
            db,
            "{folder}: kept byte for byte"
        );
    }
}

#[test]
fn a_migrations_folder_that_is_a_mount_point_is_refused_before_step_1() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let _mounted = Mounted::over(&root.join("migrations/versions"));
    assert_refused(&root, &["rollback", "--scenario", "complete", "--yes"], 4, "is a mount point");
}

#[test]
fn a_stale_index_lock_and_an_earlier_rollback_branch_are_refused_before_step_1() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    fs::write(root.join(".git/index.lock"), "").unwrap();
    assert_refused(&root, &["rollback", "--scenario", "complete", "--yes"], 4, "index.lock");
    assert_refused(&root, &["rollback", "--scenario", "git", "--yes", "--force"], 4, "index.lock");
    fs::remove_file(root.join(".git/index.lock")).unwrap();
    let made =
        Command::new("git").arg("-C").arg(&root).args(["branch", "rollback-pre-phase4"]).status();
    assert!(made.unwrap().success(), "a branch at HEAD, not at the tag");
    assert_refused(&root, &["rollback", "--scenario", "complete", "--yes"], 4, "exists already");
}

#[test]
fn a_journal_that_cannot_be_read_is_refused_and_abandon_takes_it_away() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    fs::create_dir_all(root.join(".tmws-rollback")).unwrap();
    fs::write(root.join(".tmws-rollback/journal.json"), "{\"run\": \"garbled").unwrap();
    assert_refused(&root, &["rollback", "--scenario", "database", "--yes"], 5, "--abandon");
    run_in(&root, &["list"]).exits(0).stdout_has(contains("cannot be read"));
    run_in(&root, &["diagnose"]).exits(1).stdout_has(contains("--abandon"));
    let before = digest(&root.join("data"));
    let abandoned = run_in(&root, &["rollback", "--scenario", "complete", "--abandon"]);
    abandoned
        .exits(0)
        .stdout_has(contains("could not be read").and(contains("unreadable-journal")));
    assert_eq!(digest(&root.join("data")), before, "abandon changed the database");
    let kept = fs::read_dir(root.join("forensics")).unwrap().flatten().next().unwrap().path();
    assert_eq!(fs::read_to_string(kept.join("journal.json")).unwrap(), "{\"run\": \"garbled");
    run_in(&root, &["rollback", "--scenario", "database", "--yes"]).exits(0);
}

#[test]
fn a_root_that_is_not_utf8_is_refused_naming_it() {
    let dir = tempfile::TempDir::new().unwrap();
    let odd = dir.path().join(OsStr::from_bytes(b"tree-\xff"));
    fs::create_dir(&odd).unwrap();
    let result = run(xtask().args(["diagnose", "--root"]).arg(&odd));
    result.exits(2).stderr_has(contains("is not valid UTF-8").and(contains("tree-")));
}
