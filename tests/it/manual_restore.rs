//! `docs/backup-format.md` says how to restore a backup by hand with only
//! sha256sum, sqlite3, cp and git. This runs that procedure as the document
//! gives it, on a broken Phase 4 sandbox, and checks the result the way a
//! rollback's is checked: so the document cannot drift from the format.
use std::{fs, path::Path, process::Command};

use crate::{assert_code, breakage::*, root, run_in, sandbox};

/// The `sh` block of the "Restoring by hand" section.
fn procedure() -> String {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/backup-format.md");
    let text = fs::read_to_string(doc).unwrap();
    let section = &text[text.find("## Restoring by hand").expect("the section")..];
    let start = section.find("```sh\n").expect("an sh block") + "```sh\n".len();
    let end = section[start..].find("```").unwrap() + start;
    section[start..end].to_string()
}

#[test]
fn the_documented_manual_restore_brings_the_tree_back() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    corrupt_database(&root);
    break_import(&root, "src/services/learning_trust_integration.py");
    let out = Command::new("bash").arg("-c").arg(procedure()).current_dir(&root).output().unwrap();
    assert!(
        out.status.success(),
        "the documented procedure failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(root.join("forensics/manual/tmws.db").is_file(), "the failed database is kept");
    let check = run_in(&root, &["post-check", "--skip", "forensics"]);
    assert_code(&check, 0);
}

/// Every test that docs/runbook.md names exists: the map cannot point at
/// tests that were renamed or removed.
#[test]
fn the_runbook_map_names_only_tests_that_exist() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/it");
    let doc = fs::read_to_string(here.join("../../docs/runbook.md")).unwrap();
    let sources: String = fs::read_dir(&here)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| fs::read_to_string(e.path()).unwrap())
        .collect();
    let named: Vec<&str> = doc
        .split('`')
        .filter(|s| s.contains("::") && !s.ends_with('*'))
        .filter_map(|s| s.rsplit("::").next())
        .collect();
    assert!(named.len() > 20, "{named:?}");
    for test in named {
        assert!(
            sources.contains(&format!("fn {test}()")),
            "docs/runbook.md names {test}, which no test defines"
        );
    }
}
