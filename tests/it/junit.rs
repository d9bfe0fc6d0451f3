//! JUnit XML for CI: a file on every exit, valid against a consumer's schema
//! (`tests/data/junit.xsd`, checked with xmllint), skipped checks that say
//! why, and selections that leave nothing to run refused.
use predicates::str::contains;
use std::{fs, path::Path, process::Command};

use crate::{assert_code, root, run_in, sandbox};

/// Validates a JUnit file with xmllint against the repository's XSD.
#[track_caller]
fn assert_valid_junit(path: &Path) {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/junit.xsd");
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(path)
        .output()
        .expect("xmllint (libxml2-utils) is installed by .ci/run");
    assert!(
        out.status.success(),
        "{} does not validate:\n{}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr),
        fs::read_to_string(path).unwrap_or_default()
    );
}

#[test]
fn every_junit_file_validates_and_says_why_a_check_was_skipped() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let verify = dir.path().join("verify.xml");
    let result = run_in(&root, &["verify-backup", "--junit", verify.to_str().unwrap()]);
    assert_code(&result, 0);
    assert_valid_junit(&verify);
    // A failing check, one skipped by name, one not applicable.
    fs::remove_dir_all(root.join("backups")).unwrap();
    let post = dir.path().join("post.xml");
    let result = run_in(
        &root,
        &[
            "post-check",
            "--only",
            "database,migrations.count,forensics",
            "--skip",
            "forensics",
            "--junit",
            post.to_str().unwrap(),
        ],
    );
    assert_code(&result, 1);
    assert_valid_junit(&post);
    let xml = fs::read_to_string(&post).unwrap();
    assert!(xml.contains("<skipped message=\"skipped by --skip\"/>"), "{xml}");
    assert!(xml.contains("<skipped message=\"not applicable: there is no backup"), "{xml}");
    assert!(xml.contains("<failure message="), "{xml}");
}

#[test]
fn a_junit_file_is_written_when_no_check_could_run() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let cases: [(&[&str], &str); 3] = [
        (&["post-check", "--only", "no-such-check"], "unknown check"),
        (&["post-check", "--only", "database.integrity", "--skip", "database"], "leaves no check"),
        (&["verify-backup", "--label", "missing"], "no backup folder"),
    ];
    for (args, why) in cases {
        let file = dir.path().join("report.xml");
        let _ = fs::remove_file(&file);
        let result = run_in(&root, &[args, &["--junit", file.to_str().unwrap()]].concat());
        assert_code(&result, 2);
        result.stderr_has(contains(why));
        assert_valid_junit(&file);
        let xml = fs::read_to_string(&file).unwrap();
        assert!(xml.contains("<error message=") && xml.contains(why), "{args:?}: {xml}");
        assert!(xml.contains("type=\"exit 2\""), "{xml}");
    }
}
