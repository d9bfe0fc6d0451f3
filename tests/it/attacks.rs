//! Attacks, in the spirit of SQLite's and restic's fault tests: a planted
//! link, a FIFO, a full disk, a forged backup, an exported URL, a stranger
//! process, a bad flag. Each asserts the exit code, the message, that a
//! folder beside the root is untouched, and what the tree holds afterwards.
use predicates::{prelude::*, str::contains};
use std::{
    fs,
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use tempfile::TempDir;

use crate::{Run, assert_code, breakage::*, digest, root, run, run_in, sandbox, xtask};

const BACKUP: &str = "backups/pre-phase4";

/// A folder beside the root, with a file in it, and its digest.
fn outside(dir: &TempDir) -> (PathBuf, String) {
    let path = dir.path().join("outside");
    fs::create_dir_all(&path).unwrap();
    fs::write(path.join("precious.txt"), "not the tool's\n").unwrap();
    let before = digest(&path);
    (path, before)
}

fn rollback(root: &Path, scenario: &str, extra: &[&str]) -> Run {
    let mut args = vec!["rollback", "--scenario", scenario, "--yes"];
    args.extend_from_slice(extra);
    run_in(root, &args)
}

#[track_caller]
fn assert_says(run: &Run, text: &str) {
    run.stderr_has(contains(text));
}

#[test]
fn a_link_planted_at_the_staging_name_is_never_written_through() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let (out, before) = outside(&dir);
    symlink(out.join("precious.txt"), root.join("data/.tmws.db.xtask-staged")).unwrap();
    let result = rollback(&root, "complete", &[]);
    assert_code(&result, 0);
    assert_eq!(digest(&out), before, "the file the link pointed at was written");
    let db = fs::symlink_metadata(root.join("data/tmws.db")).unwrap();
    assert!(db.file_type().is_file(), "the database must be a regular file, not a link");
}

#[test]
fn a_folder_replaced_by_a_link_out_of_the_root_is_refused() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let (out, before) = outside(&dir);
    fs::remove_dir_all(root.join("src/services")).unwrap();
    symlink(&out, root.join("src/services")).unwrap();
    let result = rollback(&root, "files", &[]);
    assert_code(&result, 4);
    assert_says(&result, "src/services");
    assert_says(&result, "symbolic link");
    assert_eq!(digest(&out), before, "files were written outside the root");
}

#[test]
fn tool_folders_that_are_links_are_refused() {
    for folder in ["forensics", ".tmws-rollback"] {
        let dir = sandbox("phase4");
        let root = root(&dir);
        let (out, before) = outside(&dir);
        let _ = fs::remove_dir_all(root.join(folder));
        symlink(&out, root.join(folder)).unwrap();
        let db = sha256(&root.join("data/tmws.db"));
        let result = rollback(&root, "database", &[]);
        assert_code(&result, 4);
        assert_says(&result, folder);
        assert_eq!(digest(&out), before, "{folder}: written through the link");
        assert_eq!(sha256(&root.join("data/tmws.db")), db, "{folder}: the database changed");
    }
}

#[test]
fn profile_paths_that_name_the_root_or_climb_out_are_refused() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    for profile in [
        "migrations = \".\"\n",
        "database = \"../tmws.db\"\n",
        "critical_files = [\"/etc/passwd\"]\n",
        "service_programs = [\"\"]\n",
        "service_programs = [\"py*\"]\n",
    ] {
        fs::write(root.join("tmws-rollback.toml"), profile).unwrap();
        let before = digest(&root);
        let result = rollback(&root, "complete", &[]);
        assert_code(&result, 2);
        assert_says(&result, "tmws-rollback.toml");
        assert_eq!(digest(&root), before, "{profile}");
    }
}

#[test]
fn a_config_file_linked_to_a_secret_elsewhere_is_not_backed_up() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    let (out, _) = outside(&dir);
    let secret = out.join("secret.env");
    fs::write(&secret, "TMWS_SECRET_KEY=do-not-copy\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(root.join(".env.example")).unwrap();
    symlink(&secret, root.join(".env.example")).unwrap();
    let result = run_in(&root, &["backup"]);
    assert_code(&result, 4);
    assert_says(&result, ".env.example");
    assert!(!root.join(BACKUP).exists(), "a backup was left");
}

#[test]
fn bad_flags_are_refused_before_anything_changes() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let cases: [(&[&str], i32, &str); 4] = [
        (&["--scenario", "migration", "--to", "deadbeef0000"], 2, "no revision file"),
        (
            &["--scenario", "git", "--from", "pre-phase4", "--paths", "../../etc/passwd"],
            2,
            "--paths",
        ),
        (&["--scenario", "database", "--label", "x.lock"], 2, "valid git tag name"),
        (&["--scenario", "database", "--label", "missing"], 2, "no backup"),
    ];
    for (args, code, message) in cases {
        crate::assert_refused(&root, &[&["rollback"], args, &["--yes"]].concat(), code, message);
    }
}

#[test]
fn a_backup_folder_that_is_a_link_out_of_the_root_is_refused() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let elsewhere = dir.path().join("elsewhere");
    fs::rename(root.join(BACKUP), &elsewhere).unwrap();
    symlink(&elsewhere, root.join(BACKUP)).unwrap();
    let before = digest(&root);
    let result = rollback(&root, "database", &[]);
    assert_code(&result, 2);
    assert_says(&result, "must be a real folder inside the root");
    assert_eq!(digest(&root), before);
}

/// The database, as a rollback must leave it if it stops before replacing it.
fn assert_untouched(root: &Path, failed_db: &str) {
    assert_eq!(sha256(&root.join("data/tmws.db")), failed_db, "the failed database moved");
}

#[test]
fn a_corrupt_backup_under_skip_verify_never_replaces_the_database() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    // A forged backup: a corrupt database whose hash the manifest and
    // SHA256SUMS were rewritten to match.
    let backup_db = root.join(BACKUP).join("database/tmws.db.backup");
    let old = sha256(&backup_db);
    fs::set_permissions(&backup_db, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&backup_db).unwrap();
    let page = 4096 * 3;
    for b in &mut bytes[page..page + 8] {
        *b ^= 0x5a;
    }
    fs::write(&backup_db, bytes).unwrap();
    let new = sha256(&backup_db);
    for name in ["BACKUP_MANIFEST.txt", "SHA256SUMS"] {
        let path = root.join(BACKUP).join(name);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let text = fs::read_to_string(&path).unwrap().replace(&old, &new);
        fs::write(&path, text).unwrap();
    }
    let failed_db = sha256(&root.join("data/tmws.db"));
    let result = rollback(&root, "database", &["--skip-verify"]);
    assert_code(&result, 1);
    assert_says(&result, "integrity_check");
    assert_says(&result, "--abandon");
    assert_untouched(&root, &failed_db);
    // The resumed run meets the same backup and refuses again; abandon closes it.
    let resumed = rollback(&root, "database", &["--resume", "--skip-verify"]);
    assert_code(&resumed, 1);
    assert_untouched(&root, &failed_db);
    let abandoned = run_in(&root, &["rollback", "--scenario", "database", "--abandon"]);
    assert_code(&abandoned, 0);
    abandoned.stdout_has(contains("abandoned"));
    assert!(!root.join(".tmws-rollback/journal.json").exists());
    // The tag still records the true manifest: verify-backup sees the forgery.
    let verify = run_in(&root, &["verify-backup"]);
    assert_code(&verify, 1);
    verify.stdout_has(contains("was rewritten after the backup"));
}

#[test]
fn a_full_disk_leaves_the_failed_database_in_place() {
    let dir = sandbox("phase4");
    let mount = dir.path().join("small");
    fs::create_dir_all(&mount).unwrap();
    let mounted =
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"]).arg(&mount).status();
    assert!(mounted.unwrap().success(), "mount a tmpfs (the tests run as root)");
    let root = mount.join("tmws");
    crate::copy_tree(&crate::root(&dir), &root);
    // Fill the disk, leaving less room than the restored database needs.
    let free = {
        let out = Command::new("df").args(["--output=avail", "-B1"]).arg(&mount).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse::<u64>().unwrap()
    };
    fs::write(mount.join("filler"), vec![0u8; (free - 300 * 1024) as usize]).unwrap();
    let failed_db = sha256(&root.join("data/tmws.db"));
    let result = rollback(&root, "database", &[]);
    let abandoned = run_in(&root, &["rollback", "--scenario", "database", "--abandon"]);
    let db_after = sha256(&root.join("data/tmws.db"));
    let unmounted = Command::new("umount").arg(&mount).status();
    assert_code(&result, 1);
    assert_says(&result, "the failed database is still in place");
    assert_eq!(db_after, failed_db, "the database was lost or replaced");
    assert_code(&abandoned, 0);
    assert!(unmounted.unwrap().success());
}

/// "Production": another instance's database beside the tree, at the
/// Phase 4 head, with its hash; the tree's own head migration half-applied.
fn another_instance(dir: &TempDir, root: &Path) -> (PathBuf, String) {
    let other = dir.path().join("production.db");
    fs::copy(root.join("data/tmws.db"), &other).unwrap();
    let before = sha256(&other);
    half_apply_phase4_head(root);
    (other, before)
}

#[test]
fn an_exported_database_url_for_another_instance_is_never_touched() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let (other, other_before) = another_instance(&dir, &root);
    let result = run(xtask()
        .args(["rollback", "--scenario", "migration", "--yes", "--root"])
        .arg(&root)
        .env("TMWS_DATABASE_URL", format!("sqlite:///{}", other.display())));
    assert_code(&result, 0);
    assert_eq!(sha256(&other), other_before, "the other database was changed");
    assert_eq!(revision(&root), PRE_PHASE4_HEAD, "the tree's own database was rolled back");
}

#[test]
fn an_env_py_that_ignores_the_url_variable_is_refused_before_any_change() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let (other, other_before) = another_instance(&dir, &root);
    let env_py = root.join("migrations/env.py");
    let text = fs::read_to_string(&env_py).unwrap().replace(
        "url = os.environ.get(\"TMWS_DATABASE_URL\")",
        &format!("url = \"sqlite:///{}\"", other.display()),
    );
    fs::write(&env_py, text).unwrap();
    let tree_db = sha256(&root.join("data/tmws.db"));
    let result = rollback(&root, "migration", &[]);
    assert_code(&result, 4);
    assert_says(&result, "alembic would act on another database");
    assert_eq!(sha256(&other), other_before, "the other database was changed");
    assert_eq!(sha256(&root.join("data/tmws.db")), tree_db, "the tree's database was changed");
}

/// A WAL with committed rows that were never checkpointed, and its index,
/// as a crashed service leaves them.
fn leave_a_live_wal(root: &Path) {
    let db = root.join("data/tmws.db");
    let scratch = root.join("data/scratch");
    fs::create_dir_all(&scratch).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA wal_autocheckpoint=0; INSERT INTO audit_log (event, detail) VALUES ('late', 'only in the WAL');").unwrap();
    for suffix in ["", "-wal", "-shm"] {
        fs::copy(root.join(format!("data/tmws.db{suffix}")), scratch.join(format!("x{suffix}")))
            .unwrap();
    }
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        fs::rename(scratch.join(format!("x{suffix}")), root.join(format!("data/tmws.db{suffix}")))
            .unwrap();
    }
    fs::remove_dir(&scratch).unwrap();
}

#[test]
fn the_failed_database_is_kept_byte_for_byte_as_found() {
    for scenario in ["database", "migration"] {
        let dir = sandbox("phase4");
        let root = root(&dir);
        leave_a_live_wal(&root);
        let found: Vec<(String, String)> = ["tmws.db", "tmws.db-wal", "tmws.db-shm"]
            .iter()
            .map(|n| (n.to_string(), sha256(&root.join("data").join(n))))
            .collect();
        let result = rollback(&root, scenario, &[]);
        assert_code(&result, 0);
        let bundle = only_bundle(&root);
        let facts = facts(&bundle);
        for (name, sha) in &found {
            assert_eq!(&sha256(&bundle.join("database").join(name)), sha, "{scenario}: {name}");
            let listed = facts["database_files"].as_array().unwrap().iter().any(|f| {
                f["path"] == format!("database/{name}").as_str() && f["sha256"] == sha.as_str()
            });
            assert!(listed, "{scenario}: failure.json lacks {name} as found: {facts}");
        }
    }
}

#[test]
fn a_stranger_sharing_the_service_group_and_a_stale_pid_file_are_left_alone() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let python = crate::sandbox::python_of_sandbox();
    // The service and a stranger in one process group (setsid gives them
    // their own); the stranger runs no service program.
    let script = format!(
        "cd {} && {} -c 'import time; time.sleep(60)' & echo $! > {}; sleep 60 & echo $! > {}; wait",
        root.display(),
        python.display(),
        dir.path().join("service.pid").display(),
        dir.path().join("stranger.pid").display()
    );
    let mut group = Command::new("setsid").args(["sh", "-c", &script]).spawn().unwrap();
    // A pid file naming a Python process outside the root.
    let mut decoy = Command::new(&python)
        .args(["-c", "import time; time.sleep(60)"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    fs::create_dir_all(root.join("run")).unwrap();
    fs::write(root.join("run/tmws.pid"), decoy.id().to_string()).unwrap();
    fs::write(root.join("tmws-rollback.toml"), "pid_file = \"run/tmws.pid\"\n").unwrap();
    // Both started, and the service runs Python (not the shell it forked).
    let pid_in = |name: &str| fs::read_to_string(dir.path().join(name)).ok()?.trim().parse().ok();
    crate::signals::wait_for("the service and the stranger", || {
        let service = pid_in("service.pid").map(|pid: i32| format!("/proc/{pid}/cmdline"));
        let running = service.and_then(|c| fs::read(c).ok());
        pid_in("stranger.pid").is_some()
            && running.is_some_and(|c| c.windows(10).any(|w| w == b"time.sleep"))
    });
    let stranger: i32 = pid_in("stranger.pid").unwrap();
    let result = rollback(&root, "database", &[]);
    let stranger_alive = Path::new(&format!("/proc/{stranger}")).exists();
    let decoy_alive = decoy.try_wait().unwrap().is_none();
    let _ = Command::new("kill").arg(stranger.to_string()).status();
    let _ = decoy.kill();
    let _ = group.kill();
    let _ = (decoy.wait(), group.wait());
    assert_code(&result, 0);
    result.stdout_has(contains("stopped pids"));
    assert!(stranger_alive, "a process that only shares the service's group was killed");
    assert!(decoy_alive, "a pid file naming a process outside the root got it killed");
}

#[test]
fn a_fifo_where_the_log_should_be_never_hangs_the_run() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    fs::remove_file(root.join("logs/tmws.log")).unwrap();
    let status = Command::new("mkfifo").arg(root.join("logs/tmws.log")).status().unwrap();
    assert!(status.success());
    let result = run(crate::with_test_env(&mut Command::new("timeout"))
        .arg("60")
        .arg(crate::xtask_path())
        .args(["rollback", "--scenario", "database", "--yes", "--root"])
        .arg(&root));
    assert_code(&result, 0);
    let facts = facts(&only_bundle(&root));
    assert!(facts["log"].to_string().contains("not a regular file"), "{facts}");
}

#[test]
fn a_backup_of_a_database_ahead_of_its_migrations_is_refused() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    let conn = rusqlite::Connection::open(root.join("data/tmws.db")).unwrap();
    conn.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'", []).unwrap();
    drop(conn);
    let before = digest(&root);
    let result = run_in(&root, &["backup"]);
    assert_code(&result, 4);
    assert_says(&result, "ffffffffffff");
    assert_eq!(digest(&root), before);
}

#[test]
fn a_dry_run_writes_nothing_not_even_the_state_folder() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    fs::remove_dir_all(root.join(".tmws-rollback")).unwrap();
    let before = digest(&root);
    let result = run_in(&root, &["rollback", "--scenario", "complete", "--dry-run"]);
    assert_code(&result, 0);
    assert!(!root.join(".tmws-rollback").exists(), "a dry run created the state folder");
    assert!(!root.join("forensics").exists());
    assert_eq!(digest(&root), before);
}

/// The pids of a process's children.
fn children(pid: u32) -> Vec<u32> {
    let text = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    text.split_whitespace().filter_map(|p| p.parse().ok()).collect()
}

#[test]
fn an_interrupted_downgrade_leaves_no_alembic_behind_and_says_resume() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let file =
        root.join("migrations/versions/20251122_1042-f1c7e3a9b5d4_create_learning_feedback.py");
    let text = fs::read_to_string(&file).unwrap().replace(
        "def downgrade() -> None:\n",
        "def downgrade() -> None:\n    import os, signal\n    os.kill(os.getpid(), signal.SIGSTOP)\n",
    );
    assert!(text.contains("SIGSTOP"), "the downgrade was made to stop half-way:\n{text}");
    fs::write(&file, text).unwrap();
    let mut xtask_run = xtask()
        .args(["rollback", "--scenario", "migration", "--yes", "--root"])
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The barrier: the helper stops itself inside the downgrade (state T).
    let mut alembic = None;
    for _ in 0..1200 {
        alembic = children(xtask_run.id()).into_iter().find(|&child| {
            let stat = fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
        });
        if alembic.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let alembic = alembic.expect("the downgrade reached its stop");
    let status = Command::new("kill").args(["-INT", &xtask_run.id().to_string()]).status();
    assert!(status.unwrap().success());
    let _ = xtask_run.wait();
    let mut gone = false;
    for _ in 0..100 {
        let state = fs::read_to_string(format!("/proc/{alembic}/stat")).unwrap_or_default();
        if state.is_empty() || state.contains(") Z ") {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(gone, "alembic (pid {alembic}) outlived the interrupted xtask");
    let next = rollback(&root, "migration", &[]);
    assert_code(&next, 5);
    assert_says(&next, "--resume");
    assert_says(&next, "--abandon");
}

#[test]
fn report_files_and_commits_are_checked_before_anything_runs() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let missing = dir.path().join("no/such/folder/report.xml");
    let missing = missing.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["verify-backup", "--junit", missing], "--junit"),
        (&["post-check", "--junit", missing], "--junit"),
        (&["post-check", "--checklist", missing], "--checklist"),
        (&["diagnose", "--expect-commit", "no-such-commit"], "--expect-commit"),
    ];
    for (args, message) in cases {
        crate::assert_refused(&root, args, 2, message);
    }
}

/// A tree handed to `nobody`, with a state folder (its key) and a scratch
/// folder of that user's, and a way to run the xtask on it as that user.
struct AsNobody {
    root: PathBuf,
    state: PathBuf,
    scratch: PathBuf,
}

impl AsNobody {
    fn hand_over(dir: &tempfile::TempDir) -> AsNobody {
        let root = root(dir);
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let (state, scratch) = (dir.path().join("nobody-state"), dir.path().join("nobody-tmp"));
        for folder in [&state, &scratch] {
            fs::create_dir(folder).unwrap();
        }
        for path in [&root, &state, &scratch] {
            let owned = Command::new("chown").args(["-R", "nobody"]).arg(path).status().unwrap();
            assert!(owned.success(), "chown nobody {}", path.display());
        }
        AsNobody { root, state, scratch }
    }

    fn run(&self, args: &[&str], fault: Option<&str>) -> crate::Run {
        let mut command = Command::new("setpriv");
        crate::with_test_env(&mut command)
            .args(["--reuid", "nobody", "--regid", "nogroup", "--clear-groups"])
            .arg(crate::xtask_path())
            .args(args)
            .arg("--root")
            .arg(&self.root)
            .env("XDG_STATE_HOME", &self.state)
            .env("HOME", &self.state)
            .env("TMPDIR", &self.scratch)
            .env("PYTHONDONTWRITEBYTECODE", "1");
        if let Some(fault) = fault {
            command.env("XTASK_ROLLBACK_FAULT", fault);
        }
        run(&mut command)
    }
}

/// kill -9 right after the restored database is renamed into place: it has
/// its final mode already, so its owner (not root), who ran the rollback,
/// can resume it.
#[test]
fn a_crash_right_after_the_restore_rename_leaves_a_writable_database() {
    use std::os::unix::fs::MetadataExt;
    let dir = sandbox("phase4");
    // The other tests' Python runs as root, hidden from this owner: a
    // service program no other test runs keeps them out of this one.
    let profile = root(&dir).join("tmws-rollback.toml");
    let text = fs::read_to_string(&profile).unwrap() + "service_programs = [\"tmws-service\"]\n";
    fs::write(&profile, text).unwrap();
    let owner = AsNobody::hand_over(&dir);
    let args = ["rollback", "--scenario", "database", "--yes", "--skip-verify"];
    owner.run(&args, Some("inside:restore-committed")).exits(-1);
    let mode = fs::metadata(owner.root.join("data/tmws.db")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o644, "the restored database is in place with the manifest's mode");
    assert_code(&owner.run(&[&args[..], &["--resume"]].concat(), None), 0);
}

/// A python that another user (here root) runs, whose working folder and
/// open files the tree's owner cannot read, may be the tree's service: the
/// owner's rollback stops before step 1, naming it, and changes nothing.
#[test]
fn a_service_the_tool_cannot_see_stops_the_rollback_before_step_1() {
    let dir = sandbox("phase4");
    let owner = AsNobody::hand_over(&dir);
    let python = crate::sandbox::python_of_sandbox();
    let mut hidden = Command::new(&python)
        .args(["-c", "import time; time.sleep(60)"])
        .current_dir("/")
        .spawn()
        .unwrap();
    let before = digest(&owner.root);
    let result = owner.run(&["rollback", "--scenario", "database", "--yes", "--skip-verify"], None);
    let _ = hidden.kill();
    let _ = hidden.wait();
    result.exits(4).stderr_has(
        contains(format!("pid {} of root (uid 0)", hidden.id()))
            .and(contains("hidden from this user")),
    );
    assert_eq!(digest(&owner.root), before, "the rollback changed the tree");
}

/// Bundle folders are unique per run, whatever the clock says: a folder of
/// the same name that another run made is never written into.
#[test]
fn another_runs_bundle_of_the_same_name_is_never_written_into() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    crate::crash_rollback(&root, "database", "after:1");
    let journal: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(root.join(".tmws-rollback/journal.json")).unwrap(),
    )
    .unwrap();
    // Another run, in the same second, made a folder of that very name.
    let theirs = root.join(journal["record"]["bundle"].as_str().unwrap());
    fs::create_dir_all(&theirs).unwrap();
    fs::write(theirs.join("failure.json"), "{\"theirs\": true}").unwrap();
    let before = digest(&theirs);
    let resumed = rollback(&root, "database", &["--resume"]);
    assert_code(&resumed, 0);
    assert_eq!(digest(&theirs), before, "another run's bundle was written into");
    let ours = fs::read_dir(root.join("forensics")).unwrap().count();
    assert_eq!(ours, 2, "the run made a bundle of its own beside it");
}

#[test]
fn backup_takes_the_rollback_lock_and_a_corrupt_git_is_not_no_repository() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    let state = root.join(".tmws-rollback");
    fs::create_dir_all(&state).unwrap();
    fs::write(state.join("lock"), "").unwrap();
    let mut holder = crate::hold_lock(&state.join("lock"));
    let busy = run_in(&root, &["backup"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_code(&busy, 3);
    assert!(!root.join(BACKUP).exists());
    // A repository whose HEAD git cannot read is an error, never "no
    // repository" (which would leave the backup untagged without a word).
    fs::write(root.join(".git/HEAD"), "garbage\n").unwrap();
    let broken = run_in(&root, &["backup"]);
    assert_code(&broken, 1);
    assert_says(&broken, "git cannot read HEAD");
    assert!(!root.join(BACKUP).exists());
}

/// verify-backup reads the backup through the file-access layer: a backup
/// file that is a link out of the backup is never followed (its target is
/// neither hashed nor opened by SQLite), and the check says why.
#[test]
fn verify_never_follows_a_backup_file_out_of_the_backup() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let (out, _) = outside(&dir);
    let config = root.join(BACKUP).join("config/.env.example");
    fs::copy(&config, out.join("env")).unwrap();
    fs::remove_file(&config).unwrap();
    symlink(out.join("env"), &config).unwrap();
    let before = digest(&out);
    let result = run_in(&root, &["verify-backup", "--format", "json"]);
    assert_code(&result, 1);
    let report: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    crate::schema::assert_valid("report", &report);
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(failed.contains(&"manifest.paths") && failed.contains(&"hashes"), "{failed:?}");
    assert_eq!(digest(&out), before);
}

/// A report file (`--junit`, `--checklist`) is written beside its name and
/// renamed over it: a link of one's own there is replaced, never written
/// through; a name another user planted in a shared folder is refused
/// before anything runs.
#[test]
fn a_report_file_never_goes_through_a_link() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    let shared = tempfile::TempDir::new().unwrap();
    fs::set_permissions(shared.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, "keep me").unwrap();
    // Another user's link in the shared folder: refused, nothing run.
    let planted = shared.path().join("verify.xml");
    symlink(&victim, &planted).unwrap();
    let owned = Command::new("chown").args(["-h", "nobody"]).arg(&planted).status().unwrap();
    assert!(owned.success());
    let refused = run_in(&root, &["verify-backup", "--junit", planted.to_str().unwrap()]);
    refused.exits(2).stderr_has(contains("belongs to nobody"));
    // One's own link: replaced by the report.
    let mine = shared.path().join("mine.xml");
    symlink(&victim, &mine).unwrap();
    run_in(&root, &["verify-backup", "--junit", mine.to_str().unwrap()]).exits(0);
    assert!(!fs::symlink_metadata(&mine).unwrap().file_type().is_symlink());
    assert!(fs::read_to_string(&mine).unwrap().contains("<testsuites>"));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
}

/// A manifest whose mode for a file asks for setuid, setgid and sticky
/// bits (6777) restores the file with its permission bits alone.
#[test]
fn a_restored_file_never_gets_setuid_setgid_or_sticky_bits() {
    use std::os::unix::fs::MetadataExt;
    let dir = sandbox("phase4");
    let root = root(&dir);
    let manifest = root.join("backups/pre-phase4/BACKUP_MANIFEST.txt");
    fs::set_permissions(&manifest, fs::Permissions::from_mode(0o644)).unwrap();
    let text = fs::read_to_string(&manifest).unwrap();
    let file = "src/services/learning_trust_integration.py";
    let forged: Vec<String> = text
        .lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split('\t').collect();
            if fields.len() == 7 && fields[6] == file {
                fields[4] = "6777";
            }
            fields.join("\t")
        })
        .collect();
    fs::write(&manifest, forged.join("\n") + "\n").unwrap();
    crate::breakage::break_import(&root, file);
    let args = ["rollback", "--scenario", "files", "--paths", file, "--yes", "--skip-verify"];
    run_in(&root, &args).exits(0);
    let mode = fs::metadata(root.join(file)).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o777, "the restored file's mode: {mode:o}");
}
