//! The checks on fixture variants, each a property of a real service
//! (fixtures/variants/): a strict pytest configuration, a health endpoint
//! of another shape, a detached HEAD after a deploy.
use std::fs;

use predicates::{prelude::*, str::contains};

use crate::{breakage::git, root, run_in, sandbox, sandbox_variant};

#[test]
fn a_strict_pytest_configuration_runs_as_configured() {
    let dir = sandbox_variant("backed-up", "strict-pytest");
    let root = root(&dir);
    let result = run_in(&root, &["post-check", "--only", "tests"]);
    result.exits(0).stdout_has(contains("6 passed, 0 failed of 6"));
}

#[test]
fn health_is_what_the_profile_says_it_is() {
    let dir = sandbox_variant("backed-up", "other-health");
    let root = root(&dir);
    let profile = root.join("tmws-rollback.toml");
    let base = fs::read_to_string(&profile).unwrap();
    // init's profile without its health lines: each case writes its own.
    let base: String = base
        .lines()
        .filter(|l| !l.starts_with("health_path") && !l.contains("health route"))
        .map(|l| format!("{l}\n"))
        .collect();
    for (health, code, detail) in [
        ("health_path = \"/healthz\"\n", 0, "HTTP 200"),
        (
            "health_path = \"/healthz\"\nhealth_json = { \"/ok\" = \"true\", \"/checks/db\" = \"up\" }\n",
            0,
            "HTTP 200, /checks/db \\\"up\\\", /ok \\\"true\\\"",
        ),
        (
            "health_path = \"/healthz\"\nhealth_json = { \"/status\" = \"healthy\" }\n",
            1,
            "no /status in the answer",
        ),
        (
            "health_path = \"/healthz\"\nhealth_revision = \"/revision\"\n",
            1,
            "no revision at /revision",
        ),
    ] {
        fs::write(&profile, format!("{base}{health}")).unwrap();
        let result = run_in(&root, &["post-check", "--only", "server", "--format", "json"]);
        result.exits(code).stdout_has(contains(detail));
    }
    fs::write(&profile, format!("{base}health_json = {{ \"ok\" = \"true\" }}\n")).unwrap();
    let bad = run_in(&root, &["post-check", "--only", "server"]);
    bad.exits(2).stderr_has(contains("is not a JSON pointer"));
}

#[test]
fn a_detached_head_at_the_deploy_is_not_a_fault() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let deployed = git(&root, &["rev-parse", "HEAD"]).trim().to_string();
    git(&root, &["checkout", "-q", "--detach"]);
    let plain = run_in(&root, &["diagnose"]);
    plain.stdout_has(contains("(detached) contains tag pre-phase4"));
    let expected = run_in(&root, &["diagnose", "--expect-commit", &deployed]);
    expected.stdout_has(contains("git.expected-commit").and(contains("expected")));
    assert!(
        expected
            .stdout
            .lines()
            .any(|l| l.starts_with("git.expected-commit") && l.contains(" pass ")),
        "{expected:?}"
    );
}

#[test]
fn alembic_at_the_root_logging_to_stdout_rolls_back_and_checks_clean() {
    let dir = sandbox_variant("phase4", "alembic-at-root");
    let root = root(&dir);
    let profile = fs::read_to_string(root.join("tmws-rollback.toml")).unwrap();
    assert!(profile.contains("migrations = \"alembic/versions\""), "init found: {profile}");
    run_in(&root, &["verify-backup"]).exits(0);
    run_in(&root, &["rollback", "--scenario", "migration", "--yes"]).exits(0);
    // Judged as what the migration scenario restored; the code it keeps is
    // not held against it.
    let check = run_in(&root, &["post-check"]);
    check.exits(0).stdout_has(contains("judged: the last rollback (--scenario migration)"));
    check.stdout_has(contains("which keeps what this check judges"));
}

#[test]
fn after_a_deploy_nothing_is_compared_with_the_backup() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let check = run_in(&root, &["post-check", "--after", "deploy", "--skip", "tests,server"]);
    check.exits(0).stdout_has(contains("f1c7e3a9b5d4, expected f1c7e3a9b5d4"));
    check.stdout_has(contains("after a deploy (--after deploy) nothing is compared"));
    let typo = run_in(&root, &["post-check", "--after", "deplyo"]);
    typo.exits(2).stderr_has(contains("use deploy or rollback"));
}

#[test]
fn an_unknown_label_is_a_usage_error_that_lists_the_labels() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    for command in ["post-check", "diagnose", "verify-backup"] {
        let result = run_in(&root, &[command, "--label", "pre-phase5"]);
        result.exits(2).stderr_has(contains("pre-phase4"));
    }
}

/// init on each variant finds what the sandbox's committed profile says
/// (the sandbox writes init's profile, plus the fixture's health answer),
/// and with it the backup verifies.
fn init_describes_the_variant(variant: &str) {
    let dir = sandbox_variant("phase4", variant);
    let root = root(&dir);
    let init = run_in(&root, &["init", "--dry-run"]);
    init.exits(0).stderr_has(contains("agrees with what init found"));
    run_in(&root, &["verify-backup"]).exits(0);
}

/// With that profile, a migration rollback and post-check, every group of
/// it, need no hand edit. The everyday run leaves this to each variant's
/// own tests (its property, checked where it matters) and CI runs it too,
/// beside the convergence table on every break of the variant.
fn the_variant_rolls_back_and_checks_whole(variant: &str) {
    let dir = sandbox_variant("phase4", variant);
    let root = root(&dir);
    run_in(&root, &["rollback", "--scenario", "migration", "--yes"]).exits(0);
    let check = run_in(&root, &["post-check", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&check.stdout).unwrap();
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    // The app that migrates when it starts would undo the rollback: the
    // health check (on its copy) and the restart check say so, and nothing
    // else fails.
    let expected: &[&str] = match variant {
        "migrates-at-start" => &["server.health", "server.restart"],
        _ => &[],
    };
    assert_eq!(failed, expected, "{variant}: {check:?}");
}

/// Two tests per variant, so that they run side by side.
macro_rules! init_describes {
    ($($init:ident, $whole:ident: $variant:literal,)*) => {$(
        #[test]
        fn $init() {
            init_describes_the_variant($variant);
        }

        #[test]
        fn $whole() {
            the_variant_rolls_back_and_checks_whole($variant);
        }
    )*};
}

init_describes! {
    init_describes_alembic_at_the_root, whole_cycle_of_alembic_at_the_root: "alembic-at-root",
    init_describes_an_app_that_migrates_at_start, whole_cycle_of_an_app_that_migrates_at_start: "migrates-at-start",
    init_describes_another_health_shape, whole_cycle_of_another_health_shape: "other-health",
    init_describes_a_migration_the_probe_cannot_render, whole_cycle_of_a_migration_the_probe_cannot_render: "probe-fails",
    init_describes_a_settings_class, whole_cycle_of_a_settings_class: "settings-class",
    init_describes_a_strict_pytest, whole_cycle_of_a_strict_pytest: "strict-pytest",
    init_describes_an_app_slow_to_start, whole_cycle_of_an_app_slow_to_start: "slow-start",
    init_describes_untracked_data, whole_cycle_of_untracked_data: "untracked-data",
    init_describes_a_column_migration, whole_cycle_of_a_column_migration: "column-migration",
    init_describes_a_computed_database_path, whole_cycle_of_a_computed_database_path: "computed-path",
    init_describes_a_wsgi_factory, whole_cycle_of_a_wsgi_factory: "wsgi-factory",
    init_describes_a_flask_migrate_service, whole_cycle_of_a_flask_migrate_service: "flask-migrate",
    init_describes_revisions_in_several_folders, whole_cycle_of_revisions_in_several_folders: "version-locations",
}

/// Settings that compute the database's path, beside a docstring whose
/// strings look like a path and a variable: init takes both from the
/// service's own alembic environment, never from the strings, and a
/// profile holding the strings' values is told apart from the right one.
#[test]
fn init_asks_the_service_not_its_strings() {
    let dir = sandbox_variant("backed-up", "computed-path");
    let root = root(&dir);
    let right = fs::read_to_string(root.join("tmws-rollback.toml")).unwrap();
    fs::remove_file(root.join("tmws-rollback.toml")).unwrap();
    let init = run_in(&root, &["init", "--dry-run"]);
    init.exits(0).stdout_has(
        contains("database = \"state/service.sqlite\"")
            .and(contains("database_url_env = \"TMWS_STATE_URL\""))
            .and(contains("alembic opens it"))
            .and(contains("path/to/your").not()),
    );
    let wrong = right.replace(
        "database_url_env = \"TMWS_STATE_URL\"",
        "database_url_env = \"TMWS_TMWS_DATABASE_URL\"",
    );
    fs::write(root.join("tmws-rollback.toml"), &wrong).unwrap();
    let refused = run_in(&root, &["init", "--dry-run"]);
    refused.exits(2).stderr_has(contains("TMWS_TMWS_DATABASE_URL"));
    fs::write(root.join("tmws-rollback.toml"), &right).unwrap();
    run_in(&root, &["init", "--dry-run"]).exits(0).stderr_has(contains("agrees"));
}

/// A checkout without the runbook's files: init names the service from
/// pyproject.toml, finds the app through its [project.scripts] entry, takes
/// the test folder whole, and does not borrow the runbook's label; backup
/// and verify-backup then work on that label, and the bundle is the
/// service's.
#[test]
fn init_on_a_service_without_the_runbooks_files_borrows_nothing_from_it() {
    let dir = crate::sandbox("pre-phase4");
    let root = root(&dir);
    let profile = crate::breakage::git(&root, &["show", "HEAD:tmws-rollback.toml"]);
    let defaults: toml::Table = profile.parse().unwrap();
    let runbook = ["critical_files", "test_files"]
        .iter()
        .flat_map(|key| defaults[*key].as_array().unwrap().clone())
        .map(|f| f.as_str().unwrap().to_string());
    for file in runbook {
        let _ = std::fs::remove_file(root.join(file));
    }
    std::fs::remove_file(root.join("tmws-rollback.toml")).unwrap();
    let pyproject = std::fs::read_to_string(root.join("pyproject.toml")).unwrap();
    let pyproject = pyproject.replace("name = \"tmws\"", "name = \"ledger\"")
        + "\n[project.scripts]\nledger-serve = \"src.main:run\"\n";
    std::fs::write(root.join("pyproject.toml"), pyproject).unwrap();
    let init = run_in(&root, &["init", "--format", "json"]);
    init.exits(0);
    let json: serde_json::Value = serde_json::from_str(&init.stdout).unwrap();
    crate::schema::assert_valid("init", &json);
    let text = json["text"].as_str().unwrap();
    for line in [
        "service = \"ledger\"",
        "label = \"pre-deploy\"",
        "critical_files = []",
        "test_files = [\"tests\"]",
        "app = \"src.main:app\"",
        "the entry point ledger-serve in pyproject.toml",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    run_in(&root, &["backup", "--no-tag"]).exits(0);
    assert!(root.join("backups/pre-deploy").is_dir());
    run_in(&root, &["verify-backup"]).exits(0);
    run_in(&root, &["forensics"]).exits(0);
    let report = std::fs::read_dir(root.join("forensics")).unwrap().next().unwrap().unwrap();
    let report = std::fs::read_to_string(report.path().join("FAILURE_REPORT.md")).unwrap();
    assert!(report.starts_with("# ledger Deployment Failure Report"), "{report}");
}

/// Tests inside the package, under names the runbook does not know: init
/// takes their folders from pytest's own collection.
#[test]
fn init_finds_tests_inside_the_package_through_pytests_collection() {
    let dir = crate::sandbox("pre-phase4");
    let root = root(&dir);
    std::fs::remove_file(root.join("tmws-rollback.toml")).unwrap();
    std::fs::rename(root.join("tests"), root.join("src/tests")).unwrap();
    for (from, to) in [
        ("unit/services/test_verification_service.py", "unit/services/test_checks.py"),
        ("unit/services/test_verification_learning_integration.py", "unit/services/test_more.py"),
        ("integration/test_go_python_category_sync.py", "integration/test_sync.py"),
    ] {
        let tests = root.join("src/tests");
        std::fs::rename(tests.join(from), tests.join(to)).unwrap();
    }
    let pyproject = std::fs::read_to_string(root.join("pyproject.toml")).unwrap();
    let pyproject = pyproject.replace("testpaths = [\"tests\"]", "testpaths = [\"src/tests\"]");
    std::fs::write(root.join("pyproject.toml"), pyproject).unwrap();
    let init = run_in(&root, &["init", "--dry-run"]);
    init.exits(0).stdout_has(contains(
        "test_files = [\"src/tests/integration\", \"src/tests/unit/services\"]",
    ));
}
