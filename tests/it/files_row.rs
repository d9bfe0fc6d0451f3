//! `rollback --scenario files` without `--paths`: the critical files the
//! deploy's commits changed stay as the deploy left them, what changed
//! beside the commits is restored, and the plan says which is which;
//! `--all` restores both; post-check judges what the run restored.
use std::fs;

use predicates::{prelude::*, str::contains};

use crate::{assert_code, root, run_in, sandbox};

const BROKEN: &str = "src/services/learning_trust_integration.py";
const DEPLOYED: &str = "src/services/verification_service.py";

#[test]
fn files_restores_what_broke_and_keeps_what_the_deploy_committed() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let deployed = fs::read(root.join(DEPLOYED)).unwrap();
    let backed_up =
        fs::read(root.join("backups/pre-phase4/critical_files/learning_trust_integration.py"))
            .unwrap();
    fs::write(root.join(BROKEN), "raise RuntimeError('a hand edit on the server')\n").unwrap();
    let planned = run_in(&root, &["rollback", "--scenario", "files", "--dry-run"]);
    assert_code(&planned, 0);
    let plan = planned.stdout.lines().find(|l| l.contains("restore critical files")).unwrap();
    let (restore, keep) = plan.split_once("; keep as the deploy's commits left them").unwrap();
    assert!(restore.contains(BROKEN) && !restore.contains(DEPLOYED), "{plan}");
    assert!(keep.contains(DEPLOYED) && keep.contains("Phase 4"), "{plan}");
    let rolled = run_in(&root, &["rollback", "--scenario", "files", "--yes"]);
    assert_code(&rolled, 0);
    assert_eq!(fs::read(root.join(BROKEN)).unwrap(), backed_up);
    assert_eq!(fs::read(root.join(DEPLOYED)).unwrap(), deployed, "the deploy's change stays");
    let checked = run_in(&root, &["post-check", "--only", "files,database,server"]);
    assert_code(&checked, 0);
    checked.stdout_has(contains("kept as the deploy's commits left them"));
    // --all restores the deploy's changes too.
    let all = run_in(&root, &["rollback", "--scenario", "files", "--all", "--yes"]);
    assert_code(&all, 0);
    all.stdout_has(contains(format!("restored {DEPLOYED}")).or(contains(DEPLOYED)));
    assert_ne!(fs::read(root.join(DEPLOYED)).unwrap(), deployed);
}
