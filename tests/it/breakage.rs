//! The ways a Phase 4 tree breaks, done to sandboxes the way the real
//! failures leave them (the drill does the same inside the binary).
use std::{fs, path::Path, process::Command};

use crate::sandbox::python_of_sandbox;

pub const PRE_PHASE4_HEAD: &str = "47a9e2c8b6f0";
pub const PHASE4_PARENT: &str = "a5f3c9e1b7d2";
pub const PHASE4_HEAD: &str = "f1c7e3a9b5d4";

/// Runs alembic in a tree as its service would and returns stdout: the
/// sandbox virtualenv's alembic, or, where the tree's own `.venv` has
/// Flask, `flask db` on the profile's app (Flask-Migrate's env.py runs only
/// inside the app's context).
pub fn alembic(root: &Path, args: &[&str]) -> String {
    let mut command = Command::new(python_of_sandbox());
    command.args(["-m", "alembic"]);
    if root.join(".venv/bin/flask").is_file() {
        let profile = fs::read_to_string(root.join("tmws-rollback.toml")).unwrap();
        let app = profile.lines().find_map(|l| l.strip_prefix("app = ")).expect("an app");
        command = Command::new(root.join(".venv/bin/python"));
        command.args(["-m", "flask", "--app", app.trim_matches('"'), "db"]);
    }
    let output =
        command.args(args).current_dir(root).env("PYTHONDONTWRITEBYTECODE", "1").output().unwrap();
    assert!(
        output.status.success(),
        "alembic {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `alembic ARGS` that changes the database alone (an upgrade or a
/// downgrade), as `alembic` runs it. What it made is kept for the run's
/// later trees that hold the same database and the same code: the same
/// migration, done by the same alembic on the same bytes, ends in the same
/// bytes, so alembic runs once a run for each (it was a tenth of the
/// suite's Python).
pub fn migrate(root: &Path, args: &[&str]) {
    let db = database_of(root);
    let kept = crate::templates_dir().join("migrated").join(migration_key(root, &db, args));
    fs::create_dir_all(kept.parent().unwrap()).unwrap();
    let lock = fs::File::create(kept.with_extension("lock")).unwrap();
    lock.lock().unwrap();
    let sidecars = ["-wal", "-shm", "-journal"].map(|s| format!("{}{s}", db.display()));
    if let Ok(bytes) = fs::read(&kept) {
        // Written in place: the file keeps its owner and mode, as alembic's.
        // alembic left no sidecar (nothing is kept otherwise): neither may this.
        fs::write(&db, bytes).unwrap();
        for sidecar in &sidecars {
            let _absent_already = fs::remove_file(sidecar);
        }
        return;
    }
    alembic(root, args);
    if sidecars.iter().all(|s| !Path::new(s).exists()) {
        let building = kept.with_extension(format!("building-{}", std::process::id()));
        fs::copy(&db, &building).unwrap();
        fs::rename(&building, &kept).unwrap();
    }
}

/// What a migration's result depends on: its arguments, the database's
/// bytes, and every file of the tree but its history, backups and the
/// tool's own folders (alembic.ini, env.py and the code env.py imports).
fn migration_key(root: &Path, db: &Path, args: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(format!("{args:?}").as_bytes());
    hasher.update(fs::read(db).unwrap());
    let left_out = [".git", ".venv", "backups", "forensics", "logs", ".tmws-rollback"];
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let name = entry.file_name();
            if dir == root && left_out.iter().any(|l| name == *l) {
                continue;
            }
            match entry.file_type().unwrap() {
                t if t.is_dir() => stack.push(entry.path()),
                t if t.is_file() => files.push(entry.path()),
                _ => {}
            }
        }
    }
    files.sort();
    for file in files {
        hasher.update(file.strip_prefix(root).unwrap().to_string_lossy().as_bytes());
        hasher.update(fs::read(&file).unwrap());
    }
    hasher.update(root.join(".venv/bin/flask").is_file().to_string().as_bytes());
    format!("{:x}.db", hasher.finalize())
}

pub fn sha256(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(fs::read(path).unwrap()))
}

/// The tree's database, as its profile names it (the fixture's is
/// data/tmws.db; a variant's may be elsewhere).
pub fn database_of(root: &Path) -> std::path::PathBuf {
    let profile = fs::read_to_string(root.join("tmws-rollback.toml")).unwrap_or_default();
    let named = profile.lines().find_map(|l| {
        let value = l.strip_prefix("database = ")?;
        Some(value.trim().trim_matches('"').to_string())
    });
    root.join(named.unwrap_or_else(|| "data/tmws.db".into()))
}

pub fn revision(root: &Path) -> String {
    let conn = rusqlite::Connection::open(database_of(root)).unwrap();
    conn.query_row("SELECT version_num FROM alembic_version", [], |r| r.get(0)).unwrap()
}

pub fn tables(root: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(database_of(root)).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

/// Damages the header of an index's root page (after a checkpoint, so the
/// damage is in the main file) and returns the damaged file's sha256.
pub fn corrupt_database(root: &Path) -> String {
    let db = database_of(root);
    let (offset, size) = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        let page: i64 = conn
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'ix_memory_entries_agent_id'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        ((page - 1) * size, size)
    };
    let mut bytes = fs::read(&db).unwrap();
    for i in 0..8.min(size) {
        bytes[(offset + i) as usize] ^= 0x5a;
    }
    fs::write(&db, bytes).unwrap();
    sha256(&db)
}

/// The last Phase 4 migration failed half-way: its table exists, the version
/// row still names its parent.
pub fn half_apply_phase4_head(root: &Path) {
    migrate(root, &["downgrade", PHASE4_PARENT]);
    let conn = rusqlite::Connection::open(database_of(root)).unwrap();
    conn.execute_batch(
        "CREATE TABLE learning_feedback (id INTEGER NOT NULL, pattern_id INTEGER NOT NULL, \
         verdict VARCHAR(20) NOT NULL, PRIMARY KEY (id), FOREIGN KEY(pattern_id) REFERENCES learning_patterns (id))",
    )
    .unwrap();
}

/// A critical module that no longer imports.
pub fn break_import(root: &Path, file: &str) -> String {
    let path = root.join(file);
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("\nimport a_module_that_is_not_installed\n");
    fs::write(&path, text).unwrap();
    sha256(&path)
}

/// An app whose health route answers only after 30 s: its server starts,
/// and a check waiting on its health keeps polling.
pub fn slow_health(root: &Path) {
    let main = root.join("src/main.py");
    let text = fs::read_to_string(&main).unwrap().replace(
        "healthy = database[\"status\"] == \"ok\"",
        "import time; time.sleep(30); healthy = True",
    );
    fs::write(&main, text).unwrap();
}

/// A bad commit on the deployed branch; returns its id.
pub fn bad_commit(root: &Path) -> String {
    fs::write(root.join("README.md"), "# TMWS\n\nbroken\n").unwrap();
    git(root, &["commit", "-q", "-am", "WIP: bad commit"]);
    git(root, &["rev-parse", "HEAD"]).trim().to_string()
}

pub fn git(root: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(root)
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The only forensics bundle of a tree.
pub fn only_bundle(root: &Path) -> std::path::PathBuf {
    let bundles: Vec<_> =
        fs::read_dir(root.join("forensics")).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(bundles.len(), 1, "{bundles:?}");
    bundles.into_iter().next().unwrap()
}

pub fn facts(bundle: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(bundle.join("failure.json")).unwrap()).unwrap()
}
