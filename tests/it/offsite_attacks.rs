//! What whoever can write to the restic repository, or stands between the
//! tool and it, can throw at the tool: a repository that never answers, a
//! snapshot that holds a setuid file, a snapshot whose manifest sends
//! restores out of the tree or is too large to read.
//! Every snapshot here is made by the real restic, as such a writer would.
use std::{
    fs,
    net::TcpListener,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use predicates::{prelude::*, str::contains};

use crate::{
    assert_code, digest,
    offsite::{PASSWORD, offsite, tree_and_repository, which},
    root, run, sandbox, xtask,
};

/// A loopback TCP server that accepts every connection and never answers:
/// what a repository behind a hung proxy or a stopped process looks like
/// to restic. Stopped when dropped.
struct SilentServer {
    port: u16,
    stop: Arc<AtomicBool>,
    accepting: Option<thread::JoinHandle<()>>,
}

impl SilentServer {
    fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepting = thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                // Each connection is kept open, unread, until the end.
                let mut held = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => held.push(stream),
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            }
        });
        SilentServer { port, stop, accepting: Some(accepting) }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.join();
        }
    }
}

/// `xtask ARGS --root ROOT --repo REPO` with restic's deadline set to
/// `deadline` seconds.
fn with_deadline(root: &Path, repo: &str, deadline: &str, args: &[&str]) -> crate::Run {
    run(xtask()
        .args(args)
        .arg("--root")
        .arg(root)
        .args(["--repo", repo])
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("TMWS_RESTIC_TIMEOUT", deadline))
}

/// `list`, `pull` and `push` on a repository that never answers say that
/// they wait, naming the repository without the password its URL holds,
/// and end at the deadline: exit 1 (the operation failed, and the message
/// says what to do), nothing changed.
#[test]
fn a_repository_that_never_answers_ends_list_pull_and_push_at_the_deadline() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    // Verified beforehand, so that the push has nothing to record.
    assert_code(&crate::run_in(&root, &["verify-backup"]), 0);
    let server = SilentServer::start();
    let repo = format!("rest:http://tmws:{PASSWORD}@127.0.0.1:{}/repository", server.port);
    let shown = format!("rest:http://tmws:***@127.0.0.1:{}/repository", server.port);
    let before = digest(&root);
    for args in [&["list"][..], &["pull", "--label", "nightly"], &["push"]] {
        let ended = with_deadline(&root, &repo, "2", args);
        ended.exits(1).stderr_has(
            contains(format!("waiting for repository {shown}, no progress for"))
                .and(contains(format!("on {shown} made no progress for 2 s, so it was stopped")))
                .and(contains("the repository did not answer"))
                .and(contains("TMWS_RESTIC_TIMEOUT=SECONDS")),
        );
        ended.stdout_has(contains(PASSWORD).not()).stderr_has(contains(PASSWORD).not());
        assert_eq!(digest(&root), before, "{args:?} changed the tree");
        assert!(!root.join("backups/nightly").exists());
    }
}

/// A deadline that is no whole number of seconds is a usage error before
/// any work: `backup --repo` takes no backup.
#[test]
fn a_restic_deadline_that_is_no_number_is_refused_before_any_work() {
    let (_dir, root, repo) = tree_and_repository();
    let before = digest(&root);
    for deadline in ["soon", "0", "-5"] {
        let refused =
            with_deadline(&root, &repo, deadline, &["backup", "--label", "nightly", "--no-tag"]);
        refused.exits(2).stderr_has(
            contains("TMWS_RESTIC_TIMEOUT is how many seconds")
                .and(contains(format!("at least 1; it was {deadline:?}"))),
        );
        assert_eq!(digest(&root), before, "{deadline}: the backup was taken");
    }
}

/// Stores a copy of the tree's backup `pre-phase4`, changed by `edit`, as
/// the newest snapshot of that label, tagged as the tool tags its own.
fn store_crafted(root: &Path, repo: &str, edit: impl FnOnce(&Path)) {
    let crafted = root.with_file_name("crafted");
    crate::copy_tree(&root.join("backups/pre-phase4"), &crafted);
    let writable = Command::new("chmod").args(["-R", "u+w"]).arg(&crafted).status().unwrap();
    assert!(writable.success());
    edit(&crafted);
    let stored = Command::new("restic")
        .args(["-r", repo, "backup", "--quiet", "--tag", "tmws", "--tag", "label=pre-phase4"])
        .args(["--tag", "commit=-", "--tag", "revision=-", "."])
        .current_dir(&crafted)
        .env("RESTIC_PASSWORD", PASSWORD)
        .status()
        .unwrap();
    assert!(stored.success(), "restic backup of the crafted copy");
    fs::remove_dir_all(&crafted).unwrap();
}

/// A restic that runs the real one, then, after a restore, writes down
/// how the folder it restored into looks while the xtask still holds it:
/// its mode, whether `payload` in it is setuid, and what the user `nobody`
/// can reach (the folder's parent, and `payload`). The folder and the log.
fn spying_restic(dir: &Path) -> (PathBuf, PathBuf) {
    let bin = dir.join("spy-bin");
    fs::create_dir(&bin).unwrap();
    let log = dir.join("restores.log");
    let as_nobody = "setpriv --reuid=nobody --regid=nogroup --clear-groups";
    let script = format!(
        r#"#!/bin/sh
{real} "$@"
status=$?
previous=; target=
for arg in "$@"; do [ "$previous" = --target ] && target=$arg; previous=$arg; done
if [ -n "$target" ]; then
  {{
    stat -c '%a' "$target"
    test -u "$target/payload" && echo setuid
    {as_nobody} test -x "$(dirname "$target")" && echo parent-reachable-by-nobody
    {as_nobody} stat "$target/payload" >/dev/null 2>&1 && echo payload-reachable-by-nobody
  }} | tr '\n' ' ' >> {log}
  echo >> {log}
fi
exit $status
"#,
        real = which("restic").unwrap().display(),
        log = log.display(),
    );
    fs::write(bin.join("restic"), script).unwrap();
    fs::set_permissions(bin.join("restic"), fs::Permissions::from_mode(0o755)).unwrap();
    (bin, log)
}

/// A snapshot with a setuid file in it is restored into a 0700 folder by
/// `verify-backup --repo`, `pull` and `rollback --repo`: `nobody` reaches
/// the folder's parent but not the file, while the xtask holds it (the
/// parent of `verify-backup --repo`'s folder is its 0700 scratch folder,
/// which `nobody` does not reach either).
#[test]
fn a_snapshots_setuid_file_is_never_within_another_users_reach() {
    let (dir, root, repo) = tree_and_repository();
    // Every folder above the restores is open to others, as a shared
    // machine's are: only the restore folder's own mode keeps them out.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    store_crafted(&root, &repo, |crafted| {
        let payload = crafted.join("payload");
        fs::write(&payload, "#!/bin/sh\nid\n").unwrap();
        fs::set_permissions(&payload, fs::Permissions::from_mode(0o4755)).unwrap();
    });
    let (bin, log) = spying_restic(dir.path());
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let with_spy = |args: &[&str]| {
        crate::run(
            crate::xtask()
                .args(args)
                .arg("--root")
                .arg(&root)
                .args(["--repo", &repo])
                .env("RESTIC_PASSWORD", PASSWORD)
                .env("PATH", &path),
        )
    };
    // The payload is no file of the manifest: each command restores the
    // snapshot, then fails its verification.
    let unlisted = || contains("files.unlisted").and(contains("not in the manifest: payload"));
    with_spy(&["verify-backup"]).exits(1).stdout_has(unlisted());
    fs::remove_dir_all(root.join("backups")).unwrap();
    with_spy(&["pull"]).exits(1).stderr_has(unlisted());
    with_spy(&["rollback", "--scenario", "database", "--yes"]).exits(1).stderr_has(unlisted());
    let restores = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = restores.lines().map(str::trim).collect();
    let (private, shared) = ("700 setuid", "700 setuid parent-reachable-by-nobody");
    assert_eq!(lines, [private, shared, shared], "{restores}");
    assert!(!root.join("backups/pre-phase4").exists(), "an unverified snapshot is never kept");
}

/// A pulled backup stays in its 0700 folder.
#[test]
fn a_pulled_backup_keeps_its_private_folder() {
    let (_dir, root, repo) = tree_and_repository();
    assert_code(&offsite(&root, &repo, PASSWORD, &["push"]), 0);
    fs::remove_dir_all(root.join("backups")).unwrap();
    assert_code(&offsite(&root, &repo, PASSWORD, &["pull"]), 0);
    let mode = fs::metadata(root.join("backups/pre-phase4")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

/// A snapshot whose manifest sends restores to `../../../../etc/…` and
/// `/etc/cron.d/…`: the dry run refuses it as the real run does (exit 4,
/// the same words), before anything is pulled or changed.
#[test]
fn a_dry_run_refuses_a_snapshots_manifest_as_the_real_run_does() {
    let (_dir, root, repo) = tree_and_repository();
    store_crafted(&root, &repo, |crafted| {
        let manifest = crafted.join("BACKUP_MANIFEST.txt");
        let text = fs::read_to_string(&manifest)
            .unwrap()
            .replace("\tsrc/services/verification_service.py\n", "\t../../../../etc/cron.d/x\n")
            .replace("\tpyproject.toml\n", "\t/etc/cron.d/y\n");
        fs::write(&manifest, text).unwrap();
    });
    fs::remove_dir_all(root.join("backups")).unwrap();
    let before = digest(&root);
    let mut said = Vec::new();
    for extra in ["--dry-run", "--yes"] {
        let refused =
            offsite(&root, &repo, PASSWORD, &["rollback", "--scenario", "complete", extra]);
        refused.exits(4).stderr_has(
            contains("names paths outside the backup or the tree, so nothing is pulled")
                .and(contains("critical_files/verification_service.py: path \"../../../../etc/cron.d/x\" must be relative"))
                .and(contains("config/pyproject.toml: path \"/etc/cron.d/y\" must be relative")),
        );
        let words: Vec<&str> = refused.stderr.lines().filter(|l| !l.starts_with("$ ")).collect();
        said.push(words.join("\n"));
        assert_eq!(digest(&root), before, "{extra} changed the tree");
        assert!(!root.join("backups").exists(), "{extra} pulled the snapshot");
    }
    assert_eq!(said[0], said[1], "the dry run says what the real run says");
}

/// A snapshot whose manifest is larger than any backup writes (65 MiB,
/// zeros after the real text: restic stores them in a few compressed
/// blobs): a 392 MiB one once took the tool 795 MiB of memory. The tool
/// stops reading it at 64 MiB, whether restic dumps it or restores it, and
/// says so in one line: `rollback --repo` (dry run or not) refuses it
/// before it pulls anything (exit 4), `verify-backup --repo` and `pull`
/// fail it as a backup that fails verification (exit 1). Nothing changes.
#[test]
fn a_snapshots_manifest_too_large_to_read_is_refused_unread() {
    let (_dir, root, repo) = tree_and_repository();
    store_crafted(&root, &repo, |crafted| {
        let manifest =
            fs::OpenOptions::new().write(true).open(crafted.join("BACKUP_MANIFEST.txt")).unwrap();
        manifest.set_len(65 << 20).unwrap();
    });
    let too_large =
        || contains("BACKUP_MANIFEST.txt is larger than 64 MiB, which no backup writes");
    let before = digest(&root);
    let verified = offsite(&root, &repo, PASSWORD, &["verify-backup"]);
    verified.exits(1).stdout_has(contains("manifest").and(too_large()));
    assert_eq!(digest(&root), before, "verify-backup --repo changed the tree");
    fs::remove_dir_all(root.join("backups")).unwrap();
    let before = digest(&root);
    for extra in ["--dry-run", "--yes"] {
        let refused =
            offsite(&root, &repo, PASSWORD, &["rollback", "--scenario", "complete", extra]);
        refused.exits(4).stderr_has(contains("snapshot ").and(too_large()));
        assert_eq!(digest(&root), before, "{extra} changed the tree");
        assert!(!root.join("backups").exists(), "{extra} pulled the snapshot");
    }
    let pulled = offsite(&root, &repo, PASSWORD, &["pull"]);
    pulled.exits(1).stderr_has(contains("fails verification").and(too_large()));
    assert_eq!(digest(&root), before, "pull changed the tree");
    assert!(!root.join("backups").exists(), "pull kept the snapshot");
}
