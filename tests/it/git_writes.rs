//! The tool, not libgit2, writes the working tree of a git step: a tracked
//! file hard-linked to a file outside the tree is replaced, never written
//! through, and a tracked folder that is a link out of the root is refused
//! before step 1.
use predicates::str::contains;
use std::{fs, os::unix::fs::MetadataExt, path::Path};

use crate::{assert_code, breakage::git, digest, root, run_in, sandbox};

const CHANGED: &str = "src/services/verification_service.py";

/// Every git step that writes files, as a user would ask for it.
const MOVES: [&[&str]; 4] = [
    &["--scenario", "complete"],
    &["--scenario", "git", "--force"],
    &["--scenario", "git", "--commit", "pre-phase4", "--hard", "--force"],
    &["--scenario", "git", "--from", "pre-phase4", "--paths", CHANGED],
];

fn rollback(root: &Path, args: &[&str]) -> crate::Run {
    let mut all = vec!["rollback", "--yes"];
    all.extend_from_slice(args);
    run_in(root, &all)
}

#[test]
fn a_tracked_file_hard_linked_outside_is_replaced_not_written_through() {
    for args in MOVES {
        let dir = sandbox("phase4");
        let root = root(&dir);
        let outside = dir.path().join("outside.py");
        fs::rename(root.join(CHANGED), &outside).unwrap();
        fs::hard_link(&outside, root.join(CHANGED)).unwrap();
        let before = fs::read(&outside).unwrap();
        let result = rollback(&root, args);
        assert_code(&result, 0);
        assert_eq!(fs::read(&outside).unwrap(), before, "{args:?} wrote through the hard link");
        let restored = git(&root, &["show", &format!("pre-phase4:{CHANGED}")]);
        assert_eq!(fs::read_to_string(root.join(CHANGED)).unwrap(), restored, "{args:?}");
        assert_eq!(fs::metadata(root.join(CHANGED)).unwrap().nlink(), 1, "{args:?}");
        let unstaged = git(&root, &["diff", "--name-only"]);
        assert!(!unstaged.contains(CHANGED), "{args:?}: the index does not match: {unstaged}");
    }
}

#[test]
fn a_tracked_folder_that_is_a_link_out_of_the_root_is_refused_before_step_one() {
    for args in MOVES {
        let dir = sandbox("phase4");
        let root = root(&dir);
        let outside = dir.path().join("services-elsewhere");
        fs::rename(root.join("src/services"), &outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("src/services")).unwrap();
        let (tree_before, outside_before) = (digest(&root), digest(&outside));
        let result = rollback(&root, args);
        assert_code(&result, 4);
        result.stderr_has(contains("src/services is a symbolic link or not a folder"));
        assert_eq!(digest(&outside), outside_before, "{args:?} wrote outside the root");
        assert_eq!(digest(&root), tree_before, "{args:?} changed the tree");
        assert!(!root.join(".tmws-rollback/journal.json").exists(), "{args:?}: a step ran");
    }
}

#[test]
fn a_hard_reset_removes_staged_files_and_leaves_the_index_at_the_target() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    fs::write(root.join("src/staged_note.py"), "NOTE = 1\n").unwrap();
    git(&root, &["add", "src/staged_note.py"]);
    let result = rollback(&root, MOVES[2]);
    assert_code(&result, 0);
    assert!(!root.join("src/staged_note.py").exists(), "git reset --hard removes staged files");
    let status = git(&root, &["status", "--porcelain", "--untracked-files=no"]);
    assert_eq!(status.trim(), "", "the index and files are the target's");
    assert_eq!(
        git(&root, &["rev-parse", "HEAD"]),
        git(&root, &["rev-parse", "pre-phase4^{commit}"]),
        "the branch moved"
    );
}
