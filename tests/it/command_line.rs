//! The command line as people and pipelines use it: the tree found as git
//! finds its repository, the shared flags before or after the command,
//! `help`, one JSON document on stdout on every exit with `--format json`,
//! counts that refuse what is not one, `--resume` without `--scenario`, and
//! suggested commands that run as pasted from anywhere.
use std::{fs, path::Path, process::Command};

use predicates::{
    prelude::*,
    str::{contains, is_match},
};

use crate::{assert_code, crash_rollback, digest, root, run, run_in, sandbox, xtask};

fn json_of(result: &crate::Run) -> serde_json::Value {
    serde_json::from_str(&result.stdout)
        .unwrap_or_else(|err| panic!("stdout is one JSON document ({err}): {result:?}"))
}

/// The error document, checked against its schema.
#[track_caller]
fn error_document(result: &crate::Run, command: Option<&str>, exit: i32) -> serde_json::Value {
    assert_code(result, exit);
    let json = json_of(result);
    crate::schema::assert_valid("error", &json);
    assert_eq!(json["exit"], exit, "{json}");
    assert_eq!(json["command"], serde_json::json!(command), "{json}");
    let first = result.stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
    assert!(json["message"].as_str().unwrap().starts_with(&first["error: ".len()..]), "{json}");
    json
}

#[test]
fn every_exit_prints_one_json_document() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    // 2: a flag no command has, for every command (and before the command).
    for command in [
        "sandbox",
        "backup",
        "verify-backup",
        "rollback",
        "post-check",
        "forensics",
        "diagnose",
        "drill",
        "list",
        "prune",
        "push",
        "pull",
        "init",
        "bench",
        "dist",
    ] {
        let result = run(xtask().args([command, "--format", "json", "--colour"]));
        let json = error_document(&result, Some(command), 2);
        assert_eq!(json["next"], format!("cargo xtask {command} --help"));
    }
    let nothing = run(xtask().args(["--format", "json", "no-such-command"]));
    error_document(&nothing, None, 2);
    // 2: no tree anywhere up from an empty folder.
    let empty = tempfile::TempDir::new().unwrap();
    let lost = run(xtask().args(["list", "--format", "json"]).current_dir(empty.path()));
    let json = error_document(&lost, Some("list"), 2);
    assert!(json["message"].as_str().unwrap().contains("TMWS_ROOT"), "{json}");
    // 4: no terminal to confirm on.
    let unconfirmed = run_in(&root, &["rollback", "--scenario", "database", "--format", "json"]);
    error_document(&unconfirmed, Some("rollback"), 4);
    // 3: another run holds the lock.
    let lock = root.join(".tmws-rollback/lock");
    fs::create_dir_all(lock.parent().unwrap()).unwrap();
    fs::write(&lock, "").unwrap();
    let mut holder = crate::hold_lock(&lock);
    let busy = run_in(&root, &["prune", "--keep", "1", "--yes", "--format", "json"]);
    let _ = holder.kill();
    let _ = holder.wait();
    error_document(&busy, Some("prune"), 3);
    // 5: an interrupted run; its next step is the command that finishes it.
    crash_rollback(&root, "complete", "after:2");
    let blocked =
        run_in(&root, &["rollback", "--scenario", "database", "--yes", "--format", "json"]);
    let json = error_document(&blocked, Some("rollback"), 5);
    let next = json["next"].as_str().unwrap();
    assert!(next.contains("--resume") && next.contains(&root.display().to_string()), "{json}");
    // 1: diagnose prints its own document (a row is recommended), not a second one.
    let diagnosed = run_in(&root, &["rollback", "--resume", "--yes"]);
    assert_code(&diagnosed, 0);
    let recommended = run_in(&root, &["diagnose", "--expect-commit", "HEAD~1", "--format", "json"]);
    assert_code(&recommended, 1);
    assert_eq!(json_of(&recommended)["command"], "diagnose");
}

#[test]
fn the_tree_is_found_from_a_folder_inside_it_and_shared_flags_go_anywhere() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    let inside = root.join("src/services");
    let listed = run(xtask().args(["-q", "--format", "json", "list"]).current_dir(&inside));
    assert_code(&listed, 0);
    assert_eq!(json_of(&listed)["backups"][0]["label"], "pre-phase4");
    let after = run(xtask().args(["list", "--format=json", "-q"]).current_dir(&inside));
    assert_eq!(json_of(&after), json_of(&listed));
    // --root wins over TMWS_ROOT, which wins over the current folder.
    let empty = tempfile::TempDir::new().unwrap();
    let by_env = run(xtask().arg("list").env("TMWS_ROOT", &root).current_dir(empty.path()));
    assert_code(&by_env, 0);
    let by_flag = run(xtask()
        .args(["--root"])
        .arg(empty.path())
        .arg("list")
        .env("TMWS_ROOT", &root)
        .current_dir(&inside));
    assert_code(&by_flag, 2);
    by_flag.stderr_has(contains("is not a TMWS tree"));
    // The nearest wins: a checkout nested inside (its own alembic.ini) is
    // never passed over for the tree above it.
    let nested = inside.join("vendored");
    fs::create_dir_all(&nested).unwrap();
    fs::write(nested.join("alembic.ini"), "[alembic]\nscript_location = m\n").unwrap();
    let near = run(xtask().arg("list").current_dir(&nested));
    assert_code(&near, 2);
    near.stderr_has(contains(nested.display().to_string()).and(contains("is not a TMWS tree")));
    let blank = run(xtask().arg("list").env("TMWS_ROOT", "").current_dir(&inside));
    assert_code(&blank, 2);
    blank.stderr_has(contains("TMWS_ROOT is set but empty"));
    for (args, wanted) in [
        (&["help"][..], "cargo xtask help COMMAND"),
        (
            &["help", "rollback"][..],
            "cargo xtask rollback --root /srv/tmws --scenario database --dry-run",
        ),
    ] {
        let helped = run(xtask().args(args));
        assert_code(&helped, 0);
        helped.stdout_has(contains(wanted));
    }
}

#[test]
fn counts_refuse_what_is_not_one_and_resume_knows_its_scenario() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let before = digest(&root);
    for args in [
        &["prune", "--keep", "-1"][..],
        &["prune", "--keep", "0"],
        &["rollback", "--scenario", "migration", "--steps", "0", "--yes"],
    ] {
        let result = run_in(&root, args);
        assert_code(&result, 2);
        result.stderr_has(contains("expected a count of at least 1"));
    }
    let both = run_in(&root, &["rollback", "--resume", "--abandon", "--yes"]);
    assert_code(&both, 2);
    both.stderr_has(contains("choose one"));
    let no_scenario = run_in(&root, &["rollback", "--yes"]);
    assert_code(&no_scenario, 2);
    no_scenario.stderr_has(contains("--scenario is required"));
    assert_eq!(digest(&root), before);
    crash_rollback(&root, "files", "after:2");
    let resumed = run_in(&root, &["rollback", "--resume", "--yes"]);
    assert_code(&resumed, 0);
    resumed.stdout_has(contains("rollback --scenario files done"));
}

#[test]
fn a_downgrade_below_the_backups_revision_needs_allow_data_loss() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    assert_code(&run_in(&root, &["rollback", "--scenario", "complete", "--yes"]), 0);
    let before = digest(&root);
    let below = run_in(&root, &["rollback", "--scenario", "migration", "--steps", "1", "--yes"]);
    assert_code(&below, 4);
    below.stderr_has(contains("below the backup's revision").and(contains("--allow-data-loss")));
    assert_eq!(digest(&root), before);
    let args =
        ["rollback", "--scenario", "migration", "--steps", "1", "--allow-data-loss", "--yes"];
    assert_code(&run_in(&root, &args), 0);
}

#[test]
fn suggested_commands_carry_a_quoted_root() {
    let dir = sandbox("phase4");
    let spaced = dir.path().join("the tree's copy");
    crate::copy_tree(&root(&dir), &spaced);
    let diagnosed = run(xtask()
        .args(["diagnose", "--expect-commit", "pre-phase4", "--root"])
        .arg(&spaced)
        .current_dir("/"));
    assert_code(&diagnosed, 1);
    let quoted = format!("--root '{}'", spaced.display().to_string().replace('\'', "'\\''"));
    diagnosed.stdout_has(
        is_match(format!(
            "recommendation: cargo xtask rollback --scenario [a-z]+ {}",
            crate::regex_escape(&quoted)
        ))
        .unwrap(),
    );
    // Pasted into a shell from elsewhere, it names the same tree.
    let line = diagnosed.stdout.lines().find(|l| l.starts_with("recommendation: ")).unwrap();
    let command = line["recommendation: ".len()..].split(" (runbook").next().unwrap();
    let pasted = command.replacen("cargo xtask", &crate::xtask_path().display().to_string(), 1);
    let planned = crate::with_test_env(&mut Command::new("sh"))
        .args(["-c", &format!("{pasted} --dry-run")])
        .current_dir("/")
        .env("XDG_CACHE_HOME", crate::test_cache())
        .output()
        .unwrap();
    assert!(planned.status.success(), "{}", String::from_utf8_lossy(&planned.stderr));
    assert!(String::from_utf8_lossy(&planned.stdout).contains(&spaced.display().to_string()));
}

#[test]
fn a_rollback_that_changes_nothing_keeps_no_bundle_and_bundles_are_listed_and_pruned() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    assert_code(&run_in(&root, &["rollback", "--scenario", "complete", "--yes"]), 0);
    let bundles = || fs::read_dir(root.join("forensics")).unwrap().count();
    assert_eq!(bundles(), 1);
    let again = run_in(&root, &["rollback", "--scenario", "complete", "--yes", "--format", "json"]);
    assert_code(&again, 0);
    assert_eq!(json_of(&again)["bundle"], serde_json::Value::Null);
    again.stderr_has(contains("nothing changed").and(contains("no bundle was kept")));
    assert_eq!(bundles(), 1, "no second bundle");
    assert_code(&run_in(&root, &["forensics"]), 0);
    assert_eq!(bundles(), 2);
    let listed = run_in(&root, &["list", "--format", "json"]);
    let json = json_of(&listed);
    crate::schema::assert_valid("list", &json);
    let listed_bundles = json["bundles"].as_array().unwrap();
    assert_eq!(listed_bundles.len(), 2);
    assert!(listed_bundles.iter().all(|b| b["size"].as_u64().unwrap() > 0), "{json}");
    run_in(&root, &["list"]).stdout_has(contains("forensics bundles: 2"));
    let oldest = listed_bundles[0]["name"].as_str().unwrap().to_string();
    // A folder a person put in forensics/ is not a bundle: never listed, never pruned.
    let theirs = root.join("forensics/notes-20261130T000000Z-1");
    fs::create_dir_all(&theirs).unwrap();
    fs::write(theirs.join("mine.txt"), "mine").unwrap();
    let pruned = run_in(&root, &["prune", "--bundles", "--keep", "1", "--yes", "--format", "json"]);
    assert_code(&pruned, 0);
    let json = json_of(&pruned);
    crate::schema::assert_valid("prune", &json);
    assert_eq!(json["holders"][0]["remove"][0]["label"], oldest.as_str());
    assert!(!root.join("forensics").join(&oldest).exists());
    assert!(theirs.join("mine.txt").is_file(), "a person's folder survives");
    assert_eq!(bundles(), 2, "the newest bundle and the person's folder");
    assert!(Path::new(&root.join("backups/pre-phase4")).is_dir(), "backups untouched");
}

/// A profile is text a person wrote: a control character in any value is
/// refused naming its key, and so is a profile that is not UTF-8 (exit 2,
/// nothing changed); init writes a control character of pyproject.toml's
/// name as TOML reads it, or not at all.
#[test]
fn a_profile_with_a_control_character_or_not_utf8_is_a_usage_error() {
    let dir = crate::sandbox("phase4");
    let root = crate::root(&dir);
    let profile = root.join("tmws-rollback.toml");
    let text = fs::read_to_string(&profile).unwrap();
    fs::write(&profile, text.replace("service = \"tmws\"", "service = \"tmws\\u0007\"")).unwrap();
    crate::assert_refused(
        &root,
        &["list"],
        2,
        "tmws-rollback.toml: service holds a control character",
    );
    let env = "[env]\nLOG = \"a\\u0000b\"\n";
    fs::write(&profile, format!("{text}{env}")).unwrap();
    crate::assert_refused(&root, &["diagnose"], 2, "env.LOG holds a control character");
    fs::write(&profile, b"service = \"tm\xffws\"\n").unwrap();
    crate::assert_refused(&root, &["list"], 2, "it is not UTF-8 text");
    // init, on a pyproject.toml whose name holds a bell, writes a profile
    // every command reads.
    fs::remove_file(&profile).unwrap();
    let pyproject = root.join("pyproject.toml");
    let project = fs::read_to_string(&pyproject).unwrap();
    let named = project.replacen("name = \"tmws\"", "name = \"tmws\\u0007\"", 1);
    assert_ne!(named, project, "the fixture's pyproject.toml names the project tmws");
    fs::write(&pyproject, named).unwrap();
    crate::run_in(&root, &["init"]).exits(0);
    crate::run_in(&root, &["list"]).exits(0);
}
