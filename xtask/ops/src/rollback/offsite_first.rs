//! A rollback whose backup is kept only off-site: a fresh clone or a new
//! machine holds the git repository and the restic repository, nothing else.
//! The real run pulls the backup first (verified, under the lock, never over
//! one); the dry run reads only its manifest from the newest snapshot, so
//! the plan it shows is the one the pulled backup gives, with the pull
//! before step 1. The real run reads and checks that manifest the same way
//! (`plan`), so that a plan the tree refuses is refused before the pull
//! writes anything, and a dry run refuses what the real run refuses.
use anyhow::{Context, Result};
use xshell::Shell;

use super::Options;
use crate::{destination, offsite};
use xtask_base::exit::refused;
use xtask_model::{manifest::Manifest, profile::Tree};

/// The pull a dry run would make first: its line, and the manifest of the
/// snapshot it would pull.
pub(super) struct PlannedPull {
    pub line: String,
    pub manifest: Manifest,
}

/// Whether the backup must come from the repository: it is not in
/// `backups/` and a repository is given.
fn needed(tree: &Tree, o: &Options) -> Result<bool> {
    if o.repo.is_none() {
        return Ok(false);
    }
    // A fresh clone has no backups/ at all.
    Ok(tree.fs.kind(&tree.backups())?.is_none() || tree.fs.kind(&tree.backup(&o.label))?.is_none())
}

/// The real run: pulls the backup when it is needed; says what it pulled.
pub(super) fn pull(sh: &Shell, tree: &Tree, o: &Options) -> Result<Option<String>> {
    let Some(repo) = o.repo.as_ref().filter(|_| !o.dry_run) else { return Ok(None) };
    if !needed(tree, o)? {
        return Ok(None);
    }
    let pulled = offsite::pull(sh, tree, &o.label, repo, o.python.as_deref())
        .context("the backup is not in backups/, so it is pulled first")?;
    Ok(Some(pulled.summary()))
}

/// The pull a run would make, when it is needed, with the manifest of the
/// snapshot it would pull.
pub(super) fn plan(sh: &Shell, tree: &Tree, o: &Options) -> Result<Option<PlannedPull>> {
    let Some(repo) = o.repo.as_ref() else { return Ok(None) };
    if !needed(tree, o)? {
        return Ok(None);
    }
    let (snapshot, text) = destination::remote(repo).manifest(sh, &o.label)?;
    let manifest = Manifest::parse(&text).map_err(|err| {
        refused(format!("the manifest of snapshot {snapshot} in {repo} cannot be read: {err:#}"))
    })?;
    if manifest.label != o.label {
        return Err(refused(format!(
            "snapshot {snapshot} in {repo} is tagged {} but its manifest names backup {}",
            o.label, manifest.label
        )));
    }
    // Judged here for the dry run and the real run alike, before anything
    // is pulled: a dry run must never show a plan the real run refuses.
    let problems = manifest.path_problems();
    if !problems.is_empty() {
        return Err(refused(format!(
            "the manifest of snapshot {snapshot} in {repo} names paths outside the backup or the tree, so nothing is pulled or changed:\n  {}",
            problems.join("\n  ")
        )));
    }
    let line = format!(
        "pull snapshot {snapshot} of backup {} from restic repository {repo} into {}/, verify it with every verify-backup check, and only then go on (its manifest's paths are checked already; the files each step reads and writes are checked once it is pulled)",
        o.label,
        super::plan::rel(&tree.root, &tree.backup(&o.label))
    );
    Ok(Some(PlannedPull { line, manifest }))
}
