//! A service whose migrations run through Flask-Migrate: its `env.py` takes
//! the database from the Flask app's extension, so every alembic command
//! runs inside the profile app's context, as `flask db` runs it; its
//! `alembic.ini` sits in the migrations folder (`script_location = .`).
use std::fs;

use predicates::{prelude::*, str::contains};

use crate::{digest, root, run_in, sandbox_variant};

/// init asks the service through its app: the database, the variable that
/// moves it, the app's factory, and the migrations beside the ini.
#[test]
fn init_finds_a_flask_migrate_service_through_its_app() {
    let dir = sandbox_variant("phase4", "flask-migrate");
    let root = root(&dir);
    let profile = fs::read_to_string(root.join("tmws-rollback.toml")).unwrap();
    for line in [
        "app = \"src.wsgi:create_app()\"",
        "alembic_ini = \"migrations/alembic.ini\"",
        "migrations = \"migrations/versions\"",
        "database = \"data/tmws.db\"",
        "database_url_env = \"TMWS_DATABASE_URL\"",
    ] {
        assert!(profile.contains(line), "{line} not in:\n{profile}");
    }
    // The tests inside the package, from pytest's own collection.
    assert!(profile.contains("\"src/tests/unit/services/test_verification_service.py\""));
}

/// Without an app to give the env.py its context, an alembic command says
/// in one line why and what the profile needs, and nothing changes.
#[test]
fn an_env_py_that_needs_the_apps_context_names_what_the_profile_lacks() {
    let dir = sandbox_variant("phase4", "flask-migrate");
    let root = root(&dir);
    let profile = root.join("tmws-rollback.toml");
    let text = fs::read_to_string(&profile).unwrap();
    let without: String = text
        .lines()
        .map(|l| if l.starts_with("app = ") { "app = \"\"" } else { l })
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&profile, without).unwrap();
    let before = digest(&root);
    let result = run_in(&root, &["rollback", "--scenario", "migration", "--yes"]);
    result.exits(4).stderr_has(
        contains("the env.py needs a Flask application context (Flask-Migrate)")
            .and(contains("as the profile's app (app = \"module:create_app()\")")),
    );
    assert_eq!(digest(&root), before, "a refused rollback changed the tree");
}
