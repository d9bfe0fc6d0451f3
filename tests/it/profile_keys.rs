//! A profile is read once, and every refusal of it names the key and the
//! file (exit 2, nothing changed); an empty optional value means "not
//! set".
use std::{fs, path::Path};

use predicates::str::contains;

use crate::{assert_refused, breakage::*, root, run_in, sandbox};

/// The sandbox's profile with `extra` lines after it (a key given twice is
/// not TOML: each case replaces the line of its key).
fn with_profile(root: &Path, extra: &str) {
    let profile = root.join("tmws-rollback.toml");
    let text = fs::read_to_string(&profile).unwrap();
    let replaced: Vec<&str> =
        extra.lines().filter_map(|line| line.split_once(" = ").map(|(key, _)| key)).collect();
    let kept: String = text
        .lines()
        .filter(|line| !replaced.iter().any(|key| line.starts_with(&format!("{key} = "))))
        .map(|line| format!("{line}\n"))
        .collect();
    fs::write(&profile, format!("{kept}{extra}\n")).unwrap();
}

#[test]
fn every_profile_error_names_the_key_and_the_file() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    let original = fs::read_to_string(root.join("tmws-rollback.toml")).unwrap();
    let cases = [
        ("database = \"\"", "database = \"\": this key needs a path"),
        ("migrations = \".\"", "migrations = \".\": it names the root itself"),
        (
            "config_files = [\"pyproject.toml\", \"../secrets.env\"]",
            "config_files[1] = \"../secrets.env\": a path of the tree is relative to its root",
        ),
        ("log_file = \"/var/log/tmws.log\"", "log_file = \"/var/log/tmws.log\": a path"),
        ("port = \"8000\"", "port: invalid type: string \"8000\", expected u16"),
        ("health_revision = \"revision\"", "health_revision: \"revision\" is not a JSON pointer"),
        ("service_programs = [\"python\", \"uv*\"]", "service_programs[1] = \"uv*\""),
    ];
    for (line, says) in cases {
        fs::write(root.join("tmws-rollback.toml"), &original).unwrap();
        with_profile(&root, line);
        let message = format!("{}: {says}", root.join("tmws-rollback.toml").display());
        assert_refused(&root, &["verify-backup"], 2, &message);
    }
}

/// `log_file = ""`, `pid_file = ""` and `backup_repo = ""` are keys turned
/// off: every command reads the profile, and the bundle says there is no log.
#[test]
fn an_empty_optional_value_means_not_set() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    with_profile(&root, "log_file = \"\"\npid_file = \"\"\nbackup_repo = \"\"");
    run_in(&root, &["verify-backup"]).exits(0);
    run_in(&root, &["forensics"]).exits(0);
    let facts = facts(&only_bundle(&root));
    assert_eq!(facts["log"], "no service log: the profile sets no log_file", "{facts}");
    let push = run_in(&root, &["push"]);
    push.exits(2).stderr_has(contains("no restic repository"));
}
