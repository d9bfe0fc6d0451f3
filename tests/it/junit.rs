//! JUnit XML for CI: a file on every exit (a usage error xflags finds, a
//! signal), valid against a consumer's schema
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

/// The one testcase of a run that stopped before its report: its `<error>`
/// (message and body) and its exit code.
#[track_caller]
fn assert_stopped_junit(path: &Path, command: &str, code: i32, why: &str) {
    assert_valid_junit(path);
    let xml = fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let cases: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 1, "{xml}");
    assert_eq!(cases[0].attribute("name"), Some(format!("{command}: no check ran").as_str()));
    let error = cases[0].children().find(|n| n.has_tag_name("error")).expect("an <error>");
    assert_eq!(error.attribute("type"), Some(format!("exit {code}").as_str()), "{xml}");
    assert!(error.attribute("message").unwrap().contains(why), "{xml}");
}

/// A flag xflags does not know stops the run before its flags are parsed;
/// the JUnit file is written all the same (from the arguments as typed,
/// `--junit=FILE` too), the exit code and the JSON error document are as
/// before, and the tree is untouched.
#[test]
fn a_usage_error_before_the_flags_parse_still_writes_the_junit_file() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    for command in ["post-check", "verify-backup"] {
        for spelled in ["--junit", "--junit="] {
            let file = dir.path().join(format!("{command}.xml"));
            let _ = fs::remove_file(&file);
            let junit: Vec<String> = match spelled {
                "--junit" => vec![spelled.into(), file.display().to_string()],
                _ => vec![format!("{spelled}{}", file.display())],
            };
            let mut args = vec![command, "--bogus", "--format", "json"];
            args.extend(junit.iter().map(String::as_str));
            let before = crate::digest(&root);
            let result = run_in(&root, &args);
            assert_code(&result, 2);
            result.stderr_has(contains("unexpected flag: `--bogus`"));
            let json: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
            assert_eq!((json["exit"].as_i64(), json["command"].as_str()), (Some(2), Some(command)));
            assert_stopped_junit(&file, command, 2, "unexpected flag: `--bogus`");
            assert_eq!(crate::digest(&root), before, "{args:?} changed the tree");
        }
    }
}

/// The file is not written where it is the problem (its folder does not
/// exist: refused as before, and said even behind another usage error), nor
/// for a command that takes no `--junit`; another report file that cannot
/// be written (`--checklist`) is the JUnit file's error.
#[test]
fn the_junit_file_is_not_written_where_it_is_the_problem() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let missing = dir.path().join("no-such-folder/report.xml");
    let missing = missing.to_str().unwrap();
    for args in
        [&["post-check", "--junit", missing][..], &["post-check", "--bogus", "--junit", missing]]
    {
        let result = run_in(&root, args);
        assert_code(&result, 2);
        result.stderr_has(contains(format!("--junit {missing}: its folder")));
    }
    assert!(!dir.path().join("no-such-folder").exists());
    let beside = dir.path().join("backup.xml");
    let result = run_in(&root, &["backup", "--dry-run", "--junit", beside.to_str().unwrap()]);
    assert_code(&result, 2);
    result.stderr_has(contains("unexpected flag: `--junit`"));
    assert!(!beside.exists(), "backup takes no --junit: no file");
    let file = dir.path().join("post.xml");
    let checklist = dir.path().join("no-such-folder/CHECKLIST.md");
    let args = ["post-check", "--junit", file.to_str().unwrap(), "--checklist"];
    let result = run_in(&root, &[&args[..], &[checklist.to_str().unwrap()]].concat());
    assert_code(&result, 2);
    assert_stopped_junit(&file, "post-check", 2, "--checklist");
}

/// A termination signal (a cancelled CI job) ends the run with 128 + its
/// number, and a JUnit file that says so (not a report of the checks its
/// stopped programs failed).
#[test]
fn a_run_stopped_by_a_signal_leaves_a_junit_file() {
    use crate::signals::{marked, post_check_in_background, slow_server, wait_for};
    let dir = sandbox("phase4");
    let root = root(&dir);
    slow_server(&root);
    let file = dir.path().join("post.xml");
    let mut xtask = post_check_in_background(&root, &["--junit", file.to_str().unwrap()]);
    wait_for("the server and its two workers", || marked(&root).len() >= 3);
    let killed = Command::new("kill").arg("-TERM").arg(xtask.id().to_string()).status();
    assert!(killed.unwrap().success());
    assert_eq!(xtask.wait().unwrap().code(), Some(143));
    assert_stopped_junit(&file, "post-check", 143, "stopped by signal 15");
    wait_for("every program of the run to stop", || marked(&root).is_empty());
}
