//! `xtask bench` quick mode: the report's structure, not its times.
use crate::{assert_code, run, xtask};
use predicates::str::contains;

/// README's bench line, as written, with its `/tmp/bench` in scratch.
#[test]
fn the_readme_quick_bench_writes_a_complete_report() {
    let lines = crate::readme::command_lines();
    let (args, _) =
        lines.iter().find(|(args, _)| args[0] == "bench").expect("README has a bench line");
    let scratch = tempfile::TempDir::new().unwrap();
    let out = scratch.path().join("bench");
    let args: Vec<String> =
        args.iter().map(|a| a.replace("/tmp/bench", &out.display().to_string())).collect();
    assert!(args.contains(&out.display().to_string()), "the line writes to /tmp/bench: {args:?}");
    let result = run(xtask().args(&args));
    assert_code(&result, 0);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["schema"], 2);
    let pairs = report["pairs"].as_array().unwrap();
    let commands: Vec<(&str, &str)> = pairs
        .iter()
        .map(|p| (p["command"].as_str().unwrap(), p["shape"].as_str().unwrap()))
        .collect();
    for shape in ["rows", "blobs"] {
        for command in [
            "backup",
            "verify-backup",
            "rollback --scenario database",
            "push",
            "push (unchanged)",
            "push (one table changed)",
            "pull",
        ] {
            assert!(
                commands.contains(&(command, shape)),
                "{command} {shape} missing: {commands:?}"
            );
        }
    }
    assert!(commands.contains(&("post-check", "-")), "post-check runs on the fixture");
    let changed = pairs.iter().find(|p| p["command"] == "push (one table changed)").unwrap();
    let note = changed["note"].as_str().unwrap_or_default();
    assert!(note.contains("the repository grew by"), "what the push added: {changed}");
    for pair in pairs {
        assert_eq!(pair["ours_ok"], true, "{pair}");
        assert_eq!(pair["baseline_ok"], true, "{pair}");
        for field in ["ours_median_s", "baseline_median_s", "ratio", "ours_peak_mib"] {
            assert!(pair[field].as_f64().is_some_and(|v| v > 0.0), "{field} in {pair}");
        }
        for field in ["ours_runs_s", "baseline_runs_s"] {
            let runs = pair[field].as_array().unwrap_or_else(|| panic!("{field} in {pair}"));
            assert_eq!(runs.len(), 1, "one time per run: {pair}");
        }
    }
    let markdown = std::fs::read_to_string(out.join("report.md")).unwrap();
    // The header, its separator, and one row per pair.
    assert_eq!(markdown.matches("\n| ").count(), pairs.len() + 2, "one row per pair:\n{markdown}");
}

#[test]
fn bad_sizes_are_a_usage_error() {
    let result = run(xtask().args(["bench", "--sizes", "12MB"]));
    assert_code(&result, 2);
    result.stderr_has(contains("invalid size \"12MB\""));
}

#[test]
fn a_missing_baseline_tool_names_its_package() {
    // A PATH with a shell and nothing else: sqlite3 is missing.
    let bin = tempfile::TempDir::new().unwrap();
    std::os::unix::fs::symlink("/bin/sh", bin.path().join("sh")).unwrap();
    let result = run(xtask().args(["bench", "--sizes", "1MiB"]).env("PATH", bin.path()));
    assert_code(&result, 2);
    result.stderr_has(contains("apt-get install sqlite3"));
}

#[test]
fn an_unknown_row_is_a_usage_error_that_names_the_rows() {
    let result = run(xtask().args(["bench", "--only", "push,nope"]));
    assert_code(&result, 2);
    result.stderr_has(contains("unknown row \"nope\": use post-check, backup, verify-backup"));
}
