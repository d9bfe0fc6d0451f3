//! Real checkouts are messy: git steps on an imperfect repository behave
//! like git's own checkout, refuse before step 1 what they cannot finish, and
//! put the tree back when they fail half-way.
use predicates::{
    prelude::*,
    str::{contains, is_match},
};
use std::{fs, path::Path};

use crate::{assert_code, breakage::*, digest, on_a_terminal, root, run, run_in, sandbox, xtask};

/// Deletes the loose object of a file that Phase 4 left unchanged, and the
/// file itself from the working tree: what an unpushed, locally deleted
/// binary leaves in a real repository (`git fsck` names it).
fn lose_an_unchanged_blob(root: &Path) -> &'static str {
    let path = "src/config.py";
    let id = git(root, &["rev-parse", &format!("HEAD:{path}")]).trim().to_string();
    assert_eq!(id, git(root, &["rev-parse", &format!("pre-phase4:{path}")]).trim(), "unchanged");
    lose_object(root, &id);
    fs::remove_file(root.join(path)).unwrap();
    path
}

/// Deletes one object from the repository, as a lost file in
/// `.git/objects` does. The sandbox templates keep their objects in one
/// pack, so the pack is unpacked into loose objects first.
fn lose_object(root: &Path, id: &str) {
    let packs = root.join(".git/objects/pack");
    for entry in fs::read_dir(&packs).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "pack") {
            let pack = fs::read(&path).unwrap();
            for ext in ["pack", "idx", "rev"] {
                let _ = fs::remove_file(path.with_extension(ext));
            }
            let mut unpack = std::process::Command::new("git")
                .args(["unpack-objects", "-q"])
                .current_dir(root)
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut unpack.stdin.take().unwrap(), &pack).unwrap();
            assert!(unpack.wait().unwrap().success(), "git unpack-objects");
        }
    }
    fs::remove_file(root.join(".git/objects").join(&id[..2]).join(&id[2..])).unwrap();
}

fn head(root: &Path) -> String {
    git(root, &["rev-parse", "HEAD"]).trim().to_string()
}

#[test]
fn a_missing_object_of_an_unchanged_deleted_file_does_not_stop_the_checkout() {
    for (scenario, extra) in [("git", &["--force"][..]), ("complete", &[][..])] {
        let dir = sandbox("phase4");
        let root = root(&dir);
        let lost = lose_an_unchanged_blob(&root);
        let mut args = vec!["rollback", "--scenario", scenario, "--yes"];
        args.extend_from_slice(extra);
        let result = run_in(&root, &args);
        assert_code(&result, 0);
        assert_eq!(head(&root), git(&root, &["rev-parse", "pre-phase4^{commit}"]).trim());
        assert!(!root.join(lost).exists(), "{scenario}: the local deletion was not kept");
        let status = git(&root, &["status", "--porcelain"]);
        assert!(status.contains(&format!(" D {lost}")), "{scenario}: {status}");
        if scenario == "complete" {
            result.stdout_has(contains("left deleted").and(contains(lost)));
        }
    }
}

#[test]
fn a_local_edit_the_checkout_would_overwrite_is_refused_before_step_one() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    lose_an_unchanged_blob(&root);
    let edited = root.join("src/services/verification_service.py");
    let text = fs::read_to_string(&edited).unwrap() + "# a local fix\n";
    fs::write(&edited, text).unwrap();
    let before = digest(&root);
    let result = run_in(&root, &["rollback", "--scenario", "git", "--force", "--yes"]);
    assert_code(&result, 4);
    result.stderr_has(contains("local changes to src/services/verification_service.py"));
    assert_eq!(digest(&root), before, "something changed");
    assert!(!root.join(".tmws-rollback/journal.json").exists(), "a journal was started");
}

#[test]
fn an_object_the_checkout_needs_is_confirmed_present_before_step_one() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let path = "src/services/verification_service.py";
    let id = git(&root, &["rev-parse", &format!("pre-phase4:{path}")]).trim().to_string();
    lose_object(&root, &id);
    let before = digest(&root);
    let result = run_in(&root, &["rollback", "--scenario", "complete", "--yes"]);
    assert_code(&result, 4);
    result.stderr_has(contains("lacks objects").and(contains(path)));
    assert_eq!(digest(&root), before);
}

#[test]
fn a_hard_reset_confirms_the_objects_it_writes_back_before_step_one() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    // A locally edited file the reset must write back, whose blob is lost.
    let path = "src/config.py";
    let id = git(&root, &["rev-parse", &format!("pre-phase4:{path}")]).trim().to_string();
    lose_object(&root, &id);
    fs::write(root.join(path), "# edited\n").unwrap();
    let before = digest(&root);
    for extra in [&["--dry-run"][..], &["--yes"]] {
        let mut args = vec!["rollback", "--scenario", "git", "--commit", "pre-phase4", "--hard"];
        args.extend_from_slice(&["--force"]);
        args.extend_from_slice(extra);
        let result = run_in(&root, &args);
        assert_code(&result, 4);
        result.stderr_has(contains("lacks objects").and(contains(path)));
        assert_eq!(digest(&root), before, "{extra:?} changed the tree");
    }
}

#[test]
fn a_checkout_that_fails_half_way_puts_the_tree_and_head_back() {
    let variants: [&[&str]; 3] = [
        &["--force"],
        &["--commit", "HEAD~1", "--hard", "--force"],
        &["--from", "pre-phase4", "--paths", "src/services/*.py"],
    ];
    for extra in variants {
        let dir = sandbox("phase4");
        let root = root(&dir);
        // A hard reset writes a deleted file back, so it refuses a lost blob
        // before step 1 (a_hard_reset_confirms_the_objects_it_writes_back…).
        if !extra.contains(&"--hard") {
            lose_an_unchanged_blob(&root);
        }
        let (head_before, status_before) = (head(&root), git(&root, &["status", "--porcelain"]));
        let files_before = digest(&root.join("src"));
        let migrations_before = digest(&root.join("migrations"));
        let result = run(xtask()
            .args(["rollback", "--scenario", "git", "--yes", "--root"])
            .arg(&root)
            .args(extra)
            .env("XTASK_GIT_FAULT", "checkout"));
        assert_code(&result, 1);
        result.stderr_has(contains("were put back as they were"));
        assert_eq!(head(&root), head_before, "{extra:?}");
        assert_eq!(git(&root, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(), "main");
        assert_eq!(git(&root, &["status", "--porcelain"]), status_before, "{extra:?}");
        assert_eq!(digest(&root.join("src")), files_before, "{extra:?}");
        assert_eq!(digest(&root.join("migrations")), migrations_before, "{extra:?}");
        assert!(git(&root, &["branch", "--list", "rollback-pre-phase4"]).trim().is_empty());
    }
}

#[test]
fn a_critical_file_absent_at_backup_time_is_moved_into_the_bundle() {
    for scenario in ["files", "complete"] {
        let dir = sandbox("pre-phase4");
        let root = root(&dir);
        let added = "src/services/orchestration.py";
        // The profile (untracked: it must not make git status unclean)
        // lists a file the deploy adds.
        let profile = format!(
            "critical_files = [\"src/domain/value_objects/tool_category.py\", \"src/services/verification_service.py\", \"{added}\"]\n"
        );
        fs::write(root.join("tmws-rollback.toml"), profile).unwrap();
        let backup = run_in(&root, &["backup"]);
        assert_code(&backup, 0);
        backup.stdout_has(contains(format!("absent, recorded as such: {added}")));
        let manifest =
            fs::read_to_string(root.join("backups/pre-phase4/BACKUP_MANIFEST.txt")).unwrap();
        assert!(manifest.contains("format: tmws-backup/5"), "{manifest}");
        assert!(manifest.contains(&format!("absent:\tcritical\t{added}")), "{manifest}");
        assert_code(&run_in(&root, &["verify-backup"]), 0);
        fs::write(root.join(added), "ORCHESTRATION = True\n").unwrap();
        let result = run_in(&root, &["rollback", "--scenario", scenario, "--yes"]);
        assert_code(&result, 0);
        assert!(!root.join(added).exists(), "{scenario}: the added file is still there");
        let bundle = only_bundle(&root);
        assert!(bundle.join("added-since").join(added).is_file(), "{scenario}: not in the bundle");
        let check = run_in(&root, &["post-check", "--only", "files", "--only", "git"]);
        assert_code(&check, 0);
        check.stdout_has(contains("1 absent, as at backup time"));
    }
}

#[test]
fn diagnose_says_what_changed_since_the_backup_and_where_it_was_committed() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let result = run_in(&root, &["diagnose"]);
    assert_code(&result, 0);
    let deployed = git(&root, &["rev-parse", "HEAD"]);
    let line = result
        .stdout
        .lines()
        .find(|l| l.contains("src/services/verification_service.py: changed"))
        .unwrap_or_else(|| panic!("{result:?}"));
    assert!(line.contains(&format!("committed in {}", &deployed[..12])), "{line}");
    result.stdout_has(contains("create_learning_feedback.py: added since the backup"));
}

#[test]
fn a_module_missing_from_the_interpreter_is_the_environment_not_the_deploy() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    // Code that imports a third-party module the interpreter lacks, backed
    // up as it is: nothing was deployed, the environment is at fault.
    fs::write(root.join("src/services/metrics.py"), "import prometheus_client_not_installed\n")
        .unwrap();
    git(&root, &["add", "src/services/metrics.py"]);
    git(&root, &["commit", "-q", "-m", "metrics"]);
    fs::write(
        root.join("tmws-rollback.toml"),
        "critical_files = [\"src/services/verification_service.py\", \"src/services/metrics.py\"]\n\
         critical_modules = [\"src.services.verification_service\", \"src.services.metrics\"]\n",
    )
    .unwrap();
    assert_code(&run_in(&root, &["backup"]), 0);
    let result = run_in(&root, &["diagnose"]);
    assert_code(&result, 1);
    result.stdout_has(contains("the environment, not the deploy"));
    result.stdout_has(contains("no rollback row applies"));
    result.stdout_has(contains("--scenario files").not());
}

#[test]
fn a_module_of_the_tree_that_raises_is_the_deploy_not_the_environment() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    // A critical module that imports a helper of the tree, backed up; then
    // a bad commit in the helper: the critical module itself is unchanged.
    fs::write(root.join("src/services/helper.py"), "VALUE = 1\n").unwrap();
    fs::write(root.join("src/services/metrics.py"), "from src.services import helper\n").unwrap();
    git(&root, &["add", "src/services"]);
    git(&root, &["commit", "-q", "-m", "metrics"]);
    let profile = fs::read_to_string(root.join("tmws-rollback.toml")).unwrap();
    let profile =
        profile.replace("critical_modules = [", "critical_modules = [\"src.services.metrics\", ");
    let profile =
        profile.replace("critical_files = [", "critical_files = [\"src/services/metrics.py\", ");
    fs::write(root.join("tmws-rollback.toml"), profile).unwrap();
    git(&root, &["commit", "-q", "-am", "profile"]);
    assert_code(&run_in(&root, &["backup", "--label", "pre-helper"]), 0);
    fs::write(root.join("src/services/helper.py"), "raise RuntimeError(\"bad settings\")\n")
        .unwrap();
    git(&root, &["commit", "-q", "-am", "helper"]);
    let result = run_in(&root, &["diagnose", "--label", "pre-helper"]);
    assert_code(&result, 1);
    result.stdout_has(contains("RuntimeError: bad settings"));
    result.stdout_has(contains("the environment, not the deploy").not());
    result.stdout_has(contains("recommendation: cargo xtask rollback --scenario"));
}

#[test]
fn diagnose_and_post_check_report_an_unfinished_rollback_first() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    crate::crash_rollback(&root, "database", "after:2");
    let diagnosis = run_in(&root, &["diagnose"]);
    assert_code(&diagnosis, 1);
    diagnosis.stdout_has(contains("rollback.unfinished"));
    diagnosis.stdout_has(contains("--resume --root"));
    diagnosis.stdout_has(contains("--scenario complete").not());
    let check = run_in(&root, &["post-check", "--only", "rollback"]);
    assert_code(&check, 1);
    check.stdout_has(contains("rollback.unfinished"));
}

/// `init` writes a profile from what the checkout says, and then the other
/// commands need nothing more: on the fixture, and on a variant laid out
/// otherwise (database elsewhere, another URL variable, another app module).
#[test]
fn init_writes_a_profile_that_backup_verify_and_diagnose_accept() {
    for variant in [false, true] {
        let dir = sandbox("pre-phase4");
        let root = root(&dir);
        // A checkout that has no profile yet.
        fs::remove_file(root.join("tmws-rollback.toml")).unwrap();
        if variant {
            fs::create_dir_all(root.join("var")).unwrap();
            fs::rename(root.join("data/tmws.db"), root.join("var/service.sqlite")).unwrap();
            for (file, from, to) in [
                ("alembic.ini", "sqlite:///data/tmws.db", "sqlite:///var/service.sqlite"),
                ("migrations/env.py", "TMWS_DATABASE_URL", "SERVICE_DB_URL"),
            ] {
                let text = fs::read_to_string(root.join(file)).unwrap().replace(from, to);
                fs::write(root.join(file), text).unwrap();
            }
            fs::create_dir_all(root.join("src/api")).unwrap();
            fs::write(root.join("src/api/__init__.py"), "").unwrap();
            git(&root, &["mv", "src/main.py", "src/api/app.py"]);
            git(&root, &["add", "-A"]);
            git(&root, &["commit", "-q", "-m", "another layout"]);
        }
        let init = run(xtask().arg("init").arg("--root").arg(&root));
        assert_code(&init, 0);
        let profile = fs::read_to_string(root.join("tmws-rollback.toml")).unwrap();
        let (db, url, app) = if variant {
            ("var/service.sqlite", "SERVICE_DB_URL", "src.api.app:app")
        } else {
            ("data/tmws.db", "TMWS_DATABASE_URL", "src.main:app")
        };
        for line in [
            format!("database = \"{db}\""),
            format!("database_url_env = \"{url}\""),
            format!("app = \"{app}\""),
        ] {
            assert!(profile.contains(&line), "{line} missing from:\n{profile}");
        }
        assert_code(&run_in(&root, &["backup"]), 0);
        assert_code(&run_in(&root, &["verify-backup"]), 0);
        let diagnosis = run_in(&root, &["diagnose"]);
        assert_code(&diagnosis, 0);
        let again = run(xtask().arg("init").arg("--root").arg(&root));
        assert_code(&again, 0);
        again.stderr_has(contains("agrees with what init found"));
        let edited = profile.replace(&format!("database = \"{db}\""), "database = \"x.db\"");
        fs::write(root.join("tmws-rollback.toml"), edited).unwrap();
        let disagreeing = run(xtask().arg("init").arg("--root").arg(&root));
        assert_code(&disagreeing, 2);
        disagreeing.stderr_has(
            contains("never overwrites").and(contains("database: the profile says \"x.db\"")),
        );
    }
}

/// The checkout's pytest configuration writes a report into the tree; the
/// check runs the tests with that configuration minus the report, and the
/// tree (ignored files included) is as it was. Bytecode is allowed by the
/// environment here, as on a user's machine.
#[test]
fn post_check_runs_the_checkouts_tests_without_writing_into_the_tree() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    fs::write(root.join("pytest.ini"), "[pytest]\naddopts = -q\n  --junitxml=test_report.xml\n")
        .unwrap();
    git(&root, &["add", "pytest.ini"]);
    git(&root, &["commit", "-q", "-m", "pytest configuration with a report"]);
    let ignored = |root: &Path| git(root, &["status", "--ignored", "--porcelain"]);
    let before = ignored(&root);
    let result = run(xtask()
        .args(["post-check", "--only", "tests", "--root"])
        .arg(&root)
        .env_remove("PYTHONDONTWRITEBYTECODE"));
    assert_code(&result, 0);
    assert_eq!(ignored(&root), before, "post-check wrote into the tree:\n{result:?}");
    assert!(!root.join("test_report.xml").exists());
    result.stdout_has(contains("python: "));
}

#[test]
fn a_test_group_with_no_configured_file_is_not_applicable() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    fs::write(
        root.join("tmws-rollback.toml"),
        "test_files = [\"tests/unit/services/test_verification_service.py\"]\n",
    )
    .unwrap();
    let result = run_in(&root, &["post-check", "--only", "tests"]);
    assert_code(&result, 0);
    let line = result.stdout.lines().find(|l| l.starts_with("tests.integration")).unwrap();
    assert!(
        line.contains("n/a") && line.contains("no integration test file is configured"),
        "{line}"
    );
}

/// README's "after a normal deploy, no backup" example: the checks that
/// compare with a backup are not applicable, unless --require-backup.
#[test]
fn post_check_without_a_backup_passes_a_healthy_tree() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    fs::remove_dir_all(root.join("backups")).unwrap();
    let args = ["post-check", "--expect-revision", "head", "--skip", "forensics"];
    let result = run_in(&root, &args);
    assert_code(&result, 0);
    result.stdout_has(contains("not applicable: there is no backup pre-phase4"));
    let mut strict = args.to_vec();
    strict.push("--require-backup");
    assert_code(&run_in(&root, &strict), 1);
}

/// A backup of a working tree with an uncommitted change records it; after a
/// complete rollback the tree holds that change again, and post-check says
/// why git status shows it instead of failing.
#[test]
fn a_backup_of_a_dirty_tree_records_and_explains_the_uncommitted_change() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    let file = "src/services/verification_service.py";
    let text = fs::read_to_string(root.join(file)).unwrap() + "# hotfix on the server\n";
    fs::write(root.join(file), text).unwrap();
    let backup = run_in(&root, &["backup"]);
    assert_code(&backup, 0);
    backup.stdout_has(contains("uncommitted changes recorded"));
    let manifest = fs::read_to_string(root.join("backups/pre-phase4/BACKUP_MANIFEST.txt")).unwrap();
    assert!(
        manifest.contains(&format!("worktree:\t{}\t{file}", sha256(&root.join(file)))),
        "{manifest}"
    );
    let result = run_in(&root, &["rollback", "--scenario", "complete", "--yes"]);
    assert_code(&result, 0);
    let check = run_in(&root, &["post-check", "--only", "git"]);
    assert_code(&check, 0);
    check.stdout_has(contains("the changes the backup recorded as uncommitted"));
}

/// Revision ids of any form: a hand-named revision is what alembic reports
/// for the preserved database, and the bundle notes no problem with it.
#[test]
fn a_revision_id_that_is_not_hex_is_understood() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    let file = root.join("migrations/versions/add_tool_discovery_001.py");
    fs::write(
        &file,
        format!(
            "from alembic import op\nimport sqlalchemy as sa\n\nrevision = \"add_tool_discovery_001\"\ndown_revision = \"{PRE_PHASE4_HEAD}\"\n\n\ndef upgrade() -> None:\n    op.create_table(\"tool_discovery\", sa.Column(\"id\", sa.Integer, primary_key=True))\n\n\ndef downgrade() -> None:\n    op.drop_table(\"tool_discovery\")\n"
        ),
    )
    .unwrap();
    migrate(&root, &["upgrade", "head"]);
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "tool discovery"]);
    assert_code(&run_in(&root, &["backup"]), 0);
    let result = run_in(&root, &["forensics"]);
    assert_code(&result, 0);
    let bundle = only_bundle(&root);
    let current = fs::read_to_string(bundle.join("alembic-current.txt")).unwrap();
    assert!(current.contains("add_tool_discovery_001"), "{current}");
    assert_eq!(facts(&bundle)["problems"], serde_json::json!([]));
}

#[test]
fn quiet_hides_the_command_lines_and_verbose_shows_them_whole() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let quiet = run_in(&root, &["diagnose", "-q"]);
    assert_code(&quiet, 0);
    quiet.stderr_has(is_match(r"(?m)^\$ ").unwrap().not());
    let normal = run_in(&root, &["diagnose"]);
    // A long line is named, never cut into something that looks runnable.
    normal.stderr_has(
        is_match(r"(?m)^\$ \S+ \[a line of \d+ characters: -v shows it whole\]$").unwrap(),
    );
    normal.stderr_has(is_match(r"(?m)^\$ .*…$").unwrap().not());
    let verbose = run_in(&root, &["diagnose", "-v"]);
    verbose.stderr_has(contains("traceback").and(contains("-v shows it").not()));
}

/// Progress shows on a terminal (here after 0 ms instead of a second), and
/// nothing of it when stderr is not a terminal or with -q.
#[test]
fn progress_shows_on_a_terminal_only() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let progress = "XTASK_PROGRESS_AFTER_MS=0";
    let on_terminal = on_a_terminal(&root, "verify-backup", "", progress);
    on_terminal.stdout_has(contains("integrity_check: ").or(contains("sha256 ")));
    let piped = run(xtask()
        .args(["verify-backup", "--root"])
        .arg(&root)
        .env("XTASK_PROGRESS_AFTER_MS", "0"));
    assert_code(&piped, 0);
    piped.stderr_has(contains('\r').not());
    let quiet = on_a_terminal(&root, "verify-backup -q", "", progress);
    quiet.stdout_has(contains("integrity_check: ").not());
}

/// A backup folder copied to another checkout of the repository, where its
/// tag does not exist: verify-backup says so and what makes it again; the
/// git and complete rollbacks make it again at the manifest's commit (the
/// plan says so first); a `--no-tag` backup gets no tag made for it (exit
/// 4, with the command). A missing label lists the labels that exist.
#[test]
fn a_backup_copied_to_another_checkout_works_without_its_tag() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    assert_code(&run_in(&root, &["backup", "--label", "nightly", "--no-tag"]), 0);
    git(&root, &["tag", "-d", "pre-phase4"]);
    let commit = |label: &str| {
        let manifest =
            fs::read_to_string(root.join(format!("backups/{label}/BACKUP_MANIFEST.txt"))).unwrap();
        manifest.lines().find_map(|l| l.strip_prefix("git-commit: ")).unwrap().to_string()
    };
    let (tagged, untagged) = (commit("pre-phase4"), commit("nightly"));
    let verify = run_in(&root, &["verify-backup"]);
    assert_code(&verify, 0);
    verify.stdout_has(
        contains("the git and complete rollbacks make it again at that commit")
            .and(contains(format!("git tag pre-phase4 {tagged}"))),
    );
    let before = digest(&root);
    let refused = run_in(&root, &["rollback", "--scenario", "complete", "--label", "nightly"]);
    assert_code(&refused, 4);
    refused.stderr_has(
        contains("backup nightly was taken with --no-tag")
            .and(contains(format!("git tag nightly {untagged}"))),
    );
    let planned = run_in(&root, &["rollback", "--scenario", "complete", "--dry-run"]);
    assert_code(&planned, 0);
    let remake = format!("make tag pre-phase4 again at the manifest's commit {}", &tagged[..12]);
    planned.stdout_has(contains(remake.as_str()));
    assert_eq!(digest(&root), before, "the refusal and the dry run changed nothing");
    let rolled = run_in(&root, &["rollback", "--scenario", "git", "--yes", "--force"]);
    assert_code(&rolled, 0);
    rolled.stdout_has(contains(format!(
        "made tag pre-phase4 again at the manifest's commit {}; checked out rollback-pre-phase4",
        &tagged[..12]
    )));
    assert_eq!(git(&root, &["rev-parse", "pre-phase4^{commit}"]).trim(), tagged);
    assert_eq!(head(&root), tagged);
    assert!(git(&root, &["tag", "--list", "nightly"]).trim().is_empty());
    corrupt_database(&root);
    assert_code(&run_in(&root, &["rollback", "--scenario", "database", "--yes"]), 0);
    let missing =
        run_in(&root, &["rollback", "--scenario", "database", "--yes", "--label", "nosuch"]);
    assert_code(&missing, 2);
    missing.stderr_has(contains("the backups here are: nightly, pre-phase4"));
}

#[test]
fn list_shows_each_backup_and_its_state() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    assert_code(&run_in(&root, &["backup", "--label", "nightly", "--no-tag"]), 0);
    assert_code(&run_in(&root, &["verify-backup"]), 0);
    crate::crash_rollback(&root, "files", "after:1");
    let result = run_in(&root, &["list", "--format", "json"]);
    assert_code(&result, 0);
    let json: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    crate::schema::assert_valid("list", &json);
    let labels: Vec<&str> =
        json["backups"].as_array().unwrap().iter().map(|b| b["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["pre-phase4", "nightly"], "oldest first");
    let (old, new) = (&json["backups"][0], &json["backups"][1]);
    assert_eq!(old["tag_here"], true);
    assert_eq!(new["tag_here"], false);
    assert_eq!(old["verification"]["state"], "unchanged", "{old}");
    assert!(old["verification"]["verified"].is_string(), "{old}");
    assert_eq!(new["verification"], serde_json::json!({"state": "never", "verified": null}));
    assert!(json["unfinished_rollback"].as_str().unwrap().contains("--scenario files"), "{json}");
    let human = run_in(&root, &["list"]);
    human.stdout_has(contains("unfinished rollback --scenario files"));
}

#[test]
fn prune_keeps_the_newest_and_the_pre_deploy_backup() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    for label in ["a", "b", "c"] {
        assert_code(&run_in(&root, &["backup", "--label", label, "--no-tag"]), 0);
    }
    let before = digest(&root.join("backups"));
    let dry = run_in(&root, &["prune", "--keep", "1", "--dry-run"]);
    assert_code(&dry, 0);
    dry.stdout_has(contains("remove backups/b").and(contains("remove backups/a")));
    dry.stdout_has(contains("keep   pre-phase4 (the pre-deploy backup"));
    let unconfirmed = run(xtask()
        .args(["prune", "--keep", "1", "--root"])
        .arg(&root)
        .stdin(std::process::Stdio::null()));
    assert_code(&unconfirmed, 4);
    let typo = run_in(&root, &["prune", "--keep", "1", "--force", "nope", "--yes"]);
    assert_code(&typo, 2);
    typo.stderr_has(contains("the backups here are: a, b, c, pre-phase4"));
    assert_eq!(digest(&root.join("backups")), before, "something was removed");
    assert_code(&run_in(&root, &["prune", "--keep", "1", "--yes"]), 0);
    let mut left: Vec<String> = fs::read_dir(root.join("backups"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["c", "pre-phase4"]);
}

/// README: after a complete rollback the tree equals the tag and `git
/// status` is clean, over a detached HEAD too; a local edit of a tracked
/// file the deploy did not change is kept in the bundle, not in the tree.
#[test]
fn a_complete_rollback_leaves_git_status_clean_and_keeps_local_edits_in_the_bundle() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    git(&root, &["checkout", "-q", "--detach"]);
    let unchanged = git(&root, &["diff", "--name-only", "pre-phase4", "HEAD"]);
    let tracked = git(&root, &["ls-files", "*.md"]);
    let path = tracked
        .lines()
        .find(|p| !unchanged.lines().any(|c| c == *p))
        .expect("a tracked file the deploy did not change")
        .to_string();
    fs::write(root.join(&path), "an operator's local edit\n").unwrap();
    fs::write(root.join("src/config.py"), "# staged edit\n").unwrap();
    git(&root, &["add", "src/config.py"]);
    let result = run_in(&root, &["rollback", "--scenario", "complete", "--yes"]);
    assert_code(&result, 0);
    let status = git(&root, &["status", "--porcelain"]);
    assert_eq!(status, "", "git status after a complete rollback");
    assert_eq!(head(&root), git(&root, &["rev-parse", "pre-phase4^{commit}"]).trim());
    let bundles: Vec<_> = fs::read_dir(root.join("forensics")).unwrap().flatten().collect();
    assert_eq!(bundles.len(), 1);
    let kept = bundles[0].path().join("worktree").join(&path);
    let kept = fs::read_to_string(&kept)
        .unwrap_or_else(|e| panic!("{} not kept in the bundle: {e}", kept.display()));
    assert_eq!(kept, "an operator's local edit\n");
}
