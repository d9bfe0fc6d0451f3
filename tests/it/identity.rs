//! Identity, not equality: whatever route leads alembic to another database
//! at the same revision (an env.py that hard-codes it, an env.py that reads
//! another variable the caller exported, a profile `[env]` that names it, a
//! profile without a URL variable while the caller exports one), a
//! migration rollback is refused before step 1, naming both files, and
//! neither database changes.
use std::{fs, path::Path};

use predicates::{prelude::*, str::contains};

use crate::{
    breakage::{half_apply_phase4_head, sha256},
    digest, root, run, sandbox, xtask,
};

/// Another instance's database beside the tree, at the same revision.
fn another_instance(root: &Path) -> std::path::PathBuf {
    let other = root.parent().unwrap().join("production.db");
    fs::copy(root.join("data/tmws.db"), &other).unwrap();
    other
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    fs::write(path, text.replace(from, to)).unwrap();
}

#[test]
fn every_route_to_another_database_is_refused_before_step_1() {
    type Route = fn(&Path, &Path) -> Vec<(&'static str, String)>;
    let routes: [(&str, Route); 4] = [
        ("an env.py that hard-codes it", |root, other| {
            let hard = format!("url = \"sqlite:///{}\"", other.display());
            edit(
                &root.join("migrations/env.py"),
                "url = os.environ.get(\"TMWS_DATABASE_URL\")",
                &hard,
            );
            Vec::new()
        }),
        ("an env.py that reads DATABASE_URL first", |root, other| {
            edit(
                &root.join("migrations/env.py"),
                "url = os.environ.get(\"TMWS_DATABASE_URL\")",
                "url = os.environ.get(\"DATABASE_URL\") or os.environ.get(\"TMWS_DATABASE_URL\")",
            );
            vec![("DATABASE_URL", format!("sqlite:///{}", other.display()))]
        }),
        ("a profile [env] that names it", |root, other| {
            let profile = format!("[env]\nTMWS_DATABASE_URL = \"sqlite:///{}\"\n", other.display());
            fs::write(root.join("tmws-rollback.toml"), profile).unwrap();
            Vec::new()
        }),
        ("no URL variable in the profile, one exported", |root, other| {
            fs::write(root.join("tmws-rollback.toml"), "database_url_env = \"\"\n").unwrap();
            vec![("TMWS_DATABASE_URL", format!("sqlite:///{}", other.display()))]
        }),
    ];
    for (route, set_up) in routes {
        let dir = sandbox("phase4");
        let root = root(&dir);
        half_apply_phase4_head(&root);
        let other = another_instance(&root);
        let env = set_up(&root, &other);
        let (other_before, tree_before) = (sha256(&other), digest(&root));
        for extra in [&["--dry-run"][..], &["--yes"]] {
            let mut cmd = xtask();
            cmd.args(["rollback", "--scenario", "migration"]).args(extra).arg("--root").arg(&root);
            for (key, value) in &env {
                cmd.env(key, value);
            }
            let result = run(&mut cmd);
            result.exits(4).stderr_has(
                contains("alembic would act on another database")
                    .and(contains(other.display().to_string()))
                    .and(contains(root.join("data/tmws.db").display().to_string())),
            );
            assert_eq!(sha256(&other), other_before, "{route}: the other database changed");
            assert_eq!(digest(&root), tree_before, "{route}: the tree changed");
        }
    }
}

/// What alembic does beside the probe changes nothing but the copy it is
/// given: a database hard-linked to a file outside the tree, an env.py
/// that names another database only when it downgrades, and an engine made
/// with `creator=` (which SQLAlchemy's connect hook never sees).
#[test]
fn what_env_py_does_beside_the_probe_changes_only_the_copy() {
    // A hard link: the rollback succeeds, and the file outside keeps its bytes.
    let dir = sandbox("phase4");
    let tree = root(&dir);
    let outside = dir.path().join("outside.db");
    fs::hard_link(tree.join("data/tmws.db"), &outside).unwrap();
    let before = sha256(&outside);
    let result =
        run(xtask().args(["rollback", "--scenario", "migration", "--yes", "--root"]).arg(&tree));
    result.exits(0);
    assert_eq!(sha256(&outside), before, "the hard-linked file outside the tree changed");
    assert_ne!(sha256(&tree.join("data/tmws.db")), before, "the database was rolled back");

    type Trick = fn(&Path) -> String;
    let tricks: [(&str, Trick, &str); 2] = [
        (
            "an env.py that downgrades another database",
            |other| {
                format!(
                    "if \"downgrade\" in repr(getattr(config, \"cmd_opts\", \"\")):\n    url = \"sqlite:///{}\"\nif url:",
                    other.display()
                )
            },
            "not the copy it was given",
        ),
        (
            "a creator= engine",
            |other| {
                format!(
                    "import sqlite3\nfrom sqlalchemy import create_engine\nengine_from_config = lambda *a, **k: create_engine(\"sqlite://\", creator=lambda: sqlite3.connect(\"{}\"))\nif url:",
                    other.display()
                )
            },
            "cannot be shown to act on",
        ),
    ];
    for (trick, code, message) in tricks {
        let dir = sandbox("phase4");
        let root = root(&dir);
        let other = another_instance(&root);
        edit(&root.join("migrations/env.py"), "if url:", &code(&other));
        let (other_before, db_before) = (sha256(&other), sha256(&root.join("data/tmws.db")));
        let result = run(xtask()
            .args(["rollback", "--scenario", "migration", "--yes", "--root"])
            .arg(&root));
        result.exits(4).stderr_has(contains(message));
        assert_eq!(sha256(&other), other_before, "{trick}: the other database changed");
        let db = root.join("data/tmws.db");
        assert_eq!(sha256(&db), db_before, "{trick}: the live database changed");
    }
}
