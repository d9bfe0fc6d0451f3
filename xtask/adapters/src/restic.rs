//! Off-site backups through restic: a backup folder stored as a restic
//! snapshot tagged with its label, commit and revision, and restored from
//! one. The repository is named in restic's own syntax (a path, `rest:`,
//! `sftp:`, `s3:`…); the password only ever comes from restic's own
//! environment (`RESTIC_PASSWORD_FILE`, `RESTIC_PASSWORD_COMMAND`,
//! `RESTIC_PASSWORD`), never a flag, and is never written anywhere.
use std::{ffi::OsStr, path::Path, time::Duration};

use anyhow::{Context, Result};
use serde::Deserialize;
use xshell::{Shell, cmd};

use crate::{
    patience::{self, Heartbeat, Patience, Stopped},
    process,
};
use xtask_base::exit::{failed, usage};
use xtask_model::{
    label::Label,
    manifest::Manifest,
    repository::{DEADLINE_ENV, Entry, Stored, deadline, redacted},
};

/// After this long without progress a restic call says that it is waiting
/// (or after half its deadline, when that is shorter, so that the word
/// comes before the end).
const WAITING_NOTE: Duration = Duration::from_secs(30);

/// Whether `restic` is an executable file on PATH: looked up rather than
/// run (`restic version` would add a process start to every call).
fn installed() -> bool {
    xtask_fs::outside::on_path("restic").is_some()
}

/// How one restic call is watched, beyond its stdout (each chunk of which
/// is progress unless `progress` reads it).
#[derive(Default)]
struct Watch<'a> {
    /// Relays restic's `--json` status lines as progress named so; only a
    /// status that moves, or another message, is progress then.
    progress: Option<&'a str>,
    /// Beaten by whatever else sees restic get on (a restore's bytes).
    heartbeat: Heartbeat,
    /// The most bytes of stdout read: restic is stopped past it.
    stdout_cap: Option<usize>,
}

/// Runs restic on `repo`, in `dir` when given; its reason in one line when
/// it fails (an unreachable repository, a wrong password).
fn restic(sh: &Shell, repo: &str, dir: Option<&Path>, args: &[&str]) -> Result<process::Output> {
    Ok(restic_watched(sh, repo, dir, args, Watch::default())?.0)
}

/// `restic`, watched: a call that goes the deadline (`TMWS_RESTIC_TIMEOUT`)
/// without progress is stopped, and one that goes 30 s says it is waiting,
/// naming the repository (never its password). With a cap on its stdout,
/// whether it wrote more (it was stopped there, and is no failure).
fn restic_watched(
    sh: &Shell,
    repo: &str,
    dir: Option<&Path>,
    args: &[&str],
    watch: Watch<'_>,
) -> Result<(process::Output, bool)> {
    if !installed() {
        return Err(usage("restic is not installed: install it (Debian: apt-get install restic)"));
    }
    let shown = redacted(repo);
    let words = ["-r", shown.as_str(), "--no-cache"].into_iter().chain(args.iter().copied());
    xtask_base::events::command(&xtask_base::shell_words::line(
        OsStr::new("restic"),
        words.map(OsStr::new),
    ));
    let deadline = deadline()?;
    let patience = Patience {
        heartbeat: watch.heartbeat.clone(),
        deadline,
        note_after: WAITING_NOTE.min(deadline / 2),
        waiting: Box::new(waiting_note(args[0], &shown, deadline)),
        stdout_cap: watch.stdout_cap,
    };
    let _d = dir.map(|d| sh.push_dir(d));
    let cmd = cmd!(sh, "restic -r {repo} --no-cache {args...}");
    let (out, stopped) = match watch.progress {
        // restic paces its status lines to 1 a minute when stdout is no
        // terminal: ten a second, as often as a progress line is drawn.
        Some(what) => patience::run(
            cmd.env("RESTIC_PROGRESS_FPS", "10"),
            patience,
            Some(Box::new(status_progress(what, watch.heartbeat))),
        )?,
        None => patience::run(cmd, patience, None)?,
    };
    if stopped == Some(Stopped::TooMuchOutput) {
        return Ok((out, true));
    }
    if stopped == Some(Stopped::Silent) {
        return Err(failed(format!(
            "restic {} on {shown} made no progress for {} s, so it was stopped: the repository did not answer. Check that it is reachable and run this again, or give restic longer with {DEADLINE_ENV}=SECONDS",
            args[0],
            deadline.as_secs()
        )));
    }
    if !out.success() {
        let (reason, init) = reason(&out.stderr, &shown);
        let message = format!("restic {} on {shown} failed: {reason}", args[0]);
        return Err(match init {
            Some(init) => {
                xtask_base::exit::with_next(xtask_base::exit::Kind::Failed, message, init)
            }
            None => failed(message),
        });
    }
    Ok((out, false))
}

/// What a restic call says once it has gone a while without progress.
fn waiting_note(command: &str, shown: &str, deadline: Duration) -> impl FnMut(Duration) + use<> {
    let (command, shown) = (command.to_string(), shown.to_string());
    move |silence: Duration| {
        xtask_base::events::note(&format!(
            "restic {command}: waiting for repository {shown}, no progress for {} s; it is stopped after {} s without progress ({DEADLINE_ENV})",
            silence.as_secs(),
            deadline.as_secs()
        ));
    }
}

/// A watcher of restic's JSON lines that draws its `status` messages, and
/// beats `heartbeat` when restic gets on: a status whose files or bytes
/// moved, or any other message (restic repeats its status while it waits).
fn status_progress(what: &str, heartbeat: Heartbeat) -> impl FnMut(&str) + Send + use<> {
    let what = what.to_string();
    let mut progress: Option<xtask_base::events::Progress> = None;
    let mut last = None;
    move |line: &str| {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { return };
        if message["message_type"] == "status" {
            let done = (message["files_done"].as_u64(), message["bytes_done"].as_u64());
            if last.replace(done) != Some(done) {
                heartbeat.beat();
            }
        } else {
            heartbeat.beat();
        }
        if message["message_type"] == "status"
            && let (Some(total), Some(done)) =
                (message["total_bytes"].as_u64(), message["bytes_done"].as_u64())
        {
            progress
                .get_or_insert_with(|| xtask_base::events::Progress::bytes(&what, total))
                .update(done);
        }
        if message["message_type"] == "summary"
            && let Some(progress) = progress.take()
        {
            progress.finish();
        }
    }
}

/// restic's whole reason, on one line (from its `Fatal:` line on, when it
/// printed one), and the next step when the repository was never created.
fn reason(stderr: &str, repo: &str) -> (String, Option<String>) {
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let from =
        lines.iter().position(|l| l.starts_with("Fatal:")).unwrap_or(lines.len().saturating_sub(2));
    let said = lines[from..].join(" ");
    let said = if said.is_empty() { "no reason given".to_string() } else { said };
    if said.contains("Is there a repository at the following location?")
        || said.contains("unable to open config file")
    {
        let init = format!("restic -r {} init", xtask_base::shell_words::quote(repo));
        let said = format!(
            "{said}\nthe repository was never initialised: create it once with `{init}` (with the same RESTIC_PASSWORD_FILE, RESTIC_PASSWORD_COMMAND or RESTIC_PASSWORD), then run this again"
        );
        (said, Some(init))
    } else {
        (said, None)
    }
}

#[derive(Debug, Deserialize)]
struct Snapshot {
    id: String,
    time: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// Stores the backup folder `dir` (label `label`) as a snapshot tagged
/// `tmws`, `label=…`, `commit=…` and `revision=…`.
pub fn push(sh: &Shell, repo: &str, dir: &Path, manifest: &Manifest) -> Result<Stored> {
    let label = format!("label={}", manifest.label);
    let commit = format!("commit={}", manifest.git_commit.as_deref().unwrap_or("-"));
    let revision = format!("revision={}", manifest.database_revision.join("+"));
    let (out, _) = restic_watched(
        sh,
        repo,
        Some(dir),
        &[
            "backup", "--json", "-vv", "--tag", "tmws", "--tag", &label, "--tag", &commit, "--tag",
            &revision, ".",
        ],
        Watch { progress: Some("restic backup"), ..Watch::default() },
    )?;
    pushed(&out.stdout)
}

/// Reads restic's JSON lines: a `verbose_status` per file and folder (a
/// folder's item ends in `/`), then the `summary`.
fn pushed(stdout: &str) -> Result<Stored> {
    let mut files = Vec::new();
    let mut summary = None;
    for line in stdout.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        match message["message_type"].as_str() {
            Some("verbose_status") => {
                if let Some(item) = message["item"].as_str().filter(|i| !i.ends_with('/')) {
                    files.push(item.trim_start_matches('/').to_string());
                }
            }
            Some("summary") => summary = Some(message),
            _ => {}
        }
    }
    let summary = summary.context("restic backup printed no summary")?;
    files.sort();
    Ok(Stored {
        id: summary["snapshot_id"].as_str().context("no snapshot id")?.to_string(),
        files,
        bytes: summary["total_bytes_processed"].as_u64().unwrap_or(0),
        added: summary["data_added"].as_u64().unwrap_or(0),
    })
}

/// Every snapshot of ours (tag `tmws`) in the repository, oldest first. A
/// snapshot with more than one `label=` tag is not one this tool stored
/// (its labels never hold a comma): it is left out.
pub fn snapshots(sh: &Shell, repo: &str) -> Result<Vec<Entry>> {
    let out = restic(sh, repo, None, &["snapshots", "--json", "--tag", "tmws"])?;
    let mut snapshots: Vec<Snapshot> =
        serde_json::from_str(&out.stdout).context("read restic's list of snapshots")?;
    snapshots.sort_by(|a, b| a.time.cmp(&b.time));
    Ok(snapshots
        .into_iter()
        .filter(|s| s.tags.iter().filter(|t| t.starts_with("label=")).count() == 1)
        .map(|s| {
            let tag = |key: &str| {
                s.tags.iter().find_map(|t| t.strip_prefix(key)).unwrap_or("-").to_string()
            };
            Entry {
                label: tag("label="),
                commit: tag("commit="),
                revision: tag("revision="),
                id: s.id.chars().take(8).collect(),
                time: s.time,
            }
        })
        .collect())
}

/// Forgets snapshots by id and prunes the data only they used.
pub fn forget(sh: &Shell, repo: &str, ids: &[&str]) -> Result<()> {
    let mut args = vec!["forget", "--prune"];
    args.extend_from_slice(ids);
    restic(sh, repo, None, &args).map(|_| ())
}

/// `restic check`: the repository's structure (its index, every pack's
/// header, every snapshot's trees). The data of one snapshot is read in
/// full by restoring it (restic checks each blob as it restores); restic
/// 0.14 cannot read only one snapshot's packs (`--read-data-subset` takes a
/// fraction or a size, not pack ids), and `--read-data` reads the whole
/// repository.
pub fn check_structure(sh: &Shell, repo: &str) -> Result<()> {
    restic(sh, repo, None, &["check"]).map(|_| ())
}

/// The text of one file of a snapshot (`restic dump`), without restoring
/// it; `None` when it is larger than `limit` bytes (restic is stopped once
/// it has written that much, so no more is ever held).
pub fn dump(
    sh: &Shell,
    repo: &str,
    snapshot: &str,
    file: &str,
    limit: u64,
) -> Result<Option<String>> {
    let path = format!("/{file}");
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    let watch = Watch { stdout_cap: Some(cap), ..Watch::default() };
    let (out, over) = restic_watched(sh, repo, None, &["dump", snapshot, &path], watch)?;
    Ok((!over).then_some(out.stdout))
}

/// A snapshot holds whatever its writer put there (a setuid file among
/// them): it is restored only into a folder of this user's that no other
/// user may enter (0700), so nothing of it is within their reach while it
/// is restored, checked, or kept. restic leaves the target's own mode as
/// it finds it.
fn refuse_shared_target(target: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    match xtask_fs::outside::entry(target) {
        Some(meta)
            if meta.is_dir()
                && meta.uid() == xtask_fs::sys::effective_uid()
                && meta.mode() & 0o077 == 0 =>
        {
            Ok(())
        }
        _ => Err(failed(format!(
            "a snapshot is restored only into a folder of this user's that no one else may enter (mode 0700); {} is not one",
            target.display()
        ))),
    }
}

/// Restores the newest snapshot of `label` into the folder `target`, in one
/// call (each call derives the repository key again); returns its short id.
pub fn restore_latest(sh: &Shell, repo: &str, label: &Label, target: &Path) -> Result<String> {
    refuse_shared_target(target)?;
    let tags = format!("tmws,label={label}");
    let target = target.display().to_string();
    let args = ["restore", "latest", "--tag", &tags, "--target", &target];
    // restic 0.14 reports no progress while it restores: the bytes written
    // under the target are watched instead, for the progress line and as
    // the sign that the restore gets on.
    let restoring = std::sync::atomic::AtomicBool::new(true);
    let heartbeat = Heartbeat::default();
    let out = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut progress = xtask_base::events::Progress::timer("restic restore");
            let mut written = 0;
            while restoring.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let now = xtask_fs::files::bytes_beneath(Path::new(&target));
                if now > written {
                    heartbeat.beat();
                    written = now;
                }
                progress.update(now);
            }
            progress.finish();
        });
        let watch = Watch { heartbeat: heartbeat.clone(), ..Watch::default() };
        let out = restic_watched(sh, repo, None, &args, watch);
        restoring.store(false, std::sync::atomic::Ordering::Relaxed);
        out
    });
    let out = out.map_err(|err| {
        if format!("{err:#}").contains("no snapshot found") {
            usage(format!("the repository {} holds no snapshot of backup {label}", redacted(repo)))
        } else {
            err
        }
    })?;
    // "restoring <Snapshot 1a2b3c4d of [...] at ...> to ..."
    Ok(out
        .0
        .stdout
        .split_once("<Snapshot ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("latest")
        .to_string())
}
