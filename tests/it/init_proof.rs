//! init writes only a profile it proved on a scratch copy of the checkout:
//! a backup, its verification, a migration rollback's dry run and
//! post-check after the deploy.
use std::fs;

use predicates::{prelude::*, str::contains};

use crate::{digest, root, run_in, sandbox};

#[test]
fn init_writes_only_a_profile_it_proved_on_a_copy() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    fs::remove_file(root.join("tmws-rollback.toml")).unwrap();
    let main = root.join("src/main.py");
    let healthy = fs::read_to_string(&main).unwrap();
    fs::write(&main, healthy.replace("status = 200 if healthy else 503", "status = 500")).unwrap();
    let before = digest(&root);
    let refused = run_in(&root, &["init"]);
    refused.exits(1).stderr_has(
        contains("could not prove it: post-check failed on a scratch copy")
            .and(contains("server.health: HTTP 500"))
            .and(contains("nothing was written")),
    );
    assert_eq!(digest(&root), before, "init changed the checkout");
    fs::write(&main, healthy).unwrap();
    let written = run_in(&root, &["init"]);
    written.exits(0).stderr_has(contains("proven on a scratch copy of the checkout"));
    assert!(root.join("tmws-rollback.toml").is_file());
    assert!(!root.join("backups/pre-phase4/BACKUP_MANIFEST.txt.new").exists());
}

/// The app is imported on a scratch copy: its own route table gives the
/// health route (one the code's text does not spell out); an app that does
/// not import is named in the proposal with Python's reason, and the proof
/// refuses to write a profile whose app cannot start.
#[test]
fn init_imports_the_app_for_its_routes_and_names_one_that_fails() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    fs::remove_file(root.join("tmws-rollback.toml")).unwrap();
    let main = root.join("src/main.py");
    let text = fs::read_to_string(&main).unwrap();
    let table = "\n\nclass _Route:\n    def __init__(self, path):\n        self.path = path\n\n\napp.routes = [_Route(\"/\"), _Route(\"/ops/\" + \"healthz\")]\n";
    fs::write(&main, format!("{text}{table}")).unwrap();
    let init = run_in(&root, &["init", "--dry-run"]);
    init.exits(0).stdout_has(
        contains("health_path = \"/ops/healthz\"").and(contains("the app's own route table")),
    );
    fs::write(&main, format!("{text}{table}raise RuntimeError(\"settings missing\")\n")).unwrap();
    let before = digest(&root);
    let shown = run_in(&root, &["init", "--dry-run"]);
    shown.exits(0).stdout_has(contains(
        "(it did not import on a scratch copy: RuntimeError: settings missing)",
    ));
    let broken = run_in(&root, &["init"]);
    broken.exits(1).stderr_has(
        contains("could not prove it: post-check failed")
            .and(contains("server.start: the server exited")),
    );
    assert_eq!(digest(&root), before, "init changed the checkout");
}

/// A database the service's alembic environment opens outside the
/// checkout is named, exit 1: init never proposes a guess beneath it.
#[test]
fn a_database_outside_the_checkout_is_named_not_guessed() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    fs::remove_file(root.join("tmws-rollback.toml")).unwrap();
    let outside = dir.path().join("elsewhere/tmws.db");
    fs::create_dir_all(outside.parent().unwrap()).unwrap();
    fs::rename(root.join("data/tmws.db"), &outside).unwrap();
    let ini = fs::read_to_string(root.join("alembic.ini")).unwrap();
    let ini = ini.replace("sqlite:///data/tmws.db", &format!("sqlite:///{}", outside.display()));
    fs::write(root.join("alembic.ini"), ini).unwrap();
    let init = run_in(&root, &["init", "--dry-run"]);
    init.exits(1)
        .stderr_has(contains(format!("opens {}, outside the checkout", outside.display())));
}

/// The code's text proposes every app it sees; init imports them in turn
/// and takes the first that imports as an app: an `app.py` at the root
/// that needs a package the service lacks is passed over for `src/main.py`.
#[test]
fn init_takes_the_first_candidate_app_that_imports() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    fs::remove_file(root.join("tmws-rollback.toml")).unwrap();
    let stale = "import a_package_this_service_lacks\n\napp = a_package_this_service_lacks.App()\n";
    fs::write(root.join("app.py"), stale).unwrap();
    let init = run_in(&root, &["init", "--dry-run"]);
    init.exits(0)
        .stdout_has(contains("app = \"src.main:app\"").and(contains("health_path = \"/health\"")));
}

/// alembic.ini's `version_locations` is where the revisions are: init
/// takes the folder it names (and proves the profile with it); two folders
/// one inside the other, which a restore could not swap one by one, are
/// exit 1 naming both. (Several folders side by side: version_locations.rs.)
#[test]
fn init_takes_the_revisions_from_version_locations() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    fs::remove_file(root.join("tmws-rollback.toml")).unwrap();
    fs::rename(root.join("migrations/versions"), root.join("migrations/revisions")).unwrap();
    let ini = fs::read_to_string(root.join("alembic.ini")).unwrap();
    let one = "[alembic]\nversion_locations = %(here)s/migrations/revisions\n";
    fs::write(root.join("alembic.ini"), ini.replacen("[alembic]\n", one, 1)).unwrap();
    let init = run_in(&root, &["init"]);
    init.exits(0);
    let profile = fs::read_to_string(root.join("tmws-rollback.toml")).unwrap();
    assert!(profile.contains("migrations = \"migrations/revisions\""), "{profile}");
    assert!(
        profile.contains("# From version_locations in alembic.ini, as alembic itself reads it"),
        "{profile}"
    );
    fs::remove_file(root.join("tmws-rollback.toml")).unwrap();
    let nested =
        "[alembic]\nversion_locations = %(here)s/migrations:%(here)s/migrations/revisions\n";
    fs::write(root.join("alembic.ini"), ini.replacen("[alembic]\n", nested, 1)).unwrap();
    let before = digest(&root);
    let refused = run_in(&root, &["init"]);
    refused.exits(1).stderr_has(contains(
        "version_locations in alembic.ini names folders the tool cannot restore one by one: migrations[1] = \"migrations/revisions\": it and migrations[0] = \"migrations\" hold one another",
    ));
    assert_eq!(digest(&root), before, "a refused init changed the checkout");
}

/// A service whose packages live only in its own virtualenv (Flask, for
/// Flask-Migrate's env.py): the scratch copy holds no `.venv`, so the
/// proof runs every step with the checkout's interpreter, found once on the
/// checkout, and the profile is written.
#[test]
fn the_proof_runs_the_checkouts_own_interpreter() {
    let dir = crate::sandbox_variant("phase4", "flask-migrate");
    let root = root(&dir);
    fs::remove_file(root.join("tmws-rollback.toml")).unwrap();
    let written = run_in(&root, &["init"]);
    written
        .exits(0)
        .stderr_has(contains("proven on a scratch copy").and(contains("No module named").not()));
    assert!(root.join("tmws-rollback.toml").is_file());
}

/// A Ctrl-C while the proof runs (here while post-check waits on the
/// server's health) proved nothing: init ends with the signal's code and
/// writes no profile.
#[test]
fn an_interrupted_proof_writes_no_profile() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = sandbox("phase4");
    let root = root(&dir);
    fs::remove_file(root.join("tmws-rollback.toml")).unwrap();
    crate::breakage::slow_health(&root);
    let mut child = crate::xtask()
        .args(["init", "--verbose", "--root"])
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // The server check's launcher is shown as it starts.
    let started = lines.by_ref().map_while(Result::ok).any(|l| l.contains("# The server check"));
    assert!(started, "init never started the server check");
    let interrupted = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    assert!(interrupted.unwrap().success(), "kill -INT {}", child.id());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{}", rest.join("\n"));
    assert!(!root.join("tmws-rollback.toml").exists(), "{}", rest.join("\n"));
}
