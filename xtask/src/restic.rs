//! Off-site backups through restic: a backup folder stored as a restic
//! snapshot tagged with its label, commit and revision, and restored from
//! one. The repository is named in restic's own syntax (a path, `rest:`,
//! `sftp:`, `s3:`…); the password only ever comes from restic's own
//! environment (`RESTIC_PASSWORD_FILE`, `RESTIC_PASSWORD_COMMAND`,
//! `RESTIC_PASSWORD`), never a flag, and is never written anywhere.
use std::{path::Path, time::Duration};

use anyhow::{Context, Result};
use serde::Deserialize;
use xshell::{Shell, cmd};

use crate::{
    exit::{failed, usage},
    manifest::Manifest,
    process,
};

/// How long one restic call may take.
const TIMEOUT: Duration = Duration::from_secs(3600);

/// The repository from `--repo`, else `TMWS_BACKUP_REPO`, else the profile.
pub fn repository(flag: Option<&str>, profile: Option<&str>) -> Result<String> {
    flag.map(str::to_string)
        .or_else(|| std::env::var("TMWS_BACKUP_REPO").ok().filter(|v| !v.is_empty()))
        .or_else(|| profile.map(str::to_string))
        .ok_or_else(|| {
            usage("no restic repository: pass --repo, set TMWS_BACKUP_REPO, or set backup_repo in tmws-rollback.toml")
        })
}

/// Runs restic on `repo`, in `dir` when given; its reason in one line when
/// it fails (an unreachable repository, a wrong password).
fn restic(sh: &Shell, repo: &str, dir: Option<&Path>, args: &[&str]) -> Result<process::Output> {
    let found = cmd!(sh, "restic version").quiet().ignore_stdout().ignore_stderr().run();
    if found.is_err() {
        return Err(usage("restic is not installed: install it (Debian: apt-get install restic)"));
    }
    let _d = dir.map(|d| sh.push_dir(d));
    let out = process::run(cmd!(sh, "restic -r {repo} --no-cache {args...}"), TIMEOUT)?;
    if !out.success() {
        let reason = out
            .stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no reason given")
            .trim()
            .to_string();
        return Err(failed(format!("restic {} on {repo} failed: {reason}", args[0])));
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
struct Snapshot {
    id: String,
    time: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// Stores the backup folder `dir` (label `label`) as a snapshot tagged
/// `tmws`, `label=…`, `commit=…` and `revision=…`; returns its id.
pub fn push(sh: &Shell, repo: &str, dir: &Path, manifest: &Manifest) -> Result<String> {
    let label = format!("label={}", manifest.label);
    let commit = format!("commit={}", manifest.git_commit.as_deref().unwrap_or("-"));
    let revision = format!("revision={}", manifest.database_revision.join("+"));
    let out = restic(
        sh,
        repo,
        Some(dir),
        &[
            "backup", "--json", "--tag", "tmws", "--tag", &label, "--tag", &commit, "--tag",
            &revision, ".",
        ],
    )?;
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["snapshot_id"].as_str().map(str::to_string))
        .context("restic backup printed no snapshot id")
}

/// One of our snapshots, as `list --repo` shows it.
#[derive(Debug, serde::Serialize)]
pub struct Stored {
    pub id: String,
    pub time: String,
    pub label: String,
    pub commit: String,
    pub revision: String,
}

/// Every snapshot of ours (tag `tmws`) in the repository, oldest first.
pub fn stored(sh: &Shell, repo: &str) -> Result<Vec<Stored>> {
    let out = restic(sh, repo, None, &["snapshots", "--json", "--tag", "tmws"])?;
    let mut snapshots: Vec<Snapshot> =
        serde_json::from_str(&out.stdout).context("read restic's list of snapshots")?;
    snapshots.sort_by(|a, b| a.time.cmp(&b.time));
    Ok(snapshots
        .into_iter()
        .map(|s| {
            let tag = |key: &str| {
                s.tags.iter().find_map(|t| t.strip_prefix(key)).unwrap_or("-").to_string()
            };
            Stored {
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

/// `restic check --read-data`: every pack of the repository read and checked.
pub fn check_data(sh: &Shell, repo: &str) -> Result<()> {
    restic(sh, repo, None, &["check", "--read-data"]).map(|_| ())
}

/// The newest snapshot of `label` in the repository.
pub fn latest(sh: &Shell, repo: &str, label: &str) -> Result<String> {
    let tag = format!("label={label}");
    let out = restic(sh, repo, None, &["snapshots", "--json", "--tag", &tag])?;
    let mut snapshots: Vec<Snapshot> =
        serde_json::from_str(&out.stdout).context("read restic's list of snapshots")?;
    snapshots.retain(|s| s.tags.iter().any(|t| t == "tmws"));
    snapshots.sort_by(|a, b| a.time.cmp(&b.time));
    snapshots
        .pop()
        .map(|s| s.id)
        .ok_or_else(|| usage(format!("the repository {repo} holds no snapshot of backup {label}")))
}

/// Restores snapshot `id` into the new folder `target`.
pub fn restore(sh: &Shell, repo: &str, id: &str, target: &Path) -> Result<()> {
    let target = target.display().to_string();
    restic(sh, repo, None, &["restore", id, "--target", &target])?;
    Ok(())
}
