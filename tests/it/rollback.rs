//! `xtask rollback`: every row of the decision matrix on a broken Phase 4
//! sandbox, the plan, the refusals, the lock, and the crash matrix.
use predicates::{prelude::*, str::contains};
use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
};

use crate::{
    Run, assert_code, assert_refused, breakage::*, crash_rollback, digest, on_a_terminal, root,
    run, run_in, sandbox, snapshot, xtask,
};

const BACKUP: &str = "backups/pre-phase4";

fn manifest_sha(root: &Path, source: &str) -> String {
    let manifest = fs::read_to_string(root.join(BACKUP).join("BACKUP_MANIFEST.txt")).unwrap();
    let line = manifest
        .lines()
        .find(|l| l.starts_with("file:") && l.ends_with(&format!("\t{source}")))
        .unwrap_or_else(|| panic!("{source} in the manifest"));
    line.split('\t').nth(2).unwrap().to_string()
}

/// The live database is the backup's, back in the WAL mode it was backed up
/// in: the same bytes but for the header fields SQLite rewrites when the
/// journal mode changes (read and write versions, change counters), and
/// nothing beside it.
fn assert_database_restored(root: &Path) {
    let live = fs::read(root.join("data/tmws.db")).unwrap();
    let backup = fs::read(root.join(BACKUP).join("database/tmws.db.backup")).unwrap();
    assert_eq!(
        sha256(&root.join(BACKUP).join("database/tmws.db.backup")),
        manifest_sha(root, "data/tmws.db")
    );
    assert_eq!(live.len(), backup.len(), "the restored database has the backup's size");
    assert_eq!(live[18..20], [2, 2], "the restored database is in WAL mode");
    let rewritten = [18..20, 24..28, 92..96];
    let differing: Vec<usize> = (0..100)
        .filter(|&i| live[i] != backup[i] && !rewritten.iter().any(|r| r.contains(&i)))
        .collect();
    assert_eq!(differing, Vec::<usize>::new(), "header bytes that differ from the backup");
    assert!(live[100..] == backup[100..], "the restored database's pages differ from the backup");
    for stale in ["data/tmws.db-wal", "data/tmws.db-shm", "data/tmws.db-journal"] {
        assert!(!root.join(stale).exists(), "{stale} left beside the restored database");
    }
}

fn rollback(root: &Path, scenario: &str, extra: &[&str]) -> Run {
    let mut args = vec!["rollback", "--scenario", scenario, "--yes"];
    args.extend_from_slice(extra);
    run_in(root, &args)
}

/// The plan lines of a run's output (the numbered lines).
fn plan_lines(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|l| l.trim_start().chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(String::from)
        .collect()
}

#[test]
fn database_scenario_restores_the_backup_and_keeps_the_corrupt_file() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let backup_before = digest(&root.join(BACKUP));
    let corrupt = corrupt_database(&root);
    let result = rollback(&root, "database", &[]);
    assert_code(&result, 0);
    result.stdout_has(contains("back in WAL mode as when it was backed up"));
    assert_database_restored(&root);
    let bundle = only_bundle(&root);
    assert_eq!(
        sha256(&bundle.join("database/tmws.db")),
        corrupt,
        "the failed database is kept as it was"
    );
    // The preserved database's revision, read through SQLite: a database
    // rollback starts no Python.
    assert_eq!(facts(&bundle)["database_revision"][0], PHASE4_HEAD);
    assert!(!bundle.join("alembic-current.txt").exists());
    assert_eq!(facts(&bundle)["problems"], serde_json::json!([]));
    result.stderr_has(contains("alembic").not());
    assert_eq!(digest(&root.join(BACKUP)), backup_before, "the backup was modified");
}

#[test]
fn a_database_backed_up_in_rollback_journal_mode_comes_back_byte_for_byte() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let conn = rusqlite::Connection::open(root.join("data/tmws.db")).unwrap();
    let mode: String = conn.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "delete");
    drop(conn);
    assert_code(&run_in(&root, &["backup", "--label", "plain", "--no-tag"]), 0);
    let manifest = fs::read_to_string(root.join("backups/plain/BACKUP_MANIFEST.txt")).unwrap();
    assert!(manifest.contains("journal-mode: delete"), "{manifest}");
    corrupt_database(&root);
    let result = rollback(&root, "database", &["--label", "plain"]);
    assert_code(&result, 0);
    result.stdout_has(contains("WAL").not());
    assert_eq!(
        sha256(&root.join("data/tmws.db")),
        sha256(&root.join("backups/plain/database/tmws.db.backup"))
    );
}

#[test]
fn migration_scenario_downgrades_a_half_applied_migration() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    half_apply_phase4_head(&root);
    let result = rollback(&root, "migration", &[]);
    assert_code(&result, 0);
    result.stdout_has(contains("was half-applied"));
    assert_eq!(revision(&root), PRE_PHASE4_HEAD);
    let manifest = fs::read_to_string(root.join(BACKUP).join("BACKUP_MANIFEST.txt")).unwrap();
    for table in tables(&root) {
        assert!(manifest.contains(&format!("table: {table} ")), "unexpected table {table}");
    }
    assert!(alembic(&root, &["current"]).starts_with(PRE_PHASE4_HEAD));
    let facts = facts(&only_bundle(&root));
    assert_eq!(
        facts["database_revision"][0], PHASE4_PARENT,
        "the half-applied database is preserved"
    );
    assert_eq!(facts["problems"], serde_json::json!([]), "alembic's answer about the copy");
}

/// A migration rollback aborted at any instant, as a crash would (a Ctrl-C
/// ends it the same way once its programs are stopped), and resumed: the
/// first `--resume` finishes it, with the failed database in the bundle.
#[test]
fn an_interrupted_migration_rollback_resumes_the_first_time() {
    let faults = ["after:1", "after:2", "after:3", "inside:migrated-moved", "after:4"];
    for fault in faults {
        let dir = sandbox("phase4");
        let root = root(&dir);
        let failed_db = sha256(&root.join("data/tmws.db"));
        crash_rollback(&root, "migration", fault);
        let resumed = rollback(&root, "migration", &["--resume"]);
        assert_code(&resumed, 0);
        assert_eq!(revision(&root), PRE_PHASE4_HEAD, "{fault}");
        let bundle = only_bundle(&root);
        assert_eq!(sha256(&bundle.join("database/tmws.db")), failed_db, "{fault}");
        let left: Vec<_> = fs::read_dir(root.join("data")).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "{fault}: the copy's folder is left: {left:?}");
    }
}

#[test]
fn migration_steps_resolve_to_a_revision_before_running() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let result =
        run_in(&root, &["rollback", "--scenario", "migration", "--steps", "1", "--dry-run"]);
    assert_code(&result, 0);
    result.stdout_has(contains(format!("then runs downgrade {PHASE4_PARENT}")));
}

#[test]
fn files_scenario_restores_only_the_named_file() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let file = "src/services/learning_trust_integration.py";
    let broken = break_import(&root, file);
    let result = rollback(&root, "files", &["--paths", file]);
    assert_code(&result, 0);
    assert_eq!(sha256(&root.join(file)), manifest_sha(&root, file));
    let bundle = only_bundle(&root);
    assert_eq!(sha256(&bundle.join("files").join(file)), broken);
    assert_eq!(
        git(&root, &["status", "--porcelain"]),
        "",
        "the restored file is the committed one"
    );
}

#[test]
fn complete_scenario_returns_the_whole_tree_to_the_tag() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    corrupt_database(&root);
    break_import(&root, "src/services/verification_service.py");
    let result = rollback(&root, "complete", &[]);
    assert_code(&result, 0);
    assert_tree_equals_backup(&root);
}

/// Database, config, migrations and critical files equal the backup, and
/// git is clean on the rollback branch at the tag.
fn assert_tree_equals_backup(root: &Path) {
    let manifest = fs::read_to_string(root.join(BACKUP).join("BACKUP_MANIFEST.txt")).unwrap();
    assert_database_restored(root);
    for line in manifest.lines().filter(|l| l.starts_with("file:") && !l.contains("\tdatabase\t")) {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            sha256(&root.join(fields[6])),
            fields[2],
            "{} differs from the backup",
            fields[6]
        );
    }
    let revisions = fs::read_dir(root.join("migrations/versions"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "py"))
        .count();
    assert_eq!(revisions, 12);
    assert_eq!(git(root, &["status", "--porcelain"]), "");
    assert_eq!(git(root, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(), "rollback-pre-phase4");
    assert_eq!(git(root, &["rev-parse", "HEAD"]), git(root, &["rev-parse", "pre-phase4^{commit}"]));
}

#[test]
fn git_scenario_checks_out_a_branch_at_the_tag() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let bad = bad_commit(&root);
    // The database is at Phase 4's revision, which the tag does not define:
    // refused before step 1 unless --force says to move only the code.
    let before = digest(&root);
    let refused = rollback(&root, "git", &[]);
    assert_code(&refused, 4);
    refused.stderr_has(contains("ahead of the code"));
    assert_eq!(digest(&root), before);
    let result = rollback(&root, "git", &["--force"]);
    assert_code(&result, 0);
    assert_eq!(git(&root, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(), "rollback-pre-phase4");
    assert_eq!(git(&root, &["rev-parse", "main"]).trim(), bad, "the bad commit is not lost");
}

#[test]
fn git_hard_reset_keeps_the_discarded_head() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let bad = bad_commit(&root);
    let refused = rollback(&root, "git", &["--commit", "HEAD~1", "--hard"]);
    assert_code(&refused, 4);
    refused.stderr_has(contains("needs --force"));
    let result = rollback(&root, "git", &["--commit", "HEAD~1", "--hard", "--force"]);
    assert_code(&result, 0);
    let kept = git(&root, &["for-each-ref", "--format=%(objectname)", "refs/tmws-rollback/"]);
    assert_eq!(kept.trim(), bad);
    assert_ne!(git(&root, &["rev-parse", "HEAD"]).trim(), bad);
}

#[test]
fn git_restores_a_pathspec_from_a_commit() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let file = "src/services/verification_service.py";
    break_import(&root, file);
    let result = rollback(&root, "git", &["--from", "pre-phase4", "--paths", "*.py"]);
    assert_code(&result, 0);
    assert_eq!(sha256(&root.join(file)), manifest_sha(&root, file));
}

#[test]
fn plans_are_shown_before_anything_changes() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let before = digest(&root);
    let mut plans = String::new();
    for scenario in ["database", "migration", "files", "complete", "git --force"] {
        let mut args = vec!["rollback", "--scenario"];
        args.extend(scenario.split(' '));
        let result = run_in(&root, &[&args[..], &["--dry-run"]].concat());
        assert_code(&result, 0);
        plans.push_str(&format!("$ rollback --scenario {scenario} --dry-run\n"));
        plans.push_str(&result.rendered());
        plans.push_str("\n\n");
    }
    assert_eq!(digest(&root), before, "a dry run changed the tree");
    snapshot!(&root, plans);
}

#[test]
fn a_real_run_performs_the_steps_of_its_dry_run() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let dry = run_in(&root, &["rollback", "--scenario", "complete", "--dry-run"]);
    let real = rollback(&root, "complete", &[]);
    assert_code(&real, 0);
    let done: Vec<&str> = real.stdout.lines().filter(|l| l.contains("✓")).collect();
    let planned = plan_lines(&dry.stdout);
    assert_eq!(planned.len(), done.len(), "{dry:?}\n{real:?}");
    let strip_bundle = |l: &str| l.split("forensics/").next().unwrap().to_string();
    let real_plan: Vec<String> = plan_lines(&real.stdout).iter().map(|l| strip_bundle(l)).collect();
    let dry_plan: Vec<String> = planned.iter().map(|l| strip_bundle(l)).collect();
    assert_eq!(dry_plan, real_plan);
}

#[test]
fn the_service_of_the_root_is_stopped_and_a_decoy_outside_is_not() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let venv_bin = crate::sandbox::python_of_sandbox().parent().unwrap().to_path_buf();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(venv_bin.join("uvicorn"))
        .args(["src.main:app", "--host", "127.0.0.1", "--port", &port.to_string()])
        .current_dir(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let elsewhere = tempfile::TempDir::new().unwrap();
    let mut decoy = Command::new("python3")
        .args(["-c", "import time; time.sleep(120)", "uvicorn", "tmws", "src.main:app"])
        .current_dir(elsewhere.path())
        .spawn()
        .unwrap();
    wait_for_port(port);
    let result = rollback(&root, "database", &["--grace", "5"]);
    let server_gone = server.try_wait().unwrap().is_some() || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        server.try_wait().unwrap().is_some()
    };
    let decoy_alive = decoy.try_wait().unwrap().is_none();
    let _ = server.kill();
    let _ = decoy.kill();
    let _ = (server.wait(), decoy.wait());
    assert_code(&result, 0);
    result.stdout_has(contains("stopped pids"));
    assert!(server_gone, "the service of the root still runs");
    assert!(decoy_alive, "a process outside the root was stopped");
}

fn wait_for_port(port: u16) {
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("uvicorn did not listen on {port}");
}

#[test]
fn refusals_change_nothing() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let cases: [(&[&str], i32, &str); 5] = [
        (&["rollback", "--scenario", "database"], 4, "pass --yes"),
        (
            &["rollback", "--scenario", "git", "--commit", "HEAD~1", "--hard", "--yes"],
            4,
            "needs --force",
        ),
        (&["rollback", "--scenario", "migration", "--to", "base", "--yes"], 4, "--allow-data-loss"),
        (&["rollback", "--scenario", "sideways", "--yes"], 2, "unknown --scenario"),
        (
            &["rollback", "--scenario", "database", "--resume", "--yes"],
            2,
            "no interrupted rollback",
        ),
    ];
    for (args, code, message) in cases {
        let before = digest(&root);
        let result = run(xtask().args(args).arg("--root").arg(&root).stdin(Stdio::null()));
        assert_code(&result, code);
        result.stderr_has(contains(message));
        assert_eq!(digest(&root), before, "{args:?} changed the tree");
    }
}

#[test]
fn an_unverified_backup_is_refused() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let extra = root.join(BACKUP).join("config/stray.txt");
    fs::write(&extra, "not in the manifest").unwrap();
    let before = digest(&root);
    let result = rollback(&root, "database", &[]);
    assert_code(&result, 4);
    result.stderr_has(contains("failed verification").and(contains("files.unlisted")));
    assert_eq!(digest(&root), before);
}

/// The lock is an OS lock on an open file: a live holder means exit 3 with
/// its record (one this tool did not seal is shown as it is, never read
/// as who holds it), and whatever a dead holder (or a full disk) left in
/// the file never blocks the next run that takes the lock.
#[test]
fn a_live_lock_holder_blocks_and_a_leftover_lock_file_never_does() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let state = root.join(".tmws-rollback");
    fs::create_dir_all(&state).unwrap();
    let lock = state.join("lock");
    fs::write(&lock, "").unwrap();
    let mut holder =
        Command::new("flock").arg("-o").arg(&lock).args(["sleep", "30"]).spawn().unwrap();
    let record = |pid: u32, host: &str| {
        format!("{{\"pid\":{pid},\"host\":\"{host}\",\"started\":\"2026-11-30T03:00:00Z\"}}")
    };
    fs::write(&lock, record(holder.id(), "h")).unwrap();
    // The barrier: flock(1) holds the lock once a try of our own fails.
    let held =
        || !Command::new("flock").arg("-n").arg(&lock).arg("true").status().unwrap().success();
    while !held() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let busy = rollback(&root, "database", &[]);
    let listed = run_in(&root, &["list"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_code(&busy, 3);
    let unsealed =
        format!("a holder whose record this tool did not write (\"{{\\\"pid\\\":{}", holder.id());
    busy.stderr_has(contains("another run holds the lock").and(contains(unsealed.clone())));
    listed.stdout_has(contains("lock: held by a holder whose record this tool did not write"));

    // What a crash or a full disk leaves in the file does not matter to a
    // run that takes the lock (prune does, and finds nothing to remove).
    for leftover in ["", "\0\0\0", "pid=notanumber", &record(999_999, "elsewhere")] {
        fs::write(&lock, leftover).unwrap();
        let pruned = run_in(&root, &["prune", "--keep", "10", "--yes"]);
        assert_code(&pruned, 0);
        pruned.stdout_has(contains("nothing to remove"));
    }
    fs::write(&lock, record(999_999, "elsewhere")).unwrap();
    let taken = rollback(&root, "database", &["--break-lock"]);
    assert_code(&taken, 0);
    taken.stderr_has(
        contains("a record left by a holder whose record this tool did not write")
            .and(contains("it never blocked")),
    );
    assert_eq!(fs::read_to_string(&lock).unwrap(), "", "the lock names nobody once released");
}

/// The final state of a tree, for comparing interrupted and clean runs.
fn fingerprint(root: &Path) -> Vec<String> {
    let mut out = vec![
        sha256(&root.join("data/tmws.db")),
        git(root, &["rev-parse", "HEAD"]),
        git(root, &["status", "--porcelain"]),
    ];
    for dir in [
        "migrations/versions",
        "src/services",
        "src/domain/value_objects",
        "tests/unit/services",
        "tests/integration",
    ] {
        let mut files: Vec<_> = fs::read_dir(root.join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        out.extend(files.iter().map(|f| {
            format!("{} {}", f.display(), sha256(f)).replace(&root.display().to_string(), "")
        }));
    }
    out
}

/// The tree an uninterrupted complete rollback ends with, computed once.
fn reference_fingerprint() -> &'static Vec<String> {
    static REFERENCE: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    REFERENCE.get_or_init(|| {
        let dir = sandbox("phase4");
        let root = root(&dir);
        assert_code(&rollback(&root, "complete", &[]), 0);
        fingerprint(&root)
    })
}

/// A complete rollback aborted at `fault` (`before:N` or `after:N`), as a
/// crash would, then resumed: it ends with the same tree as an
/// uninterrupted one, the backup untouched and the failed database kept.
fn interrupted_complete_rollback_resumes_to_the_same_tree(when: &str, step: usize) {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let failed_db = sha256(&root.join("data/tmws.db"));
    let backup_before = digest(&root.join(BACKUP));
    crash_rollback(&root, "complete", &format!("{when}:{step}"));
    let blocked = rollback(&root, "complete", &[]);
    assert_code(&blocked, 5);
    blocked.stderr_has(contains("--resume"));
    let resumed = rollback(&root, "complete", &["--resume"]);
    assert_code(&resumed, 0);
    assert_eq!(&fingerprint(&root), reference_fingerprint(), "{when}:{step} ended elsewhere");
    assert_eq!(digest(&root.join(BACKUP)), backup_before, "{when}:{step} modified the backup");
    if step > 2 || (step == 2 && when == "after") {
        let bundle = only_bundle(&root);
        assert_eq!(
            sha256(&bundle.join("database/tmws.db")),
            failed_db,
            "{when}:{step} lost the failed database"
        );
    }
}

/// The crash matrix: one test per step boundary of a complete rollback.
macro_rules! crash_matrix {
    ($($name:ident: $when:literal $step:literal,)*) => {$(
        #[test]
        fn $name() {
            interrupted_complete_rollback_resumes_to_the_same_tree($when, $step);
        }
    )*};
}

crash_matrix! {
    crash_before_step_1: "before" 1,
    crash_after_step_1: "after" 1,
    crash_before_step_2: "before" 2,
    crash_after_step_2: "after" 2,
    crash_before_step_3: "before" 3,
    crash_after_step_3: "after" 3,
    crash_before_step_4: "before" 4,
    crash_after_step_4: "after" 4,
    crash_before_step_5: "before" 5,
    crash_after_step_5: "after" 5,
    crash_before_step_6: "before" 6,
    crash_after_step_6: "after" 6,
    crash_before_step_7: "before" 7,
    crash_after_step_7: "after" 7,
}

/// A crash half-way through the copy of the backup's database (the fault
/// hook aborts once half its bytes are staged): the live database was never
/// touched, and one resume restores it.
#[test]
fn a_kill_half_way_through_the_restores_copy_loses_nothing() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    assert_code(&run_in(&root, &["backup"]), 0);
    let failed_db = sha256(&root.join("data/tmws.db"));
    let staged = root.join("data/.tmws.db.xtask-staged");
    let crashed = run(xtask()
        .args(["rollback", "--scenario", "database", "--yes", "--skip-verify", "--root"])
        .arg(&root)
        .env("XTASK_ROLLBACK_FAULT", "inside:copy-halfway"));
    crashed.exits(-1).stderr_has(contains("half-way through a copy"));
    let full = fs::metadata(root.join(BACKUP).join("database/tmws.db.backup")).unwrap().len();
    let half = fs::metadata(&staged).map(|m| m.len()).unwrap_or_default();
    assert!(0 < half && half < full, "a copy cut half-way: {half} of {full} bytes staged");
    assert_eq!(sha256(&root.join("data/tmws.db")), failed_db, "the live database was touched");
    let resumed = rollback(&root, "database", &["--resume"]);
    assert_code(&resumed, 0);
    assert_database_restored(&root);
    assert!(!staged.exists(), "the staged copy is not left behind");
    assert_eq!(sha256(&only_bundle(&root).join("database/tmws.db")), failed_db);
}

#[test]
fn a_resumed_restore_that_finds_the_backup_in_place_puts_it_back_in_wal_mode() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    crash_rollback(&root, "database", "before:3");
    // As if the crash came after the restore renamed the backup into place,
    // before it switched the journal mode.
    let db = root.join("data/tmws.db");
    fs::copy(root.join(BACKUP).join("database/tmws.db.backup"), &db).unwrap();
    fs::set_permissions(&db, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let resumed = rollback(&root, "database", &["--resume"]);
    assert_code(&resumed, 0);
    resumed.stdout_has(contains("already restored from the backup, back in WAL mode"));
    assert!(
        !only_bundle(&root).join("database/after-preserve").exists(),
        "nothing was moved twice"
    );
    assert_database_restored(&root);
}

/// A run started from another backup than the profile's label is resumed
/// from that backup (its journal says which), not from the profile's: the
/// database comes back at that backup's revision. Another `--label` with
/// `--resume` is refused, changing nothing.
#[test]
fn a_resumed_run_restores_from_the_backup_it_started_from() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    run_in(&root, &["backup", "--label", "nightly", "--no-tag"]).exits(0);
    let nightly = revision(&root);
    let mut crash = crate::xtask();
    crash.args(["rollback", "--scenario", "database", "--label", "nightly", "--yes", "--root"]);
    crate::run(crash.arg(&root).env("XTASK_ROLLBACK_FAULT", "before:3")).exits(-1);
    fs::write(root.join("data/tmws.db"), b"not a database any more").unwrap();
    let other = ["rollback", "--resume", "--yes", "--label", "pre-phase4"];
    run_in(&root, &other).exits(2).stderr_has(contains(
        "the unfinished rollback restores from the backup nightly, not pre-phase4",
    ));
    let resumed = run_in(&root, &["rollback", "--resume", "--yes"]);
    resumed.exits(0).stdout_has(contains("resumed plan: rollback --scenario database"));
    resumed.stdout_has(contains("from backups/nightly"));
    assert_eq!(revision(&root), nightly, "resumed from another backup than its own");
}

#[test]
fn a_backup_verified_earlier_is_trusted_only_while_unchanged() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    assert_code(&run_in(&root, &["verify-backup"]), 0);
    let dry = run_in(&root, &["rollback", "--scenario", "database", "--dry-run"]);
    assert_code(&dry, 0);
    dry.stderr_has(contains("passed verify-backup at"));

    // Any write to the backup after it was verified voids that verification.
    let file = root.join(BACKUP).join("config/.env.example");
    fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let text = fs::read_to_string(&file).unwrap() + "TMWS_DEBUG=1\n";
    fs::write(&file, text).unwrap();
    let result = rollback(&root, "database", &[]);
    assert_code(&result, 4);
    result.stderr_has(contains("hashes"));
}

#[test]
fn a_downgrade_that_fails_half_way_leaves_the_database_as_it_was() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    // The last Phase 4 migration's downgrade drops its table, then fails.
    let file =
        root.join("migrations/versions/20251122_1042-f1c7e3a9b5d4_create_learning_feedback.py");
    let text = fs::read_to_string(&file).unwrap().replace(
        "    op.drop_table(\"learning_feedback\")",
        "    op.drop_table(\"learning_feedback\")\n    raise RuntimeError(\"downgrade interrupted\")",
    );
    fs::write(&file, text).unwrap();
    let failed_db = {
        let conn = rusqlite::Connection::open(root.join("data/tmws.db")).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        revision(&root)
    };
    let before = sha256(&root.join("data/tmws.db"));
    let result = rollback(&root, "migration", &[]);
    assert_code(&result, 1);
    result.stderr_has(contains("failed on the copy (exit code 1)"));
    result.stderr_has(contains("downgrade interrupted"));
    // The copy took the half-way state; the live database is as it was.
    assert_eq!(sha256(&root.join("data/tmws.db")), before, "the live database changed");
    assert_eq!(revision(&root), failed_db);
    assert!(tables(&root).contains(&"learning_feedback".to_string()));
    // The next steps it prints work from there, as printed.
    for command in ["--scenario migration --abandon", "--scenario database --yes"] {
        let printed = format!("cargo xtask rollback {command} --root {}", root.display());
        result.stderr_has(contains(printed.clone()));
        let args: Vec<&str> = printed.split_whitespace().skip(2).collect();
        assert_code(&run(xtask().args(&args)), 0);
    }
    assert_database_restored(&root);
}

#[test]
fn a_soft_reset_says_how_to_publish_and_never_pushes() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    git(&root, &["config", "branch.main.remote", "origin"]);
    let before = git(&root, &["rev-parse", "HEAD"]);
    let result = rollback(&root, "git", &["--commit", "HEAD~1"]);
    assert_code(&result, 0);
    result.stdout_has(contains("git push --force-with-lease origin main"));
    assert_ne!(git(&root, &["rev-parse", "HEAD"]), before);
    assert!(
        !git(&root, &["status", "--porcelain"]).is_empty(),
        "a soft reset keeps the changes staged"
    );
}

#[test]
fn on_a_terminal_the_plan_is_confirmed_first() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let file = "src/services/learning_trust_integration.py";
    break_import(&root, file);
    let before = digest(&root);
    let declined =
        on_a_terminal(&root, &format!("rollback --scenario files --paths {file}"), "n\n", "");
    assert_code(&declined, 4);
    declined.stdout_has(contains("Run this plan? [y/N]").and(contains("not confirmed")));
    assert_eq!(digest(&root), before, "declining changed the tree");
    let accepted =
        on_a_terminal(&root, &format!("rollback --scenario files --paths {file}"), "y\n", "");
    assert_code(&accepted, 0);
    assert_eq!(sha256(&root.join(file)), manifest_sha(&root, file));
}

/// Without a URL variable alembic cannot be pointed at the kept copy of the
/// failed database, and it never reads the tree's instead: the bundle says
/// why its view is missing, and the bundle is made all the same.
#[test]
fn without_a_database_url_variable_the_bundle_says_why_alembic_was_not_asked() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    fs::write(root.join("tmws-rollback.toml"), "database_url_env = \"\"\n").unwrap();
    let failed_db = sha256(&root.join("data/tmws.db"));
    let result = run_in(&root, &["forensics"]);
    assert_code(&result, 0);
    let bundle = only_bundle(&root);
    assert_eq!(sha256(&bundle.join("database/tmws.db")), failed_db);
    let problems = facts(&bundle)["problems"].to_string();
    assert!(problems.contains("database_url_env"), "{problems}");
    assert!(!bundle.join("alembic-current.txt").exists(), "alembic read the tree's database");
}

/// The instants around the restore's rename: after the backup's copy is
/// staged, and after the failed files moved into the bundle but before the
/// staged copy took their place; and between the migrations' exchange and
/// the move of the replaced folder into the bundle. The resumed run keeps
/// what moved in the run's one bundle, lists the database files with the
/// hashes of the bytes as found, and ends with the tree the backup describes.
#[test]
fn a_crash_around_the_restore_rename_loses_nothing() {
    for fault in ["inside:restore-staged", "inside:restore-moved", "inside:migrations-exchanged"] {
        let dir = sandbox("phase4");
        let root = root(&dir);
        let failed_db = sha256(&root.join("data/tmws.db"));
        // An untracked revision file: the checkout of the tag leaves it, so
        // the migrations folder still differs and is exchanged.
        let extra = root.join("migrations/versions/zz_untracked.py");
        fs::write(&extra, "revision = 'zz'\ndown_revision = None\n").unwrap();
        crash_rollback(&root, "complete", fault);
        if fault.ends_with("staged") {
            assert_eq!(sha256(&root.join("data/tmws.db")), failed_db, "{fault}: moved too early");
        }
        let resumed = rollback(&root, "complete", &["--resume"]);
        assert_code(&resumed, 0);
        let bundle = only_bundle(&root);
        assert_eq!(sha256(&bundle.join("database/tmws.db")), failed_db, "{fault}");
        let facts = facts(&bundle);
        let kept = facts["database_files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["sha256"] == failed_db.as_str());
        assert!(kept, "{fault}: the bundle's report lists the moved database: {facts}");
        assert_tree_equals_backup(&root);
        if fault.ends_with("exchanged") {
            let replaced = bundle.join("migrations-replaced");
            let count = fs::read_dir(&replaced).unwrap().count();
            assert!(count > 12, "{fault}: the replaced migrations ({count} files) are kept");
            assert!(!root.join("migrations/.versions.xtask-staged").exists());
        }
    }
}

#[test]
fn a_flag_the_scenario_does_not_take_is_refused_before_anything() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let database = ["rollback", "--scenario", "database", "--force", "--all", "--yes"];
    assert_refused(&root, &database, 2, "--scenario database does not take --all, --force");
    let complete = ["rollback", "--scenario", "complete", "--steps", "1", "--yes"];
    assert_refused(&root, &complete, 2, "--scenario complete does not take --steps");
    let soft = ["rollback", "--scenario", "git", "--commit", "HEAD~1", "--force", "--yes"];
    assert_refused(&root, &soft, 2, "not with a soft reset");
}

/// A run that holds the lock (here, waiting for its plan to be confirmed)
/// names itself in the record it seals: the next run says who holds it.
#[test]
fn a_run_waiting_for_its_confirmation_is_named_as_the_lock_holder() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let command = format!(
        "{} rollback --scenario database --root {}",
        crate::xtask_path().display(),
        root.display()
    );
    let mut waiting = crate::with_test_env(&mut Command::new("script"))
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The barrier: the lock file holds the waiting run's record.
    let lock = root.join(".tmws-rollback/lock");
    while fs::read_to_string(&lock).map_or(true, |record| record.is_empty()) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let busy = rollback(&root, "database", &[]);
    drop(waiting.stdin.take());
    let _ = waiting.wait();
    assert_code(&busy, 3);
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    busy.stderr_has(
        contains("another run holds the lock")
            .and(contains(format!(" on {}, started ", host.trim()))),
    );
}
