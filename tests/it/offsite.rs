//! push and pull with the real restic, to a repository on a local path and
//! to a REST repository served on loopback by a real server (rclone serve
//! restic), so the network path is real. The password only ever travels in
//! restic's own environment variable and is written nowhere.
use predicates::{prelude::*, str::contains};
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use crate::{Run, assert_code, digest, root, run, sandbox, xtask};

pub const PASSWORD: &str = "correct-horse-offsite-7f3a";

/// `xtask ARGS --root ROOT --repo REPO` with the repository's password.
pub fn offsite(root: &Path, repo: &str, password: &str, args: &[&str]) -> Run {
    run(xtask()
        .args(args)
        .arg("--root")
        .arg(root)
        .args(["--repo", repo])
        .env("RESTIC_PASSWORD", password))
}

/// `restic init` tunes its key derivation to take about half a second of
/// this machine, and every later restic call derives the key again: a
/// fifth of a second of CPU each, on a hundred calls a run. Under a quota
/// of a tenth of a core the tuning settles on restic's cheapest
/// parameters, and the repository opens in a few milliseconds; it is as
/// real, only weaker against guessing its test password. Where no quota
/// can be set (no cgroup controller for the CPU, not root), init runs as
/// it is, slower to open but the same to every test.
fn init(repo: &str) {
    let quota = CpuQuota::new();
    let mut init = Command::new("sh");
    let join = "{ [ -z \"$1\" ] || echo $$ > \"$1\"; } 2>/dev/null";
    init.args(["-c", &format!("{join}; exec restic -r \"$2\" init --quiet")])
        .arg("sh")
        .arg(quota.as_ref().map(|q| q.procs.clone()).unwrap_or_default())
        .arg(repo)
        .env("RESTIC_PASSWORD", PASSWORD);
    let status = init.status().expect("restic is installed by .ci/run");
    assert!(status.success(), "restic init {repo}");
}

/// A cgroup whose processes share a tenth of one core, removed on drop
/// (its one process has exited by then). Version 1's cpu controller or
/// version 2's, whichever this machine mounts and lets us write.
struct CpuQuota {
    dir: PathBuf,
    procs: PathBuf,
}

impl CpuQuota {
    fn new() -> Option<CpuQuota> {
        let name = format!("tmws-tests-kdf-{}", std::process::id());
        let ways = [
            ("/sys/fs/cgroup/cpu", "cpu.cfs_quota_us", "10000"),
            ("/sys/fs/cgroup", "cpu.max", "10000 100000"),
        ];
        ways.into_iter().find_map(|(base, file, value)| {
            let dir = Path::new(base).join(&name);
            fs::create_dir(&dir).ok()?;
            let quota = CpuQuota { procs: dir.join("cgroup.procs"), dir };
            // Only a cgroup's folder holds the kernel's files from the start.
            quota.procs.is_file().then_some(())?;
            fs::write(quota.dir.join(file), value).ok()?;
            Some(quota)
        })
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.dir);
    }
}

/// A new empty repository at `repo`: a copy of one made once (`init`
/// tunes its key derivation for seconds each time).
pub fn fresh_repository(repo: &Path) {
    let empty = crate::from_template("empty-restic-repository", |empty| {
        init(&empty.display().to_string());
    });
    let copied = Command::new("cp").arg("-a").arg(crate::root(&empty)).arg(repo).status().unwrap();
    assert!(copied.success(), "copy the empty repository to {}", repo.display());
}

/// The labels the repository holds, from `list --format json` (checked
/// against its schema).
fn stored_labels(listed: &Run) -> Vec<String> {
    let json: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    crate::schema::assert_valid("list", &json);
    json["repository"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap().to_string())
        .collect()
}

/// No file under `dir` holds the password.
fn assert_no_password(dir: &Path) {
    let out = Command::new("grep").args(["-r", "-l", PASSWORD]).arg(dir).output().unwrap();
    assert!(
        out.stdout.is_empty(),
        "the password was written to {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Push, lose the local backup, pull it back verified; the refusals.
fn round_trip(root: &Path, repo: &str) {
    let pushed = offsite(root, repo, PASSWORD, &["push"]);
    assert_code(&pushed, 0);
    pushed.stdout_has(contains("restic read them unchanged since"));
    // Pushed again unchanged: restic stores no new data, only its records.
    let again = offsite(root, repo, PASSWORD, &["push", "--format", "json"]);
    assert_code(&again, 0);
    let json: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    crate::schema::assert_valid("push", &json);
    let (bytes, added) = (json["bytes"].as_u64().unwrap(), json["added"].as_u64().unwrap());
    assert!(bytes > 0 && added < bytes / 10, "{json}");
    let backup = root.join("backups/pre-phase4");
    let before = digest(&backup);
    // As on another machine: no backups/ at all.
    fs::remove_dir_all(root.join("backups")).unwrap();
    let pulled = offsite(root, repo, PASSWORD, &["pull"]);
    assert_code(&pulled, 0);
    pulled.stdout_has(contains("it passed verify-backup"));
    pulled.stdout_has(contains("the repository grew by").not());
    assert_eq!(digest(&backup), before, "the pulled backup is the pushed one");
    // It passed verify-backup where it lies: a rollback need not check it again.
    let listed = crate::run_in(root, &["list", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(json["backups"][0]["verification"]["state"], "unchanged", "{listed:?}");
    let again = offsite(root, repo, PASSWORD, &["pull"]);
    assert_code(&again, 2);
    again.stderr_has(contains("never overwritten"));
    let missing = offsite(root, repo, PASSWORD, &["pull", "--label", "nightly"]);
    assert_code(&missing, 2);
    missing.stderr_has(contains("holds no snapshot of backup nightly"));
    let wrong = offsite(root, repo, "not-the-password", &["pull", "--label", "nightly"]);
    assert_code(&wrong, 1);
    wrong.stderr_has(contains("wrong password"));
    assert!(!root.join("backups/nightly").exists());
    for run in [&pushed, &pulled, &again, &missing, &wrong] {
        run.stdout_has(contains(PASSWORD).not()).stderr_has(contains(PASSWORD).not());
    }
    assert_no_password(root);
}

#[test]
fn push_and_pull_through_a_local_repository() {
    let (_dir, root, repo) = tree_and_repository();
    round_trip(&root, &repo);
}

/// A Phase 4 sandbox and a fresh repository beside it.
pub fn tree_and_repository() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let repo = dir.path().join("offsite");
    fresh_repository(&repo);
    let repo = repo.display().to_string();
    (dir, root, repo)
}

/// A fake restic that appends to a file of the backup before it runs the
/// real one: what a stranger writing into backups/ during a push would do.
#[test]
fn a_file_changed_while_restic_reads_it_fails_the_push_and_leaves_no_snapshot() {
    let (_dir, root, repo) = tree_and_repository();
    let verified = run(xtask().args(["verify-backup", "--root"]).arg(&root));
    assert_code(&verified, 0);
    let bin = tempfile::TempDir::new().unwrap();
    let real = which("restic").unwrap();
    let fake = bin.path().join("restic");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \" $* \" in *\" backup \"*) printf x >> SHA256SUMS ;; esac\nexec {} \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap());
    let pushed = run(xtask()
        .args(["push", "--repo", &repo, "--root"])
        .arg(&root)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("PATH", path));
    assert_code(&pushed, 1);
    pushed.stderr_has(contains("a file changed since it was verified"));
    pushed.stderr_has(contains("forgot it"));
    let listed = offsite(&root, &repo, PASSWORD, &["list", "--format", "json"]);
    assert_code(&listed, 0);
    assert!(stored_labels(&listed).is_empty(), "{listed:?}");
}

#[test]
fn a_repository_takes_backups_and_serves_list_verify_rollback_and_prune() {
    let (_dir, root, repo) = tree_and_repository();
    let pushed = offsite(&root, &repo, PASSWORD, &["push"]);
    assert_code(&pushed, 0);
    // A backup taken straight to the repository too.
    let taken = offsite(&root, &repo, PASSWORD, &["backup", "--label", "nightly", "--no-tag"]);
    assert_code(&taken, 0);
    taken.stdout_has(contains("pushed backups/nightly"));
    let listed = offsite(&root, &repo, PASSWORD, &["list", "--format", "json"]);
    assert_code(&listed, 0);
    assert_eq!(stored_labels(&listed), ["pre-phase4", "nightly"], "{listed:?}");
    // Verified where it is kept: restored to scratch, every check, restic check.
    let verified = offsite(&root, &repo, PASSWORD, &["verify-backup"]);
    assert_code(&verified, 0);
    verified.stdout_has(contains("repository.check"));
    // The local copy lost: the rollback pulls it first.
    fs::remove_dir_all(root.join("backups/pre-phase4")).unwrap();
    crate::breakage::corrupt_database(&root);
    let rolled = offsite(&root, &repo, PASSWORD, &["rollback", "--scenario", "database", "--yes"]);
    assert_code(&rolled, 0);
    rolled.stdout_has(contains("pulled backup pre-phase4"));
    // Prune applies its policy to the repository, and to it alone.
    let local = digest(&root.join("backups"));
    let pruned = offsite(
        &root,
        &repo,
        PASSWORD,
        &["prune", "--keep", "1", "--yes", "--force", "pre-phase4"],
    );
    assert_code(&pruned, 0);
    pruned.stdout_has(contains("forgot 1 snapshot(s)").and(contains("removed").not()));
    let listed = offsite(&root, &repo, PASSWORD, &["list", "--format", "json"]);
    assert_eq!(stored_labels(&listed), ["nightly"], "{listed:?}");
    assert_eq!(digest(&root.join("backups")), local, "backups/ untouched");
    assert_no_password(&root);
}

/// The labels in backups/, sorted.
fn local_labels(root: &Path) -> Vec<String> {
    let mut labels: Vec<String> = fs::read_dir(root.join("backups"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    labels.sort();
    labels
}

/// `prune` without --repo prunes backups/ alone, even with a repository
/// configured (and says how to prune that one); `--local --repo` prunes
/// both; --bundles with either, or an empty --repo, is exit 2 with nothing
/// removed anywhere.
#[test]
fn prune_prunes_backups_the_repository_or_both_as_asked() {
    let (_dir, root, repo) = tree_and_repository();
    for label in ["nightly", "weekly"] {
        let taken = offsite(&root, &repo, PASSWORD, &["backup", "--label", label, "--no-tag"]);
        assert_code(&taken, 0);
    }
    let stored = || stored_labels(&offsite(&root, &repo, PASSWORD, &["list", "--format", "json"]));
    assert_eq!(stored(), ["nightly", "weekly"]);
    let before = (digest(&root.join("backups")), stored());
    for (args, message) in [
        (&["--bundles", "--repo", repo.as_str()][..], "--bundles prunes forensics/ only"),
        (&["--bundles", "--local"], "--bundles prunes forensics/ only"),
        (&["--repo", ""], "--repo names the restic repository to prune; it was empty"),
    ] {
        let mut full = vec!["prune", "--keep", "1", "--yes"];
        full.extend_from_slice(args);
        crate::assert_refused(&root, &full, 2, message);
        assert_eq!((digest(&root.join("backups")), stored()), before, "{args:?}");
    }
    // A repository configured in the environment is not pruned unless
    // named; backups/ keeps its newest two and the pre-deploy backup.
    let local = run(xtask()
        .args(["prune", "--keep", "2", "--yes", "--root"])
        .arg(&root)
        .env("TMWS_BACKUP_REPO", &repo)
        .env("RESTIC_PASSWORD", PASSWORD));
    assert_code(&local, 0);
    local.stdout_has(contains("nothing to remove"));
    local.stderr_has(contains(format!("the configured repository {repo} is not pruned")));
    assert_eq!((digest(&root.join("backups")), stored()), before);
    let keep_one = ["prune", "--keep", "1", "--yes", "--local"];
    let local = run(xtask().args(keep_one).arg("--root").arg(&root).env("TMWS_BACKUP_REPO", &repo));
    assert_code(&local, 0);
    local.stdout_has(contains("removed 1 backup(s)").and(contains("forgot").not()));
    assert_eq!(local_labels(&root), ["pre-phase4", "weekly"], "nightly removed; pre-deploy kept");
    assert_eq!(stored(), ["nightly", "weekly"], "the repository untouched");
    // Both, in one plan: the JSON document names each holder.
    assert_code(&offsite(&root, &repo, PASSWORD, &["backup", "--label", "monthly", "--no-tag"]), 0);
    let both = offsite(
        &root,
        &repo,
        PASSWORD,
        &["prune", "--keep", "1", "--local", "--yes", "--format", "json"],
    );
    assert_code(&both, 0);
    let json: serde_json::Value = serde_json::from_str(&both.stdout).unwrap();
    crate::schema::assert_valid("prune", &json);
    let holders = json["holders"].as_array().unwrap();
    assert_eq!(holders.len(), 2, "{json}");
    assert!(holders[0]["holder"].as_str().unwrap().ends_with("backups"), "{json}");
    assert_eq!(holders[1]["holder"], repo.as_str());
    both.stderr_has(contains("removed 1 backup(s), forgot 2 snapshot(s)"));
    assert_eq!(local_labels(&root), ["monthly", "pre-phase4"]);
    assert_eq!(stored(), ["monthly"]);
}

#[test]
fn without_restic_the_error_names_the_package() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let bin = tempfile::TempDir::new().unwrap();
    for tool in ["git", "python3"] {
        if let Ok(path) = which(tool) {
            std::os::unix::fs::symlink(path, bin.path().join(tool)).unwrap();
        }
    }
    let result = run(xtask()
        .args(["pull", "--label", "elsewhere", "--repo", "/nowhere", "--root"])
        .arg(&root)
        .env("PATH", bin.path()));
    assert_code(&result, 2);
    result.stderr_has(contains("apt-get install restic"));
}

pub fn which(tool: &str) -> Result<std::path::PathBuf, ()> {
    let out =
        Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().map_err(|_| ())?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if path.is_empty() { Err(()) } else { Ok(path.into()) }
}

/// A server we started, stopped by its own pid.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn push_and_pull_through_a_rest_server_on_loopback() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let (server, repo) = rest_server(dir.path());
    round_trip(&root, &repo);
    // The server gone: restic's reason in one line, nothing changed here.
    drop(server);
    let before = digest(&root);
    let unreachable = offsite(&root, &repo, PASSWORD, &["push"]);
    assert_code(&unreachable, 1);
    unreachable.stderr_has(contains("restic backup on rest:"));
    assert_eq!(digest(&root), before);
}

/// `rclone serve restic` on a free loopback port, serving a fresh
/// repository under `dir`; the server and the repository's restic name.
pub fn rest_server(dir: &Path) -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let store = dir.join("rest-store");
    fs::create_dir_all(&store).unwrap();
    let server = Server(
        Command::new("rclone")
            .args(["serve", "restic", "--addr", &format!("127.0.0.1:{port}")])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rclone is installed by .ci/run"),
    );
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    fresh_repository(&store.join("repository"));
    (server, format!("rest:http://127.0.0.1:{port}/repository"))
}
