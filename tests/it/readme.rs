//! Every `cargo xtask` command line in README.md's `sh` blocks runs here, as
//! written, in the order written, on one sandbox: an edited README is tested
//! as it reads. Placeholders become the sandbox (`/path/to/tmws`,
//! `/tmp/...`); a line's comment `# exit N` gives its exit code, 0 otherwise.
//! Lines that act after an interruption run after one is provoked.
use std::{path::Path, process::Command};

use crate::{assert_code, run, xtask};

/// The README's command lines: (arguments after `cargo xtask`, expected exit code).
pub fn command_lines() -> Vec<(Vec<String>, i32)> {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(readme).unwrap();
    let mut lines = Vec::new();
    let mut in_sh = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        let Some(rest) = line.strip_prefix("cargo xtask ").filter(|_| in_sh) else { continue };
        let (command, comment) = rest.split_once(" #").unwrap_or((rest, ""));
        let code = comment
            .split_once("exit ")
            .and_then(|(_, n)| n.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .unwrap_or(0);
        let args = command.split_whitespace().map(|a| a.trim_matches('\'').to_string()).collect();
        lines.push((args, code));
    }
    lines
}

#[test]
fn every_readme_command_runs_as_written() {
    let lines = command_lines();
    assert!(lines.len() > 20, "the README's command lines were not found: {lines:?}");
    let scratch = tempfile::TempDir::new().unwrap();
    let root = scratch.path().join("tmws");
    let place = |arg: &str| {
        arg.replace("/tmp/", &format!("{}/", scratch.path().display()))
            .replace("/path/to/tmws", &root.display().to_string())
    };
    for (args, code) in lines {
        // `cargo xtask drill` (all rows) is the drill test's own command, and
        // the bench's line is the bench test's: they need no tree.
        if args == ["drill"] || args[0] == "bench" {
            continue;
        }
        let args: Vec<String> = args.iter().map(|a| place(a)).collect();
        if args.iter().any(|a| a == "--resume" || a == "--abandon") {
            let interrupted = run(xtask()
                .args(["rollback", "--scenario", "complete", "--yes", "--root"])
                .arg(&root)
                .env("XTASK_ROLLBACK_FAULT", "after:2"));
            assert_eq!(interrupted.code, -1, "{interrupted:?}");
        }
        let mut command = xtask();
        command.args(&args);
        if root.is_dir() {
            command.current_dir(&root);
        }
        let result = run(&mut command);
        assert_code(&result, code);
    }
    // The bundles and reports it said it would write are there.
    assert!(scratch.path().join("verify.xml").is_file());
    assert!(scratch.path().join("CHECKLIST.md").is_file());
    let status = Command::new("git").args(["status", "--porcelain"]).current_dir(&root).output();
    assert!(status.unwrap().status.success());
}
