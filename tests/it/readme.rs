//! README.md as a reader meets it. Its `sh` blocks run literally, in order,
//! in one bash whose only set-up is what README tells the reader to do;
//! `cargo xtask` is the binary under test (a shell function, since `cargo`
//! itself is not run from the tests) and `/tmp/` is a scratch folder. A line's
//! comment `# exit N` gives its exit code, 0 otherwise. Lines with their own
//! test are left to it: `cargo test` and `cargo xtask test` (the suite
//! itself), `cargo xtask drill` (all rows),
//! `bench` and `dist` (which packs the test binary instead of a release
//! build). The CI section's jobs run their shell lines the same way.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{test_cache, xtask_path};

fn readme() -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap()
}

/// The lines of README's fenced blocks of `kind` (`sh`, `yaml`), block by block.
fn blocks(kind: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in readme().lines() {
        if let Some(fence) = line.strip_prefix("```") {
            match current.take() {
                Some(block) => out.push(block),
                None if fence == kind => current = Some(Vec::new()),
                None => current = None,
            }
            // A closing fence of another kind is skipped by the same toggle.
            continue;
        }
        if let Some(block) = current.as_mut() {
            block.push(line.to_string());
        }
    }
    out
}

/// The README's command lines: (arguments after `cargo xtask`, expected exit code).
pub fn command_lines() -> Vec<(Vec<String>, i32)> {
    blocks("sh")
        .into_iter()
        .flatten()
        .filter_map(|line| {
            let rest = line.strip_prefix("cargo xtask ")?.to_string();
            let (command, comment) = rest.split_once(" #").unwrap_or((&rest, ""));
            let args = command.split_whitespace().map(|a| a.trim_matches('\'').to_string());
            Some((args.collect(), expected_code(comment)))
        })
        .collect()
}

fn expected_code(comment: &str) -> i32 {
    comment
        .split_once("exit ")
        .and_then(|(_, n)| n.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .unwrap_or(0)
}

/// Whether a line has a test of its own.
fn has_its_own_test(line: &str) -> bool {
    let words: Vec<&str> = line.split('#').next().unwrap_or("").split_whitespace().collect();
    matches!(words.as_slice(), ["cargo", "test", ..] | ["cargo", "xtask", "drill"])
        || matches!(words.as_slice(), ["cargo", "xtask", "bench" | "dist" | "test", ..])
}

/// A bash script that runs `lines` one by one and stops at the first whose
/// exit code is not the one README gives, naming it.
fn script(lines: &[String], scratch: &Path) -> String {
    let mut out = String::from(
        "cargo() { if [ \"$1\" = xtask ]; then shift; \"$XTASK_BIN\" \"$@\"; else echo \"cargo $1 is not run here\" >&2; return 97; fi; }\n",
    );
    for line in lines {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || has_its_own_test(trimmed) {
            continue;
        }
        let code = expected_code(trimmed.split_once(" #").map_or("", |(_, c)| c));
        let shown = trimmed.replace('\'', "'\\''");
        out.push_str(&format!(
            "{}\nrc=$?; if [ $rc -ne {code} ]; then echo 'README line failed: {shown}' \"(exit $rc, expected {code})\" >&2; exit 99; fi\n",
            trimmed.replace("/tmp/", &format!("{}/", scratch.display()))
        ));
    }
    out
}

/// bash with nothing of the test's environment but PATH, a home of its own,
/// and the tests' cache folder (the virtualenv, as a restored CI cache).
fn bash(script: &str, scratch: &Path, cwd: &Path, env: &[(&str, String)]) -> std::process::Output {
    let home = scratch.join("home");
    fs::create_dir_all(&home).unwrap();
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(script)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("LANG", "C.UTF-8")
        .env("XDG_CACHE_HOME", test_cache())
        .env("TMPDIR", scratch)
        .env("XTASK_BIN", xtask_path())
        .current_dir(cwd);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

#[track_caller]
fn assert_ran(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_readme_command_runs_as_pasted() {
    let lines: Vec<String> = blocks("sh").into_iter().flatten().collect();
    let runnable = lines.iter().filter(|l| l.starts_with("cargo xtask ")).count();
    assert!(runnable > 25, "README's command lines were not found: {lines:?}");
    let scratch = tempfile::TempDir::new().unwrap();
    let work = scratch.path().join("work");
    fs::create_dir_all(&work).unwrap();
    let out = bash(&script(&lines, scratch.path()), scratch.path(), &work, &[]);
    assert_ran(&out);
    // What it said it would write is there; the demo tree and its clone are
    // trees of their own.
    for written in ["verify.xml", "post-check.xml", "CHECKLIST.md", "tmws-new/data/tmws.db"] {
        assert!(scratch.path().join(written).is_file(), "{written}");
    }
    let status = Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(scratch.path().join("tmws-demo"))
        .output()
        .unwrap();
    assert!(status.status.success());
    // The clone of the origin had no tag; the complete rollback made the
    // backup's tag again there.
    let tag = Command::new("git")
        .args(["rev-parse", "--verify", "--quiet", "pre-phase4^{commit}"])
        .current_dir(scratch.path().join("tmws-new"))
        .output()
        .unwrap();
    assert!(tag.status.success(), "tag pre-phase4 in the clone");
}

/// The shell lines of a CI job: GitHub's `run:` lines, GitLab's
/// `before_script` and `script` items.
fn job_lines(yaml: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_script = false;
    for line in yaml {
        let trimmed = line.trim_start();
        if let Some(run) = trimmed.strip_prefix("- run: ").or_else(|| trimmed.strip_prefix("run: "))
        {
            out.push(run.to_string());
        }
        if matches!(trimmed, "before_script:" | "script:") {
            in_script = true;
            continue;
        }
        if in_script {
            match trimmed.strip_prefix("- ") {
                Some(item) if line.starts_with("    ") => out.push(item.to_string()),
                _ => in_script = false,
            }
        }
    }
    out
}

/// A job's `KEY: value` variable (GitHub's `env:`, GitLab's `variables:`).
fn job_variable(yaml: &[String], key: &str) -> Option<String> {
    yaml.iter().find_map(|l| l.trim().strip_prefix(&format!("{key}: ")).map(str::to_string))
}

#[test]
fn each_ci_job_runs_its_shell_lines() {
    let jobs = blocks("yaml");
    assert_eq!(jobs.len(), 2, "a GitHub and a GitLab job");
    let template = crate::sandbox("phase4");
    for (i, job) in jobs.iter().enumerate() {
        let text = job.join("\n");
        // Defined, on the machine that holds the tree; caches keyed on the
        // OS and Python (GitHub), or kept per runner (GitLab).
        assert_eq!(job_variable(job, "TMWS_ROOT").as_deref(), Some("/srv/tmws"), "{text}");
        assert!(text.contains("python3-venv"), "{text}");
        assert!(text.contains("target") && text.contains(".cache/tmws-xtask"), "{text}");
        if i == 0 {
            assert!(
                text.contains("${{ runner.os }}") && text.contains("steps.python.outputs.version")
            );
        }
        let scratch = tempfile::TempDir::new().unwrap();
        let project = scratch.path().join("project");
        fs::create_dir_all(&project).unwrap();
        // The runner's tree, after a rollback.
        let tree: PathBuf = scratch.path().join("tmws");
        crate::copy_tree(&crate::root(&template), &tree);
        let rolled = crate::run_in(&tree, &["rollback", "--scenario", "complete", "--yes"]);
        crate::assert_code(&rolled, 0);
        // The job's own variables, with the runner's: a restored cache
        // (GitLab's XDG_CACHE_HOME under the project) is the tests' cache.
        let restored = project.join(".cache");
        fs::create_dir_all(&restored).unwrap();
        std::os::unix::fs::symlink(test_cache().join("tmws-xtask"), restored.join("tmws-xtask"))
            .unwrap();
        let mut env = vec![
            ("TMWS_ROOT", tree.display().to_string()),
            ("GITHUB_OUTPUT", scratch.path().join("github-output").display().to_string()),
            ("CI_PROJECT_DIR", project.display().to_string()),
        ];
        if let Some(cache) = job_variable(job, "XDG_CACHE_HOME") {
            env.push((
                "XDG_CACHE_HOME",
                cache.replace("$CI_PROJECT_DIR", &project.display().to_string()),
            ));
        }
        let lines: Vec<String> = job_lines(job)
            .iter()
            .map(|l| l.replace("/srv/tmws", &tree.display().to_string()))
            .collect();
        assert!(lines.iter().any(|l| l.starts_with("cargo xtask post-check")), "{lines:?}");
        let out = bash(&script(&lines, scratch.path()), scratch.path(), &project, &env);
        assert_ran(&out);
        let report: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(project.join("post-check.json")).unwrap())
                .unwrap();
        crate::schema::assert_valid("report", &report);
        assert!(project.join("post-check.xml").is_file());
    }
}
