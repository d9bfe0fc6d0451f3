//! A backup is what its name says: a label cannot smuggle syntax into a
//! path, a git tag or restic's tag list; a manifest must name its own
//! folder; a backup taken without a tag and renamed over the pre-deploy one
//! still meets the tag that one recorded; and nothing of a backup is read
//! through a link out of it or from a FIFO.
use std::{fs, os::unix::fs::symlink, path::Path, process::Command};

use predicates::{prelude::*, str::contains};

use crate::{assert_refused, digest, root, run_in, sandbox};

const BACKUP: &str = "backups/pre-phase4";

#[test]
fn a_label_that_is_not_a_plain_name_is_refused_by_every_command() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    let long = "x".repeat(101);
    for label in ["evil,label=pre-phase4", "tab\there", ".hidden", "a..b", long.as_str()] {
        for command in [
            &["backup", "--label", label][..],
            &["verify-backup", "--label", label],
            &["rollback", "--scenario", "database", "--dry-run", "--label", label],
            &["post-check", "--label", label],
            &["diagnose", "--label", label],
            &["push", "--repo", "/nowhere", "--label", label],
            &["prune", "--keep", "1", "--force", label],
        ] {
            assert_refused(&root, command, 2, "invalid label");
        }
    }
}

/// Rewrites the manifest's label line and SHA256SUMS to match, as a forger
/// who knows the format would.
fn relabel(backup: &Path, from: &str, to: &str) {
    let manifest = backup.join("BACKUP_MANIFEST.txt");
    let sums = backup.join("SHA256SUMS");
    for file in [&manifest, &sums] {
        let mut perms = fs::metadata(file).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
        fs::set_permissions(file, perms).unwrap();
    }
    let text = fs::read_to_string(&manifest).unwrap();
    fs::write(&manifest, text.replace(&format!("label: {from}\n"), &format!("label: {to}\n")))
        .unwrap();
    let sha = crate::breakage::sha256(&manifest);
    let sums_text = fs::read_to_string(&sums).unwrap();
    let rewritten: Vec<String> = sums_text
        .lines()
        .map(|l| match l.split_once("  ") {
            Some((_, "BACKUP_MANIFEST.txt")) => format!("{sha}  BACKUP_MANIFEST.txt"),
            _ => l.to_string(),
        })
        .collect();
    fs::write(&sums, rewritten.join("\n") + "\n").unwrap();
}

#[test]
fn a_backup_renamed_to_another_label_is_not_that_backup() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    assert_eq!(run_in(&root, &["backup", "--label", "nightly", "--no-tag"]).code, 0);
    fs::rename(root.join(BACKUP), root.join("backups/kept-aside")).unwrap();
    fs::rename(root.join("backups/nightly"), root.join(BACKUP)).unwrap();
    let verify = run_in(&root, &["verify-backup"]);
    verify.exits(1).stdout_has(contains("the manifest of backup nightly, not of pre-phase4"));
    assert_refused(&root, &["rollback", "--scenario", "complete", "--yes"], 4, "nightly");
}

#[test]
fn a_forged_backup_without_a_tag_meets_the_tag_of_the_backup_it_replaces() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    // The broken state, backed up without a tag, renamed over the pre-deploy
    // backup, its manifest and SHA256SUMS rewritten to match.
    assert_eq!(run_in(&root, &["backup", "--label", "forged", "--no-tag"]).code, 0);
    fs::rename(root.join(BACKUP), root.join("backups/kept-aside")).unwrap();
    fs::rename(root.join("backups/forged"), root.join(BACKUP)).unwrap();
    relabel(&root.join(BACKUP), "forged", "pre-phase4");
    let verify = run_in(&root, &["verify-backup"]);
    verify.exits(1).stdout_has(contains("git.tag").and(contains("tag pre-phase4 at")));
    assert_refused(
        &root,
        &["rollback", "--scenario", "complete", "--yes"],
        4,
        "failed verification",
    );
}

#[test]
fn nothing_of_a_backup_is_read_through_a_link_out_of_it() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    let secret = dir.path().join("secret");
    fs::write(&secret, "root:$6$not-for-your-eyes\n").unwrap();
    let sums = root.join(BACKUP).join("SHA256SUMS");
    fs::remove_file(&sums).unwrap();
    symlink(&secret, &sums).unwrap();
    let verify = run_in(&root, &["verify-backup"]);
    verify.exits(1).stdout_has(contains("sums").and(contains("not-for-your-eyes").not()));
    let manifest = root.join(BACKUP).join("BACKUP_MANIFEST.txt");
    fs::remove_file(&manifest).unwrap();
    symlink(&secret, &manifest).unwrap();
    for args in [&["verify-backup"][..], &["list"]] {
        let result = run_in(&root, args);
        assert!(!result.stdout.contains("not-for-your-eyes"), "{args:?} echoed the secret");
        assert!(!result.stderr.contains("not-for-your-eyes"), "{args:?} echoed the secret");
    }
    assert_refused(&root, &["rollback", "--scenario", "database", "--dry-run"], 4, "manifest");
}

#[test]
fn a_fifo_where_the_manifest_should_be_never_hangs_a_command() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    let manifest = root.join(BACKUP).join("BACKUP_MANIFEST.txt");
    let kept = fs::read(&manifest).unwrap();
    fs::remove_file(&manifest).unwrap();
    // The tree's digest reads every file: it is taken without the FIFO.
    let before = digest(&root);
    assert!(Command::new("mkfifo").arg(&manifest).status().unwrap().success());
    // Each would wait forever for a writer if it opened the FIFO.
    for args in [
        &["verify-backup"][..],
        &["diagnose"],
        &["forensics", "--dry-run"],
        &["rollback", "--scenario", "database", "--dry-run"],
        &["list"],
    ] {
        let result = crate::run(
            crate::with_test_env(&mut Command::new("timeout"))
                .arg("60")
                .arg(crate::xtask_path())
                .args(args)
                .arg("--root")
                .arg(&root)
                .env_remove("TMWS_ROOT"),
        );
        assert_ne!(result.code, 124, "{args:?} hung on the FIFO");
    }
    fs::remove_file(&manifest).unwrap();
    assert_eq!(digest(&root), before, "a command changed the tree");
    fs::write(&manifest, kept).unwrap();
}

#[test]
fn a_fifo_anywhere_the_tool_reads_never_hangs_it() {
    let cases: [(&str, &[&[&str]]); 4] = [
        ("data/tmws.db", &[&["diagnose"], &["post-check", "--only", "database"]]),
        // list only reports the lock (it never opens it): it may pass.
        (".tmws-rollback/lock", &[&["backup", "--label", "fifo-lock"]]),
        ("tmws-rollback.toml", &[&["list"], &["diagnose"], &["backup", "--label", "fifo-profile"]]),
        (".git/info/exclude", &[&["backup", "--label", "fifo-exclude"]]),
    ];
    for (path, commands) in cases {
        let dir = sandbox("backed-up");
        let root = root(&dir);
        let fifo = root.join(path);
        fs::create_dir_all(fifo.parent().unwrap()).unwrap();
        if fifo.exists() {
            fs::remove_file(&fifo).unwrap();
        }
        assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        for args in commands {
            let result = crate::run(
                Command::new("timeout")
                    .arg("60")
                    .arg(crate::xtask_path())
                    .args(*args)
                    .arg("--root")
                    .arg(&root)
                    .env_remove("TMWS_ROOT"),
            );
            assert_ne!(result.code, 124, "{args:?} hung on a FIFO at {path}");
            assert_ne!(result.code, 0, "{args:?} passed with a FIFO at {path}: {result:?}");
        }
        let list = crate::run(
            crate::with_test_env(&mut Command::new("timeout"))
                .arg("60")
                .arg(crate::xtask_path())
                .arg("list")
                .arg("--root")
                .arg(&root),
        );
        assert_ne!(list.code, 124, "list hung on a FIFO at {path}");
    }
}

/// The tool's own records are sealed with a key of this user's kept outside
/// every tree: a journal written by hand (one step: a downgrade to base) is
/// refused (exit 5, naming it) and changes nothing, and so is one the tool
/// sealed for another tree.
#[test]
fn a_journal_the_tool_did_not_write_for_this_tree_is_refused() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let forged = serde_json::json!({
        "run": "forged",
        "scenario": "migration",
        "label": "pre-phase4",
        "started": "2026-01-01T00:00:00Z",
        "bundle": "forensics/none",
        "steps": [{"step": "migrate-copy", "target": "base", "folder": "data/.x"}],
        "done": [false],
        "current": null,
    });
    fs::create_dir_all(root.join(".tmws-rollback")).unwrap();
    let journal = root.join(".tmws-rollback/journal.json");
    fs::write(&journal, forged.to_string()).unwrap();
    let args = ["rollback", "--scenario", "migration", "--resume", "--yes"];
    assert_refused(&root, &args, 5, "journal.json cannot be read");
    assert_refused(&root, &args, 5, "it is not a sealed rollback journal");
    // A journal the tool sealed, for another tree.
    let other = sandbox("phase4");
    let other_root = crate::root(&other);
    crate::crash_rollback(&other_root, "database", "after:1");
    fs::copy(other_root.join(".tmws-rollback/journal.json"), &journal).unwrap();
    let resumed = ["rollback", "--scenario", "database", "--resume", "--yes"];
    assert_refused(&root, &resumed, 5, "its seal does not match");
    // The way on that it names works: the journal goes, unread, into forensics/.
    let abandoned = run_in(&root, &["rollback", "--abandon"]);
    abandoned.exits(0).stdout_has(contains("could not be read"));
    assert!(!journal.exists());
}

/// A verification stamp written by hand (the record of a real one, made to
/// match a corrupted backup database) is no stamp: the rollback verifies
/// the backup, finds it corrupt, and changes nothing.
#[test]
fn a_forged_verification_stamp_is_ignored_and_the_backup_checked() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    run_in(&root, &["verify-backup"]).exits(0);
    let state = root.join(".tmws-rollback");
    let stamp = fs::read_dir(&state)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("verified-"))
        .expect("verify-backup left its stamp")
        .path();
    let sealed: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&stamp).unwrap()).unwrap();
    // The backup's database corrupted, its hash rewritten in the manifest's
    // sums, and the stamp's record kept as it was, its seal gone.
    let db = root.join(BACKUP).join("database/tmws.db.backup");
    fs::set_permissions(&db, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&db).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 4096].fill(0xA5);
    fs::write(&db, &bytes).unwrap();
    // The record made to match the corrupted file's identity, unsealed.
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(&db).unwrap();
    let ns = |secs: i64, nsec: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
    let mut record = sealed["record"].clone();
    for entry in record["files"].as_array_mut().unwrap() {
        if entry["path"] == "database/tmws.db.backup" {
            entry["identity"] = serde_json::json!({
                "size": meta.size(), "inode": meta.ino(), "device": meta.dev(),
                "mtime_ns": ns(meta.mtime(), meta.mtime_nsec()),
                "ctime_ns": ns(meta.ctime(), meta.ctime_nsec()),
            });
        }
    }
    fs::write(&stamp, record.to_string()).unwrap();
    let result = run_in(&root, &["rollback", "--scenario", "database", "--yes"]);
    result.exits(4).stderr_has(contains("failed verification"));
}
