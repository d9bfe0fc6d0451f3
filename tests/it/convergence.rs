//! diagnose converges: from every break, following its recommended command
//! leads to a tree it calls healthy, in one action (two only where it names
//! the second up front), never through "nothing changed", and post-check
//! passes at the end. Every break, on the fixture and on each variant (the
//! slow-start variant's property, the server's wait, is no part of
//! convergence: check_copies covers it). The everyday test profile runs
//! the fixture's table; CI's runs every variant's too.
use std::path::Path;

use predicates::str::contains;

use crate::{Run, assert_code, breakage::*, root, run, run_in, sandbox, sandbox_variant, xtask};

/// diagnose's document.
fn diagnose(root: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["diagnose", "--format", "json"];
    args.extend_from_slice(extra);
    let result = run_in(root, &args);
    let json: serde_json::Value =
        serde_json::from_str(&result.stdout).unwrap_or_else(|e| panic!("{e}: {result:?}"));
    crate::schema::assert_valid("diagnose", &json);
    let healthy = json["recommendation"] == "healthy";
    assert_eq!(result.code, if healthy { 0 } else { 1 }, "{result:?}");
    json
}

/// Runs a command diagnose printed (`cargo xtask ARGS`), with --yes.
fn run_printed(command: &str) -> Run {
    let args: Vec<&str> = command.strip_prefix("cargo xtask ").unwrap().split(' ').collect();
    run(xtask().args(args).arg("--yes"))
}

/// Follows diagnose from a broken tree until it says healthy: the rows it
/// recommended, in order. Panics on a step that goes round in circles.
fn follow(root: &Path, extra: &[&str]) -> Vec<String> {
    let mut rows = Vec::new();
    let mut named_then = false;
    loop {
        let json = diagnose(root, extra);
        let recommendation = json["recommendation"].as_str().unwrap().to_string();
        if recommendation == "healthy" {
            return rows;
        }
        let command = json["rollback"].as_str().unwrap_or_else(|| panic!("no rollback: {json}"));
        assert!(
            rows.is_empty() || (rows.len() == 1 && named_then),
            "a further action {command} after {rows:?}, not named up front: {json}"
        );
        named_then = json["then"].is_string();
        let result = run_printed(command);
        assert_code(&result, 0);
        assert!(
            !result.stdout.contains("nothing changed"),
            "{command} changed nothing: {result:?}"
        );
        rows.push(recommendation);
    }
}

/// A break, the diagnose flags it needs, and the rows that mend it.
struct Break {
    name: &'static str,
    /// The sandbox stage it starts from.
    stage: &'static str,
    make: fn(&Path) -> Vec<String>,
    rows: &'static [&'static str],
}

const BREAKS: &[Break] = &[
    Break { name: "backed up", stage: "backed-up", make: |_| Vec::new(), rows: &[] },
    Break { name: "deployed", stage: "phase4", make: |_| Vec::new(), rows: &[] },
    Break {
        name: "database",
        stage: "phase4",
        make: |r| no_flag(corrupt_database(r)),
        rows: &["database", "migration"],
    },
    Break {
        name: "migration",
        stage: "phase4",
        make: |r| {
            half_apply_phase4_head(r);
            Vec::new()
        },
        rows: &["migration", "git"],
    },
    Break {
        name: "files",
        stage: "phase4",
        make: |r| no_flag(break_import(r, CRITICAL)),
        rows: &["files"],
    },
    Break { name: "git", stage: "phase4", make: expect_deployed_then_bad_commit, rows: &["git"] },
    Break { name: "complete", stage: "phase4", make: several, rows: &["complete"] },
    Break {
        name: "database behind the code",
        stage: "phase4",
        make: database_rolled_back,
        rows: &["migration"],
    },
    Break {
        name: "code back, database ahead",
        stage: "phase4",
        make: code_rolled_back,
        rows: &["database"],
    },
    Break {
        name: "a commit that breaks a module",
        stage: "phase4",
        make: breaking_commit,
        rows: &["git"],
    },
    Break {
        name: "a detached HEAD before the deploy",
        stage: "phase4",
        make: |r| {
            git(r, &["checkout", "-q", "--detach", "HEAD~1"]);
            Vec::new()
        },
        rows: &["git"],
    },
    Break {
        name: "a broken file that is not critical",
        stage: "phase4",
        make: break_the_app,
        rows: &["git"],
    },
    Break {
        name: "a commit that breaks the app's module",
        stage: "phase4",
        make: |r| {
            break_the_app(r);
            git(r, &["commit", "-q", "-am", "WIP: breaks the app"]);
            Vec::new()
        },
        rows: &["git"],
    },
];

const CRITICAL: &str = "src/services/learning_trust_integration.py";

fn no_flag<T>(_: T) -> Vec<String> {
    Vec::new()
}

fn expect_deployed_then_bad_commit(root: &Path) -> Vec<String> {
    let deployed = git(root, &["rev-parse", "HEAD"]).trim().to_string();
    bad_commit(root);
    vec!["--expect-commit".into(), deployed]
}

fn several(root: &Path) -> Vec<String> {
    half_apply_phase4_head(root);
    break_import(root, CRITICAL);
    corrupt_database(root);
    Vec::new()
}

fn database_rolled_back(root: &Path) -> Vec<String> {
    assert_code(&run_in(root, &["rollback", "--scenario", "database", "--yes"]), 0);
    Vec::new()
}

fn code_rolled_back(root: &Path) -> Vec<String> {
    assert_code(&run_in(root, &["rollback", "--scenario", "git", "--force", "--yes"]), 0);
    Vec::new()
}

fn breaking_commit(root: &Path) -> Vec<String> {
    break_import(root, CRITICAL);
    git(root, &["commit", "-q", "-am", "WIP: breaks a module"]);
    Vec::new()
}

/// A syntax error in the app's module, which is no critical file.
fn break_the_app(root: &Path) -> Vec<String> {
    let profile = std::fs::read_to_string(root.join("tmws-rollback.toml")).unwrap();
    let app = profile.lines().find_map(|l| l.strip_prefix("app = ")).unwrap();
    let module = app.trim_matches('"').split(':').next().unwrap().replace('.', "/");
    let file = root.join(format!("{module}.py"));
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}\ndef broken(:\n")).unwrap();
    Vec::new()
}

/// Follows diagnose from each break on one tree kind to a healthy tree and
/// a passing post-check (with `post_check`'s flags).
fn table(variant: Option<&str>, post_check: &[&str]) {
    for b in BREAKS {
        let dir = match variant {
            Some(v) => sandbox_variant(b.stage, v),
            None => sandbox(b.stage),
        };
        let root = root(&dir);
        let extra = (b.make)(&root);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let rows = follow(&root, &extra);
        assert_eq!(rows, b.rows, "{variant:?} {}", b.name);
        if rows.is_empty() {
            continue; // Healthy as it was: nothing was rolled back to check.
        }
        let mut args = vec!["post-check"];
        args.extend_from_slice(post_check);
        let check = run_in(&root, &args);
        assert_code(&check, 0);
        check.stdout_has(contains("passed"));
    }
}

#[test]
fn every_break_converges_on_the_fixture() {
    table(None, &[]);
}

/// One test per variant, so that they run side by side, each on every
/// break, its post-check at the end on the groups its property reaches
/// (`skipping` what it cannot run: a variant without tests of its own, a
/// server check the fixture's own tests already pass).
macro_rules! tables {
    ($($test:ident: $variant:literal skipping $skip:literal,)*) => {$(
        #[test]
        fn $test() {
            table(Some($variant), &["--skip", $skip]);
        }
    )*};
}

tables! {
    every_break_converges_with_alembic_at_the_root: "alembic-at-root" skipping "tests,server",
    every_break_converges_with_an_app_that_migrates_at_start: "migrates-at-start" skipping "tests",
    every_break_converges_with_another_health_shape: "other-health" skipping "tests",
    every_break_converges_with_a_migration_the_probe_cannot_render: "probe-fails" skipping "tests,server",
    every_break_converges_with_a_settings_class: "settings-class" skipping "tests",
    every_break_converges_with_a_computed_database_path: "computed-path" skipping "tests",
    every_break_converges_with_a_strict_pytest: "strict-pytest" skipping "server",
    every_break_converges_with_untracked_data: "untracked-data" skipping "tests",
    every_break_converges_with_a_column_migration: "column-migration" skipping "tests,server",
    every_break_converges_with_flask_migrate: "flask-migrate" skipping "tests",
    every_break_converges_with_revisions_in_several_folders: "version-locations" skipping "tests,server",
}

#[test]
fn a_database_behind_the_code_is_migrated_up_on_a_copy() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let deployed = revision(&root);
    // The database row under the deployed code: the backup's database,
    // behind the code's head.
    assert_code(&run_in(&root, &["rollback", "--scenario", "database", "--yes"]), 0);
    assert_ne!(revision(&root), deployed);
    let behind = sha256(&database_of(&root));
    let args = ["rollback", "--scenario", "migration", "--to", "head"];
    let dry = run_in(&root, &[&args[..], &["--dry-run"]].concat());
    assert_code(&dry, 0);
    dry.stdout_has(contains(format!("upgrade a copy of data/tmws.db to {deployed}")));
    assert_eq!(sha256(&database_of(&root)), behind, "the dry run wrote");
    let up = run_in(&root, &[&args[..], &["--yes"]].concat());
    assert_code(&up, 0);
    up.stdout_has(contains(format!("alembic upgrade {deployed} on the copy")));
    assert_eq!(revision(&root), deployed);
    // What it replaced is kept, byte for byte.
    let bundles = std::fs::read_dir(root.join("forensics")).unwrap().flatten();
    let kept = bundles.map(|b| b.path().join("database/tmws.db")).filter(|p| p.is_file());
    assert!(kept.map(|p| sha256(&p)).any(|s| s == behind), "the database behind is not kept");
    assert_code(&run_in(&root, &["post-check"]), 0);
}

/// What no rollback can put right is `manual`, never a command that exits
/// 2 or changes nothing: a tree without a backup, and migrations with two
/// heads.
#[test]
fn without_a_backup_or_with_two_heads_diagnose_says_manual() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    std::fs::rename(root.join("backups"), dir.path().join("elsewhere")).unwrap();
    corrupt_database(&root);
    let json = diagnose(&root, &[]);
    assert_eq!(json["recommendation"], "manual", "{json}");
    assert!(json["passed_over"].to_string().contains("no backup pre-phase4"), "{json}");

    let dir = sandbox("phase4");
    let root = crate::root(&dir);
    let second = "revision = \"abcabcabc123\"\ndown_revision = \"a5f3c9e1b7d2\"\n\ndef upgrade():\n    pass\n\ndef downgrade():\n    pass\n";
    std::fs::write(root.join("migrations/versions/abcabcabc123_second_head.py"), second).unwrap();
    git(&root, &["add", "migrations"]);
    git(&root, &["commit", "-q", "-m", "a second head"]);
    let json = diagnose(&root, &[]);
    assert_eq!(json["recommendation"], "manual", "{json}");
    assert!(json["rollback"].is_null(), "{json}");
}

/// A migration rollback to where the database is already changes nothing
/// and says so: no bundle, the same file.
#[test]
fn a_migration_to_the_revision_the_database_holds_changes_nothing() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let before = sha256(&database_of(&root));
    let result = run_in(&root, &["rollback", "--scenario", "migration", "--to", "head", "--yes"]);
    assert_code(&result, 0);
    result.stdout_has(contains("nothing changed"));
    assert_eq!(sha256(&database_of(&root)), before);
    assert!(
        !root.join("forensics").exists()
            || std::fs::read_dir(root.join("forensics")).unwrap().next().is_none()
    );
}

/// An upgrade to head that fails (a migration that raises) leaves the
/// database as it was; once its run is abandoned, diagnose sends the code
/// back instead of recommending the same upgrade again.
#[test]
fn a_failed_upgrade_is_not_recommended_again() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    assert_code(&run_in(&root, &["rollback", "--scenario", "database", "--yes"]), 0);
    let head =
        root.join("migrations/versions/20251122_1042-f1c7e3a9b5d4_create_learning_feedback.py");
    let text = std::fs::read_to_string(&head).unwrap();
    let broken = text.replace(
        "def upgrade() -> None:\n",
        "def upgrade() -> None:\n    raise RuntimeError('broken upgrade')\n",
    );
    std::fs::write(&head, broken).unwrap();
    git(&root, &["commit", "-q", "-am", "a broken upgrade"]);
    let json = diagnose(&root, &[]);
    let command = json["rollback"].as_str().unwrap();
    assert!(command.contains("--scenario migration --to head"), "{json}");
    assert_code(&run_printed(command), 1);
    assert_code(&run_in(&root, &["rollback", "--scenario", "migration", "--abandon"]), 0);
    let json = diagnose(&root, &[]);
    assert_eq!(json["recommendation"], "git", "{json}");
    assert_code(&run_printed(json["rollback"].as_str().unwrap()), 0);
    assert_eq!(diagnose(&root, &[])["recommendation"], "healthy");
}
