//! diagnose's table: each of the five rows, the healthy deployed state and
//! the backed-up state, on the fixture and on every fixture variant (another
//! database path, alembic at the root logging to stdout, an app that
//! migrates when it starts, a strict pytest, another health shape, a
//! migration whose offline SQL cannot be rendered).
use std::path::Path;

use crate::{
    breakage::{bad_commit, break_import, corrupt_database, git, half_apply_phase4_head},
    root, run_in, sandbox, sandbox_variant,
};

/// What diagnose recommends, and its exit code.
fn recommended(root: &Path, extra: &[&str]) -> (String, i32) {
    let mut args = vec!["diagnose", "--format", "json"];
    args.extend_from_slice(extra);
    let result = run_in(root, &args);
    let json: serde_json::Value =
        serde_json::from_str(&result.stdout).unwrap_or_else(|e| panic!("{e}: {result:?}"));
    crate::schema::assert_valid("diagnose", &json);
    (json["recommendation"].as_str().unwrap().to_string(), result.code)
}

/// Every state of the table on one tree kind; returns the rows that came
/// out otherwise, as `variant state: got X`.
fn table(variant: Option<&str>) -> Vec<String> {
    let fresh = |stage: &str| match variant {
        Some(v) => sandbox_variant(stage, v),
        None => sandbox(stage),
    };
    let mut wrong = Vec::new();
    let mut expect = |state: &str, got: (String, i32), want: &str| {
        let code = if want == "healthy" { 0 } else { 1 };
        if got != (want.to_string(), code) {
            wrong.push(format!(
                "{} {state}: got {} (exit {}), want {want}",
                variant.unwrap_or("fixture"),
                got.0,
                got.1
            ));
        }
    };
    let dir = fresh("backed-up");
    expect("backed-up", recommended(&root(&dir), &[]), "healthy");
    let dir = fresh("phase4");
    expect("deployed", recommended(&root(&dir), &[]), "healthy");
    let dir = fresh("phase4");
    corrupt_database(&root(&dir));
    expect("database", recommended(&root(&dir), &[]), "database");
    let dir = fresh("phase4");
    half_apply_phase4_head(&root(&dir));
    expect("migration", recommended(&root(&dir), &[]), "migration");
    let dir = fresh("phase4");
    break_import(&root(&dir), "src/services/learning_trust_integration.py");
    expect("files", recommended(&root(&dir), &[]), "files");
    let dir = fresh("phase4");
    let deployed = git(&root(&dir), &["rev-parse", "HEAD"]).trim().to_string();
    bad_commit(&root(&dir));
    expect("git", recommended(&root(&dir), &["--expect-commit", &deployed]), "git");
    let dir = fresh("phase4");
    half_apply_phase4_head(&root(&dir));
    break_import(&root(&dir), "src/services/learning_trust_integration.py");
    corrupt_database(&root(&dir));
    expect("complete", recommended(&root(&dir), &[]), "complete");
    wrong
}

#[test]
fn every_row_healthy_and_backed_up_on_the_fixture() {
    let wrong = table(None);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// One test per variant, so that they run side by side.
macro_rules! tables {
    ($($test:ident: $variant:literal,)*) => {$(
        #[test]
        fn $test() {
            let wrong = table(Some($variant));
            assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        }
    )*};
}

tables! {
    every_row_with_alembic_at_the_root: "alembic-at-root",
    every_row_with_an_app_that_migrates_at_start: "migrates-at-start",
    every_row_with_another_health_shape: "other-health",
    every_row_with_a_migration_the_probe_cannot_render: "probe-fails",
    every_row_with_a_settings_class: "settings-class",
    every_row_with_a_strict_pytest: "strict-pytest",
}
