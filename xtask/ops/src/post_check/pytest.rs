//! The runbook's pytest files, run with the real pytest: counts come from its
//! JUnit XML, and failing tests are told apart from pytest itself failing.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Result;
use xshell::Shell;

use xtask_adapters::process;
use xtask_adapters::python::Python;
use xtask_fs::outside;
use xtask_model::check::Check;
use xtask_model::check::CheckId;
use xtask_model::profile::Tree;

/// One test case from pytest's JUnit XML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub file: String,
    pub name: String,
    /// `None` passed; `Some("failure")`, `Some("error")` or `Some("skipped")`.
    pub outcome: Option<String>,
}

/// Runs pytest on the profile's test files and returns the unit and the
/// integration checks. Nothing is written into the tree: no cache, no
/// bytecode, the XML report goes to `scratch`.
pub fn run(sh: &Shell, python: &Python, tree: &Tree, scratch: &Path) -> Result<Vec<Check>> {
    let is_integration = |path: &str| is_integration(path);
    let configured = |integration: bool| {
        tree.profile.test_files.iter().any(|f| is_integration(f) == integration)
    };
    let xml_path = scratch.join("pytest.xml");
    let _d = sh.push_dir(&tree.root);
    // The checkout's own configuration, minus what writes reports or
    // enforces thresholds: its addopts are replaced by the same options
    // without them, and the cache goes to the scratch folder.
    let addopts = checkout_addopts(tree).map(|opts| without_reports(&opts).join(" "));
    let mut cmd = python
        .tool(sh, tree, "python")
        .env("COVERAGE_FILE", scratch.join("coverage"))
        .args(["-m", "pytest", "-p", "no:cacheprovider", "-q", "-o", "junit_family=xunit1"]);
    if let Some(addopts) = addopts {
        cmd = cmd.arg("-o").arg(format!("addopts={addopts}"));
    }
    let cmd = cmd
        .arg(format!("--junitxml={}", xml_path.display()))
        .args(&tree.profile.pytest_args)
        .args(&tree.profile.test_files);
    // pytest may write beneath the tree (not in the tool's own folders) and
    // post-check's scratch folder.
    let mut writable = tree.writable_by_programs()?;
    writable.push(scratch.to_path_buf());
    let writable: Vec<&Path> = writable.iter().map(PathBuf::as_path).collect();
    let confined = process::Confinement::beneath(&writable)?;
    let out = process::run(cmd, Duration::from_secs(600), Some(&confined))?;
    let cases = outside::read_to_string(&xml_path).map(|xml| parse_junit(&xml)).unwrap_or_default();
    let is_integration = |c: &Case| is_integration(&c.file);
    let groups = [
        (
            CheckId::TestsUnit,
            cases.iter().filter(|c| !is_integration(c)).cloned().collect::<Vec<_>>(),
        ),
        (CheckId::TestsIntegration, cases.iter().filter(|c| is_integration(c)).cloned().collect()),
    ];
    // Exit code 1 means "some test failed": that is the failing group's
    // verdict, not a failure of pytest itself for the other group.
    let tests_failed =
        cases.iter().any(|c| matches!(c.outcome.as_deref(), Some("failure" | "error")));
    let pytest_ok = out.success() || (out.code == Some(1) && tests_failed && !out.timed_out);
    Ok(groups
        .into_iter()
        .map(|(id, group)| {
            let integration = id == CheckId::TestsIntegration;
            if !configured(integration) && group.is_empty() {
                let kind = if integration { "integration" } else { "unit" };
                return Check::not_applicable(
                    id,
                    format!("no {kind} test file is configured (test_files in the profile)"),
                );
            }
            judge(id, &group, &out, pytest_ok)
        })
        .collect())
}

/// The `addopts` of the checkout's pytest configuration, if it has any:
/// pytest.ini, pyproject.toml, tox.ini or setup.cfg, in pytest's order.
fn checkout_addopts(tree: &Tree) -> Option<Vec<String>> {
    let ini = |file: &str, section: &str| -> Option<Option<Vec<String>>> {
        let text = tree.fs.read_to_string(&tree.path(file)).ok()?;
        let mut in_section = false;
        let mut value: Option<String> = None;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('[') {
                if value.is_some() {
                    break;
                }
                in_section = trimmed == format!("[{section}]");
                continue;
            }
            if !in_section {
                continue;
            }
            match (&mut value, line.starts_with([' ', '\t'])) {
                (Some(v), true) => {
                    v.push(' ');
                    v.push_str(trimmed);
                }
                (Some(_), false) => break,
                (None, _) => {
                    if let Some((key, rest)) = trimmed.split_once('=')
                        && key.trim() == "addopts"
                    {
                        value = Some(rest.trim().to_string());
                    }
                }
            }
        }
        // The section exists: it is the configuration, with or without addopts.
        Some(value.map(|v| v.split_whitespace().map(String::from).collect()))
    };
    let pyproject = || -> Option<Option<Vec<String>>> {
        let text = tree.fs.read_to_string(&tree.path("pyproject.toml")).ok()?;
        let doc: toml::Table = toml::from_str(&text).ok()?;
        let options = doc.get("tool")?.get("pytest")?.get("ini_options")?;
        Some(match options.get("addopts") {
            Some(toml::Value::String(s)) => Some(s.split_whitespace().map(String::from).collect()),
            Some(toml::Value::Array(items)) => {
                Some(items.iter().filter_map(|i| i.as_str().map(String::from)).collect())
            }
            _ => None,
        })
    };
    ini("pytest.ini", "pytest")
        .or_else(pyproject)
        .or_else(|| ini("tox.ini", "pytest"))
        .or_else(|| ini("setup.cfg", "tool:pytest"))
        .flatten()
}

/// Options without those that write reports or files into the tree or turn a
/// passing run into a failure by a threshold (coverage, HTML and JSON
/// reports, JUnit files of the checkout's own).
pub fn without_reports(options: &[String]) -> Vec<String> {
    const WRITERS: [&str; 8] = [
        "--cov",
        "--html",
        "--self-contained-html",
        "--junitxml",
        "--junit-xml",
        "--json-report",
        "--report-log",
        "--benchmark-auto",
    ];
    let mut out = Vec::new();
    let mut skip_value = false;
    for option in options {
        if skip_value {
            skip_value = false;
            continue;
        }
        let name = option.split('=').next().unwrap_or("");
        if WRITERS.iter().any(|w| name.starts_with(w)) {
            // `--cov src` takes its value as the next word.
            skip_value = !option.contains('=')
                && [
                    "--cov",
                    "--html",
                    "--junitxml",
                    "--junit-xml",
                    "--cov-report",
                    "--cov-fail-under",
                    "--cov-config",
                ]
                .contains(&name);
            continue;
        }
        out.push(option.clone());
    }
    out
}

/// The line of pytest's output that explains a failure best: a threshold,
/// the import error behind a collection error, an error of pytest itself.
fn explanation(out: &process::Output) -> Option<String> {
    let text = format!("{}\n{}", out.stdout, out.stderr);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let patterns = [
        "Required test coverage",
        "ModuleNotFoundError",
        "ImportError",
        "ERROR collecting",
        "error:",
        "SyntaxError",
        "E   ",
    ];
    patterns.iter().find_map(|p| lines.iter().find(|l| l.contains(p)).map(|l| l.to_string()))
}

fn judge(id: CheckId, cases: &[Case], out: &process::Output, pytest_ok: bool) -> Check {
    let failed: Vec<String> = cases
        .iter()
        .filter(|c| matches!(c.outcome.as_deref(), Some("failure" | "error")))
        .map(|c| format!("{}::{} ({})", c.file, c.name, c.outcome.as_deref().unwrap_or("")))
        .collect();
    let passed = cases.iter().filter(|c| c.outcome.is_none()).count();
    let counts = format!("{passed} passed, {} failed of {}", failed.len(), cases.len());
    let lead = explanation(out).map(|l| format!("{l}\n")).unwrap_or_default();
    if out.timed_out {
        return Check::fail(id, format!("pytest timed out; {counts}"));
    }
    if !failed.is_empty() {
        return Check::fail(id, format!("{lead}{counts}:\n{}", failed.join("\n")));
    }
    if cases.is_empty() {
        return Check::fail(
            id,
            format!("{lead}pytest ran no test here ({}):\n{}", out.describe_status(), out.tail(6)),
        );
    }
    if !pytest_ok {
        return Check::fail(
            id,
            format!(
                "{lead}every test passed ({counts}) but pytest itself failed ({}): a collection error, a plugin or a threshold:\n{}",
                out.describe_status(),
                out.tail(6)
            ),
        );
    }
    Check::pass(id, counts)
}

/// Reads `<testcase>` elements of pytest's JUnit XML (xunit1 family: the
/// `file` attribute names the test file). An unreadable report has no case.
pub fn parse_junit(xml: &str) -> Vec<Case> {
    let Ok(doc) = roxmltree::Document::parse(xml) else { return Vec::new() };
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|case| {
            let attr = |name: &str| case.attribute(name).unwrap_or("").to_string();
            let file = match case.attribute("file") {
                Some(file) if !file.is_empty() => file.to_string(),
                _ => attr("classname").replace('.', "/"),
            };
            let outcome = ["failure", "error", "skipped"]
                .into_iter()
                .find(|tag| case.children().any(|c| c.has_tag_name(*tag)))
                .map(String::from);
            Case { file, name: attr("name"), outcome }
        })
        .collect()
}

/// A test under a folder named like *integration* (tests/integration/,
/// integration_tests/) is an integration test; its file's name does not
/// count (test_verification_learning_integration.py is a unit test).
fn is_integration(path: &str) -> bool {
    let folders = path.rsplit_once('/').map_or("", |(dirs, _)| dirs);
    folders.split('/').any(|part| part.contains("integration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_passed_failed_and_errored_cases() {
        let xml = r#"<testsuites><testsuite name="pytest" errors="1" failures="1" tests="3">
<testcase classname="tests.unit.test_a" name="test_ok" file="tests/unit/test_a.py" time="0.001" />
<testcase classname="tests.unit.test_a" name="test_bad" file="tests/unit/test_a.py"><failure message="assert 1 == 2">x</failure></testcase>
<testcase classname="tests.integration.test_b" name="test_err" file="tests/integration/test_b.py"><error message="boom" /></testcase>
</testsuite></testsuites>"#;
        let cases = parse_junit(xml);
        let outcomes: Vec<_> =
            cases.iter().map(|c| (c.name.as_str(), c.outcome.as_deref())).collect();
        assert_eq!(
            outcomes,
            [("test_ok", None), ("test_bad", Some("failure")), ("test_err", Some("error"))]
        );
        assert_eq!(cases[2].file, "tests/integration/test_b.py");
        assert!(super::is_integration("tests/integration_api/test_b.py"));
        assert!(super::is_integration("integration/test_b.py"));
        assert!(!super::is_integration("tests/unit/test_learning_integration.py"));
    }

    #[test]
    fn reads_entities_in_names() {
        let xml = r#"<testsuites><testsuite><testcase classname="t" name="test_&#60;a&#x3e; &amp; b" file="tests/t.py"/></testsuite></testsuites>"#;
        assert_eq!(parse_junit(xml)[0].name, "test_<a> & b");
    }
}
