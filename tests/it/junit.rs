//! JUnit XML for CI: a file on every exit (a usage error xflags finds, a
//! signal), in the shape CI systems read (checked in Rust, below), skipped
//! checks that say why, and selections that leave nothing to run refused.
use predicates::str::contains;
use std::{fs, path::Path, process::Command};

use crate::{assert_code, root, run_in, sandbox};

/// One testcase of a JUnit file: its name, and its outcome, if any.
#[derive(Debug)]
pub struct Case {
    pub name: String,
    pub outcome: Option<Outcome>,
}

/// A testcase's `failure`, `error` or `skipped` element.
#[derive(Debug)]
pub struct Outcome {
    pub element: String,
    pub message: String,
    /// The `type` attribute (the exit code of a run that stopped early).
    pub kind: String,
    pub text: String,
}

/// What a JUnit file says, once it has passed `assert_valid_junit`.
#[derive(Debug)]
pub struct Junit {
    pub tests: usize,
    pub failures: usize,
    pub errors: usize,
    pub skipped: usize,
    pub cases: Vec<Case>,
}

/// The JUnit XML that CI systems read (Jenkins, GitLab, GitHub Actions
/// reporters): `testsuites` of `testsuite`s of `testcase`s, each passing or
/// with one `failure`, `error` or `skipped` (a message and a type, text
/// inside); only the attributes they know; counts that are non-negative
/// integers and agree with the elements; times that are non-negative
/// decimals. Every report the tool writes must be such a file.
#[track_caller]
pub fn assert_valid_junit(path: &Path) -> Junit {
    let xml = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match junit(&xml) {
        Ok(junit) => junit,
        Err(why) => panic!("{} is not JUnit XML CI reads: {why}\n{xml}", path.display()),
    }
}

/// The element children of `node`; any text between them must be blank.
fn elements<'a>(node: roxmltree::Node<'a, 'a>) -> Result<Vec<roxmltree::Node<'a, 'a>>, String> {
    let mut out = Vec::new();
    for child in node.children() {
        match child.node_type() {
            roxmltree::NodeType::Element => out.push(child),
            roxmltree::NodeType::Text if child.text().unwrap_or("").trim().is_empty() => {}
            roxmltree::NodeType::Comment => {}
            _ => return Err(format!("<{}> holds text or other nodes", node.tag_name().name())),
        }
    }
    Ok(out)
}

/// `node`'s attributes are among `allowed`, and each of `required` is there.
fn attributes(node: roxmltree::Node, allowed: &[&str], required: &[&str]) -> Result<(), String> {
    let tag = node.tag_name().name();
    if let Some(unknown) = node.attributes().find(|a| !allowed.contains(&a.name())) {
        return Err(format!("<{tag}> has an attribute {} that JUnit has not", unknown.name()));
    }
    match required.iter().find(|r| node.attribute(**r).is_none()) {
        Some(missing) => Err(format!("<{tag}> lacks its {missing} attribute")),
        None => Ok(()),
    }
}

fn count(node: roxmltree::Node, name: &str) -> Result<usize, String> {
    let value = node.attribute(name).unwrap_or("");
    match value.chars().all(|c| c.is_ascii_digit()) {
        true => value.parse().map_err(|_| format!("{name}={value:?} is no count")),
        false => Err(format!("{name}={value:?} is no count")),
    }
}

fn seconds(node: roxmltree::Node) -> Result<(), String> {
    let value = node.attribute("time").unwrap_or("");
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    match !value.is_empty() && value != "." && digits(whole) && digits(fraction) {
        true => Ok(()),
        false => Err(format!("time={value:?} is not a number of seconds")),
    }
}

/// A testcase: its attributes and at most one outcome, which holds text only.
fn case(node: roxmltree::Node) -> Result<Case, String> {
    attributes(node, &["classname", "name", "time"], &["classname", "name", "time"])?;
    seconds(node)?;
    let outcome = match elements(node)?.as_slice() {
        [] => None,
        [one] => {
            let element = one.tag_name().name();
            if !matches!(element, "failure" | "error" | "skipped") {
                return Err(format!("a testcase holds a <{element}>, not an outcome"));
            }
            attributes(*one, &["message", "type"], &[])?;
            if one.children().any(|c| c.is_element()) {
                return Err(format!("<{element}> holds elements"));
            }
            let attribute = |name| one.attribute(name).unwrap_or("").to_string();
            let text = one.text().unwrap_or("").to_string();
            Some(Outcome {
                element: element.into(),
                message: attribute("message"),
                kind: attribute("type"),
                text,
            })
        }
        more => return Err(format!("a testcase holds {} elements, not one outcome", more.len())),
    };
    Ok(Case { name: node.attribute("name").unwrap_or("").to_string(), outcome })
}

/// Checks `xml` as `assert_valid_junit` says; what it holds, summed over
/// its suites.
fn junit(xml: &str) -> Result<Junit, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    if root.tag_name().name() != "testsuites" || root.tag_name().namespace().is_some() {
        return Err(format!("the root element is <{}>, not <testsuites>", root.tag_name().name()));
    }
    attributes(root, &[], &[])?;
    let suites = elements(root)?;
    if suites.is_empty() {
        return Err("<testsuites> holds no <testsuite>".into());
    }
    let mut all = Junit { tests: 0, failures: 0, errors: 0, skipped: 0, cases: Vec::new() };
    for suite in suites {
        if suite.tag_name().name() != "testsuite" {
            return Err(format!("<testsuites> holds a <{}>", suite.tag_name().name()));
        }
        let known = ["name", "tests", "failures", "errors", "skipped", "time"];
        attributes(suite, &known, &known)?;
        seconds(suite)?;
        let mut cases = Vec::new();
        for node in elements(suite)? {
            if node.tag_name().name() != "testcase" {
                return Err(format!("<testsuite> holds a <{}>", node.tag_name().name()));
            }
            cases.push(case(node)?);
        }
        let of = |element: &str| {
            cases
                .iter()
                .filter(|c| c.outcome.as_ref().is_some_and(|o| o.element == element))
                .count()
        };
        let counted = [cases.len(), of("failure"), of("error"), of("skipped")];
        for (name, counted) in ["tests", "failures", "errors", "skipped"].iter().zip(counted) {
            let said = count(suite, name)?;
            if said != counted {
                return Err(format!("{name}=\"{said}\" but the suite holds {counted}"));
            }
        }
        all.tests += counted[0];
        all.failures += counted[1];
        all.errors += counted[2];
        all.skipped += counted[3];
        all.cases.extend(cases);
    }
    Ok(all)
}

/// The checker refuses what CI systems would misread: each of these breaks
/// one rule, and the file the tool writes passes.
#[test]
fn the_junit_checker_refuses_what_ci_would_misread() {
    let case = r#"<testcase classname="c" name="n" time="0.5"/>"#;
    let suite = |attrs: &str, body: &str| {
        format!(r#"<testsuites><testsuite name="s" {attrs}>{body}</testsuite></testsuites>"#)
    };
    let counts = r#"tests="1" failures="0" errors="0" skipped="0" time="0.5""#;
    assert_eq!(junit(&suite(counts, case)).unwrap().tests, 1);
    let broken = [
        ("<testsuite/>".to_string(), "not <testsuites>"),
        ("<testsuites/>".to_string(), "holds no <testsuite>"),
        (suite(r#"tests="2" failures="0" errors="0" skipped="0" time="0""#, case), "tests=\"2\""),
        (suite(r#"tests="1" failures="0" errors="0" skipped="0" time="-1""#, case), "time="),
        (suite(r#"tests="1" failures="0" errors="0" time="0""#, case), "lacks its skipped"),
        (suite(&format!("{counts} extra=\"x\""), case), "attribute extra"),
        (
            suite(
                counts,
                r#"<testcase classname="c" name="n" time="0"><failure/><skipped/></testcase>"#,
            ),
            "not one outcome",
        ),
        (suite(counts, r#"<testcase classname="c" time="0"/>"#), "lacks its name"),
        (
            suite(counts, r#"<testcase classname="c" name="n" time="0"><output/></testcase>"#),
            "<output>",
        ),
        (suite(counts, "stray text"), "holds text"),
        (
            suite(counts, r#"<testcase classname="c" name="n" time="0"><failure/></testcase>"#),
            "failures=",
        ),
    ];
    let failing = r#"<testcase classname="c" name="n" time="0"><failure message="m">why</failure></testcase>"#;
    let one_failure = r#"tests="1" failures="1" errors="0" skipped="0" time="0""#;
    let read = junit(&suite(one_failure, failing)).unwrap();
    assert_eq!(read.cases[0].outcome.as_ref().map(|o| o.text.as_str()), Some("why"));
    let nested = failing.replace("why", "<b/>");
    let broken = broken.into_iter().chain([(suite(one_failure, &nested), "holds elements")]);
    for (xml, why) in broken {
        let err = junit(&xml).expect_err(&xml);
        assert!(err.contains(why), "{xml}: {err}");
    }
}

#[test]
fn every_junit_file_validates_and_says_why_a_check_was_skipped() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let verify = dir.path().join("verify.xml");
    let result = run_in(&root, &["verify-backup", "--junit", verify.to_str().unwrap()]);
    assert_code(&result, 0);
    let verified = assert_valid_junit(&verify);
    assert!(verified.tests > 0 && verified.cases.iter().all(|c| c.outcome.is_none()));
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
    let checked = assert_valid_junit(&post);
    let outcome = |id: &str| {
        let case = checked.cases.iter().find(|c| c.name.starts_with(&format!("{id}: ")));
        case.and_then(|c| c.outcome.as_ref()).map(|o| (o.element.as_str(), o.message.as_str()))
    };
    assert_eq!(outcome("forensics"), Some(("skipped", "skipped by --skip")), "{checked:?}");
    let migrations = outcome("migrations.count").unwrap_or_default();
    assert_eq!(migrations.0, "skipped", "{checked:?}");
    assert!(migrations.1.starts_with("not applicable: there is no backup"), "{checked:?}");
    assert!(checked.failures >= 1, "{checked:?}");
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
        assert_stopped_junit(&file, args[0], 2, why);
    }
}

/// The one testcase of a run that stopped before its report: its `<error>`
/// (message and body) and its exit code.
#[track_caller]
fn assert_stopped_junit(path: &Path, command: &str, code: i32, why: &str) {
    let junit = assert_valid_junit(path);
    assert_eq!((junit.tests, junit.errors), (1, 1), "{junit:?}");
    let case = &junit.cases[0];
    assert_eq!(case.name, format!("{command}: no check ran"));
    let error = case.outcome.as_ref().expect("an <error>");
    assert_eq!((error.element.as_str(), error.kind.clone()), ("error", format!("exit {code}")));
    assert!(error.message.contains(why) && error.text.contains(why), "{error:?}");
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
