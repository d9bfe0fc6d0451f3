//! Real checkouts are messy: git steps on an imperfect repository behave
//! like git's own checkout, refuse before step 1 what they cannot finish, and
//! put the tree back when they fail half-way.
use std::{fs, path::Path};

use crate::{assert_code, breakage::*, digest, root, run, run_in, sandbox, xtask};

/// Deletes the loose object of a file that Phase 4 left unchanged, and the
/// file itself from the working tree: what an unpushed, locally deleted
/// binary leaves in a real repository (`git fsck` names it).
fn lose_an_unchanged_blob(root: &Path) -> &'static str {
    let path = "src/config.py";
    let id = git(root, &["rev-parse", &format!("HEAD:{path}")]).trim().to_string();
    assert_eq!(id, git(root, &["rev-parse", &format!("pre-phase4:{path}")]).trim(), "unchanged");
    fs::remove_file(root.join(".git/objects").join(&id[..2]).join(&id[2..])).unwrap();
    fs::remove_file(root.join(path)).unwrap();
    path
}

fn head(root: &Path) -> String {
    git(root, &["rev-parse", "HEAD"]).trim().to_string()
}

#[test]
fn a_missing_object_of_an_unchanged_deleted_file_does_not_stop_the_checkout() {
    for (scenario, extra) in [("git", &["--force"][..]), ("complete", &[][..])] {
        let dir = sandbox("phase4");
        let root = root(&dir);
        let lost = lose_an_unchanged_blob(&root);
        let mut args = vec!["rollback", "--scenario", scenario, "--yes"];
        args.extend_from_slice(extra);
        let result = run_in(&root, &args);
        assert_code(&result, 0);
        assert_eq!(head(&root), git(&root, &["rev-parse", "pre-phase4^{commit}"]).trim());
        assert!(!root.join(lost).exists(), "{scenario}: the local deletion was not kept");
        let status = git(&root, &["status", "--porcelain"]);
        assert!(status.contains(&format!(" D {lost}")), "{scenario}: {status}");
    }
}

#[test]
fn a_local_edit_the_checkout_would_overwrite_is_refused_before_step_one() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    lose_an_unchanged_blob(&root);
    let edited = root.join("src/services/verification_service.py");
    let text = fs::read_to_string(&edited).unwrap() + "# a local fix\n";
    fs::write(&edited, text).unwrap();
    let before = digest(&root);
    let result = run_in(&root, &["rollback", "--scenario", "git", "--force", "--yes"]);
    assert_code(&result, 4);
    assert!(
        result.stderr.contains("local changes to src/services/verification_service.py"),
        "{result:?}"
    );
    assert_eq!(digest(&root), before, "something changed");
    assert!(!root.join(".tmws-rollback/journal.json").exists(), "a journal was started");
}

#[test]
fn an_object_the_checkout_needs_is_confirmed_present_before_step_one() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let path = "src/services/verification_service.py";
    let id = git(&root, &["rev-parse", &format!("pre-phase4:{path}")]).trim().to_string();
    fs::remove_file(root.join(".git/objects").join(&id[..2]).join(&id[2..])).unwrap();
    let before = digest(&root);
    let result = run_in(&root, &["rollback", "--scenario", "complete", "--yes"]);
    assert_code(&result, 4);
    assert!(result.stderr.contains("lacks objects") && result.stderr.contains(path), "{result:?}");
    assert_eq!(digest(&root), before);
}

#[test]
fn a_checkout_that_fails_half_way_puts_the_tree_and_head_back() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    lose_an_unchanged_blob(&root);
    let (head_before, status_before) = (head(&root), git(&root, &["status", "--porcelain"]));
    let files_before = digest(&root.join("src"));
    let migrations_before = digest(&root.join("migrations"));
    let result = run(xtask()
        .args(["rollback", "--scenario", "git", "--force", "--yes", "--root"])
        .arg(&root)
        .env("XTASK_GIT_FAULT", "checkout"));
    assert_code(&result, 1);
    assert!(result.stderr.contains("were put back as they were"), "{result:?}");
    assert_eq!(head(&root), head_before);
    assert_eq!(git(&root, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(), "main");
    assert_eq!(git(&root, &["status", "--porcelain"]), status_before);
    assert_eq!(digest(&root.join("src")), files_before);
    assert_eq!(digest(&root.join("migrations")), migrations_before);
    assert!(git(&root, &["branch", "--list", "rollback-pre-phase4"]).trim().is_empty());
}

#[test]
fn a_critical_file_absent_at_backup_time_is_moved_into_the_bundle() {
    for scenario in ["files", "complete"] {
        let dir = sandbox("pre-phase4");
        let root = root(&dir);
        let added = "src/services/orchestration.py";
        // The profile (untracked: it must not make git status unclean)
        // lists a file the deploy adds.
        let profile = format!(
            "critical_files = [\"src/domain/value_objects/tool_category.py\", \"src/services/verification_service.py\", \"{added}\"]\n"
        );
        fs::write(root.join("tmws-rollback.toml"), profile).unwrap();
        let backup = run_in(&root, &["backup"]);
        assert_code(&backup, 0);
        assert!(
            backup.stdout.contains(&format!("absent, recorded as such: {added}")),
            "{backup:?}"
        );
        let manifest =
            fs::read_to_string(root.join("backups/pre-phase4/BACKUP_MANIFEST.txt")).unwrap();
        assert!(manifest.contains("format: tmws-backup/2"), "{manifest}");
        assert!(manifest.contains(&format!("absent:\tcritical\t{added}")), "{manifest}");
        assert_code(&run_in(&root, &["verify-backup"]), 0);
        fs::write(root.join(added), "ORCHESTRATION = True\n").unwrap();
        let result = run_in(&root, &["rollback", "--scenario", scenario, "--yes"]);
        assert_code(&result, 0);
        assert!(!root.join(added).exists(), "{scenario}: the added file is still there");
        let bundle = only_bundle(&root);
        assert!(bundle.join("added-since").join(added).is_file(), "{scenario}: not in the bundle");
        let check = run_in(&root, &["post-check", "--only", "files", "--only", "git"]);
        assert_code(&check, 0);
        assert!(check.stdout.contains("1 absent, as at backup time"), "{check:?}");
    }
}

#[test]
fn diagnose_says_what_changed_since_the_backup_and_where_it_was_committed() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let result = run_in(&root, &["diagnose"]);
    assert_code(&result, 0);
    let deployed = git(&root, &["rev-parse", "HEAD"]);
    let line = result
        .stdout
        .lines()
        .find(|l| l.contains("src/services/verification_service.py: changed"))
        .unwrap_or_else(|| panic!("{result:?}"));
    assert!(line.contains(&format!("committed in {}", &deployed[..12])), "{line}");
    assert!(
        result.stdout.contains("create_learning_feedback.py: added since the backup"),
        "{result:?}"
    );
}
