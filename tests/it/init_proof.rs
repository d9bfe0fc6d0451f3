//! init writes only a profile it proved on a scratch copy of the checkout:
//! a backup, its verification, a migration rollback's dry run and
//! post-check after the deploy.
use std::fs;

use predicates::{prelude::*, str::contains};

use crate::{digest, root, run_in, sandbox};

#[test]
fn init_writes_only_a_profile_it_proved_on_a_copy() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    fs::remove_file(root.join("tmws-rollback.toml")).unwrap();
    let main = root.join("src/main.py");
    let healthy = fs::read_to_string(&main).unwrap();
    fs::write(&main, healthy.replace("status = 200 if healthy else 503", "status = 500")).unwrap();
    let before = digest(&root);
    let refused = run_in(&root, &["init"]);
    refused.exits(1).stderr_has(
        contains("could not prove it: post-check failed on a scratch copy")
            .and(contains("server.health: HTTP 500"))
            .and(contains("nothing was written")),
    );
    assert_eq!(digest(&root), before, "init changed the checkout");
    fs::write(&main, healthy).unwrap();
    let written = run_in(&root, &["init"]);
    written.exits(0).stderr_has(contains("proven on a scratch copy of the checkout"));
    assert!(root.join("tmws-rollback.toml").is_file());
    assert!(!root.join("backups/pre-phase4/BACKUP_MANIFEST.txt.new").exists());
}
