//! `xtask drill`: the README's main command rehearses every row and passes.
use crate::{assert_code, run, snapshot, xtask};
use predicates::str::contains;

#[test]
fn drill_all_passes_and_leaves_nothing_behind() {
    let keep = tempfile::TempDir::new().unwrap();
    // README's Quick start command, as written.
    let result = run(xtask().arg("drill"));
    assert_code(&result, 0);
    let table = result
        .stdout
        .lines()
        .map(|line| {
            // Times vary; the table's shape and verdicts do not.
            line.split_whitespace()
                .map(|w| {
                    if w.ends_with('s') && w[..w.len() - 1].parse::<f64>().is_ok() {
                        "[T]"
                    } else {
                        w
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n");
    snapshot!(keep.path(), table);
    result.stderr_has(contains("drill database: passed"));
    // The drill names its working folder on stderr; it is gone afterwards.
    let work = result
        .stderr
        .lines()
        .find_map(|l| l.split(" backup in ").nth(1))
        .expect("the drill names its working folder");
    assert!(work.contains("tmws-drill-"), "{work}");
    assert!(!std::path::Path::new(work).exists(), "the drill left {work}");
}

#[test]
fn keep_leaves_the_sandboxes() {
    let keep = tempfile::TempDir::new().unwrap();
    let result = run(xtask()
        .args(["drill", "--scenario", "files", "--format", "json", "--keep"])
        .arg(keep.path()));
    assert_code(&result, 0);
    let json: serde_json::Value =
        serde_json::from_str(&result.stdout).expect("one JSON document on stdout");
    crate::schema::assert_valid("drill", &json);
    assert_eq!((json["schema"].clone(), json["result"].clone()), (2.into(), "pass".into()));
    assert_eq!(json["scenarios"][0]["diagnosis"], "files");
    assert!(keep.path().join("files/forensics").is_dir());
    assert!(keep.path().join("template/backups/pre-phase4").is_dir());
}
