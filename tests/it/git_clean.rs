//! `git.clean`, judged alike by post-check and diagnose: the tree's own
//! data (the profile's database and its sidecars, the profile, the files
//! it names), untracked but not ignored, is not dirt; a change the backup
//! recorded as uncommitted is explained; anything else fails both, named
//! the same way.
use std::{fs, path::Path};

use crate::{Run, breakage::git, digest, root, run_in, sandbox, sandbox_variant};

/// The `git.clean` check of a JSON report, as (status, detail).
fn git_clean(run: &Run) -> (String, String) {
    let report: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"));
    let check = report["checks"].as_array().unwrap().iter().find(|c| c["id"] == "git.clean");
    let check = check.unwrap_or_else(|| panic!("no git.clean: {run:?}"));
    (check["status"].as_str().unwrap().into(), check["detail"].as_str().unwrap().into())
}

/// diagnose's and post-check's verdicts, which must be one verdict; the
/// tree is left as it was.
fn both_judge(root: &Path) -> (Run, (String, String)) {
    let before = digest(root);
    let diagnosed = run_in(root, &["diagnose", "--format", "json"]);
    let checked = run_in(root, &["post-check", "--only", "git.clean", "--format", "json"]);
    assert_eq!(digest(root), before, "a check changed the tree");
    let verdict = git_clean(&diagnosed);
    assert_eq!(verdict, git_clean(&checked), "diagnose and post-check judge git.clean apart");
    (diagnosed, verdict)
}

/// A healthy deploy whose database, log and settings file (`.env`, which
/// init names as config) are untracked, not ignored, is healthy: diagnose
/// recommends nothing, and git.clean names them as the tree's own data. A
/// stray file fails it, alone.
#[test]
fn the_trees_own_data_is_not_dirt() {
    let dir = sandbox_variant("phase4", "untracked-data");
    let root = root(&dir);
    let status = git(&root, &["status", "--porcelain", "--untracked-files=all"]);
    for path in ["data/tmws.db", "logs/tmws.log", ".env"] {
        assert!(status.contains(&format!("?? {path}\n")), "{path} untracked in {status}");
    }
    let profile = fs::read_to_string(root.join("tmws-rollback.toml")).unwrap();
    assert!(profile.contains("\".env\""), "init names the settings: {profile}");

    let (diagnosed, (status, detail)) = both_judge(&root);
    diagnosed.exits(0);
    let diagnosis: serde_json::Value = serde_json::from_str(&diagnosed.stdout).unwrap();
    assert_eq!(diagnosis["recommendation"], "healthy", "{diagnosed:?}");
    assert_eq!(status, "pass", "{detail}");
    for path in ["data/tmws.db", "logs/tmws.log", ".env"] {
        assert!(detail.contains(path), "{path} not named in {detail:?}");
    }
    assert!(detail.starts_with("clean but for the tree's own data"), "{detail}");

    fs::write(root.join("notes.txt"), "a file nobody named\n").unwrap();
    let (diagnosed, (status, detail)) = both_judge(&root);
    diagnosed.exits(1);
    assert_eq!(status, "fail");
    assert!(detail.starts_with("1 changed or untracked: notes.txt; besides"), "{detail}");
}

/// A change to a tracked file that the backup recorded as uncommitted is
/// explained in both commands (post-check listed it as dirt, diagnose
/// excused it); a change the backup did not record fails both.
#[test]
fn a_change_the_backup_recorded_is_explained_by_both() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    fs::write(root.join("README.md"), "# TMWS\n\nedited on the server\n").unwrap();
    run_in(&root, &["backup"]).exits(0);
    let (_, (status, detail)) = both_judge(&root);
    assert_eq!(status, "pass", "{detail}");
    assert!(detail.contains("the changes the backup recorded as uncommitted: README.md"));

    fs::write(root.join("pyproject.toml"), "# edited after the backup\n").unwrap();
    let (_, (status, detail)) = both_judge(&root);
    assert_eq!(status, "fail", "{detail}");
    assert!(detail.starts_with("1 changed or untracked: pyproject.toml; besides"), "{detail}");
    assert!(detail.contains("recorded as uncommitted: README.md"), "{detail}");
}
