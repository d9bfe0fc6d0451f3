//! `cargo xtask push` and `pull`: a backup folder to and from a restic
//! repository. A push stores a verified backup and checks that restic stored
//! every file of it, unchanged since it was verified; a pull restores beside
//! `backups/`, verifies it with every verify-backup check, then renames it
//! into place, never over an existing backup.

use anyhow::{Context, Result};
use serde::Serialize;
use xshell::Shell;

use crate::{
    destination,
    verify::{self, stamp},
};
use xtask_base::{
    exit::{failed, refused, usage},
    units,
};
use xtask_fs::{scratch::Removal, sys::Rename};
use xtask_model::label::Label;
use xtask_model::{
    advice::{self, labels_here},
    backup::Backup,
    manifest::{MANIFEST_FILE, Manifest},
    profile::{Tree, labels},
    repository::{Entry, Repository, Stored},
};

/// What a push did, by restic's own account.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Pushed {
    pub label: Label,
    /// The restic repository, in restic's syntax.
    pub repository: String,
    /// Restic's id of the snapshot.
    pub snapshot: String,
    /// The files restic stored.
    pub files: usize,
    /// The bytes of those files.
    pub bytes: u64,
    /// How much the repository grew: new data after de-duplication, plus
    /// restic's own index and tree records (so it can exceed `bytes`).
    pub added: u64,
    /// When the backup passed verify-backup: `now`, or `at TIME` when it
    /// had passed earlier and no file changed since.
    pub verified: String,
    #[serde(skip)]
    root: std::path::PathBuf,
}

impl Pushed {
    /// The line for people.
    pub fn summary(&self) -> String {
        format!(
            "pushed backups/{} to restic repository {} as snapshot {}: {} files, {}; the repository grew by {} (new data and restic's index); restic read them unchanged since they passed verify-backup {}\n(to check the stored bytes themselves: `{}`)",
            self.label,
            self.repository,
            self.snapshot,
            self.files,
            units::size(self.bytes),
            units::size(self.added),
            self.verified,
            advice::xtask(
                &format!(
                    "verify-backup --repo {} --label {}",
                    advice::quoted(&self.repository),
                    self.label
                ),
                &self.root
            ),
        )
    }
}

/// What a pull did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Pulled {
    pub label: Label,
    /// The restic repository, in restic's syntax.
    pub repository: String,
    /// Restic's id of the snapshot.
    pub snapshot: String,
    /// Where the backup now lies, verified.
    pub backup: std::path::PathBuf,
}

impl Pulled {
    pub fn summary(&self) -> String {
        format!(
            "pulled backup {} from restic repository {} (snapshot {}) into {}; it passed verify-backup",
            self.label,
            self.repository,
            self.snapshot,
            self.backup.display()
        )
    }
}

/// Stores a verified local backup in the repository and checks that what
/// restic stored is what was verified; says what it did.
///
/// The proof does not read the snapshot back (that costs a whole restore;
/// `verify-backup --repo` does it): restic's own account of the backup lists
/// every file it stored and the bytes it read, and every file keeps the
/// identity (size, inode, mtime, ctime) it had when it passed verify-backup
/// from before verification until after restic read it. Any write changes a
/// ctime, so restic read exactly the bytes that hash to the manifest.
pub fn push(
    sh: &Shell,
    tree: &Tree,
    label: &Label,
    repo: &Repository,
    python: Option<&std::path::Path>,
) -> Result<Pushed> {
    let remote = destination::remote(repo);
    let dir = tree.backup(label);
    if tree.fs.dir(&dir).is_err() {
        return Err(usage(format!("no backup {label} to push{}", labels_here(&labels(tree)))));
    }
    let (verified, before) = verified(sh, tree, label, &dir, python)?;
    let manifest = Backup::read_manifest(&tree.fs, &dir, Some(label))?;
    let pushed = remote.store(sh, &dir, &manifest)?;
    let after = stamp::snapshot(&dir)?;
    let differ = differences(&before, &after, &pushed, &manifest);
    if !differ.is_empty() {
        // Not left for a later pull to find: it is not the verified backup.
        let entry = Entry { id: pushed.id.clone(), label: label.to_string(), ..Entry::default() };
        let forgot = match remote.forget(sh, &[&entry]) {
            Ok(()) => "forgot it".to_string(),
            Err(err) => format!("could not forget it ({err:#}): run restic forget {}", pushed.id),
        };
        return Err(failed(format!(
            "snapshot {} in {repo} may not hold backup {label} as verified: {}; {forgot}",
            pushed.id,
            differ.join("; ")
        )));
    }
    Ok(Pushed {
        label: label.clone(),
        repository: repo.to_string(),
        snapshot: pushed.id,
        files: pushed.files.len(),
        bytes: pushed.bytes,
        added: pushed.added,
        verified,
        root: tree.root.clone(),
    })
}

/// The backup passes verify-backup: earlier, with every file unchanged since
/// (the stamp), or now. Returns when, and the identities it was verified with.
fn verified(
    sh: &Shell,
    tree: &Tree,
    label: &Label,
    dir: &std::path::Path,
    python: Option<&std::path::Path>,
) -> Result<(String, stamp::Snapshot)> {
    if let Some((when, files)) = stamp::unchanged_since(tree, dir) {
        return Ok((format!("at {when}"), files));
    }
    let before = stamp::snapshot(dir)?;
    let report = verify::verify(sh, dir, Some(label), Some(tree), python)?;
    if !report.ok() {
        return Err(refused(format!(
            "backup {} fails verification, so it is not pushed:\n  {}",
            dir.display(),
            report.failures().join("\n  ")
        )));
    }
    // A file changed while it was checked is not what was verified.
    if !stamp::record(tree, dir, before.clone())? {
        return Err(failed(format!(
            "a file of {} changed while it was verified; it is not pushed",
            dir.display()
        )));
    }
    Ok(("now".into(), before))
}

/// Restores the newest snapshot of `label` into `backups/<label>`: staged
/// beside it, verified with every verify-backup check, then renamed, never
/// over an existing backup; says what it did.
pub fn pull(
    sh: &Shell,
    tree: &Tree,
    label: &Label,
    repo: &Repository,
    python: Option<&std::path::Path>,
) -> Result<Pulled> {
    let target = tree.backup(label);
    if tree.fs.kind(&target)?.is_some() {
        return Err(usage(format!(
            "{} exists: a backup is never overwritten; remove or rename it first",
            target.display()
        )));
    }
    let remote = destination::remote(repo);
    // Another machine's checkout may have no backups/ at all yet; a pull
    // that fails takes away the folder it made (an exit 2 changes nothing).
    let made_backups = tree.fs.kind(&tree.backups())?.is_none();
    tree.fs.create_dir_all(&tree.backups())?;
    // A signal ends the run without the clean-up below: it removes the
    // stage, and the backups/ this pull made if nothing else is in it.
    let _backups_on_signal = made_backups
        .then(|| tree.fs.remove_on_signal(&tree.backups(), Removal::IfEmpty))
        .transpose()?;
    remove_stale_stages(tree, label)?;
    let run = xtask_fs::leftovers::RunId::current().tag();
    let stage = tree.backups().join(format!(".{label}.pulling-{run}"));
    // 0700, and it stays so as backups/LABEL: a snapshot may hold what its
    // writer chose (a setuid file), never within another user's reach.
    tree.fs.create_dir(&stage, 0o700).with_context(|| format!("create {}", stage.display()))?;
    // Held to the end: once renamed into place, the stage's name is free
    // and a signal finds nothing to remove there.
    let _stage_on_signal = tree.fs.remove_on_signal(&stage, Removal::Whole)?;
    let pulled = (|| {
        let id = remote.fetch(sh, label, &stage)?;
        let before = stamp::snapshot(&stage)?;
        let report = verify::verify(sh, &stage, Some(label), Some(tree), python)?;
        if !report.ok() {
            return Err(failed(format!(
                "snapshot {id} of {label} fails verification, so it is not put in place:\n  {}",
                report.failures().join("\n  ")
            )));
        }
        tree.fs.rename(&stage, &target, Rename::NoReplace)?;
        // Verified as it now lies (a rename keeps every file's identity):
        // a push or a rollback need not check it again.
        stamp::remember(tree, &target, before);
        Ok(id)
    })();
    let snapshot = pulled.map_err(|err| {
        let err = tree.fs.discard(&stage, err);
        let empty = tree.fs.list(&tree.backups()).is_ok_and(|left| left.is_empty());
        if made_backups && empty { tree.fs.discard(&tree.backups(), err) } else { err }
    })?;
    Ok(Pulled { label: label.clone(), repository: repo.to_string(), snapshot, backup: target })
}

/// Removes what a pull killed half-way left (`.LABEL.pulling-RUN` of a run
/// that is gone, see `xtask_fs::leftovers`; `.LABEL.pulling-PID` of a pid
/// that is gone, as older runs named it): an unverified copy, never a backup.
fn remove_stale_stages(tree: &Tree, label: &Label) -> Result<()> {
    let prefix = format!(".{label}.pulling-");
    for (name, _) in tree.fs.list(&tree.backups())? {
        let Some(run) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
        let gone = xtask_fs::leftovers::run_gone(run)
            || run.parse::<i32>().is_ok_and(|pid| !xtask_fs::sys::alive(pid));
        if gone {
            tree.fs.remove_dir_all(&tree.backups().join(&name))?;
            xtask_base::events::note(&format!(
                "removed backups/{} that an interrupted pull left (never verified)",
                name.to_string_lossy()
            ));
        }
    }
    Ok(())
}

/// The tree, the label and the repository of a push or a pull.
pub fn resolve(
    root: Option<&std::path::Path>,
    label: Option<Label>,
    repo: Option<&str>,
) -> Result<(Tree, Label, Repository)> {
    let (tree, label) = Tree::with_label(root, label)?;
    let repo = Repository::required(repo, &tree.profile)?;
    Ok((tree, label, repo))
}

/// What keeps the snapshot from being the verified backup: a file restic
/// did not store or stored beside it, bytes it did not read, a file changed
/// since it was verified.
fn differences(
    before: &stamp::Snapshot,
    after: &stamp::Snapshot,
    pushed: &Stored,
    manifest: &Manifest,
) -> Vec<String> {
    let mut out = Vec::new();
    let verified: Vec<&str> = before.paths().collect();
    for file in manifest.files.iter().map(|f| f.backup_path.as_str()).chain([MANIFEST_FILE]) {
        if !verified.contains(&file) {
            out.push(format!("{file} of the manifest is not in the folder"));
        }
    }
    for file in &verified {
        if !pushed.files.iter().any(|f| f == file) {
            out.push(format!("{file} was not stored"));
        }
    }
    for file in &pushed.files {
        if !verified.contains(&file.as_str()) {
            out.push(format!("{file} was stored but never verified"));
        }
    }
    if pushed.bytes != before.bytes() {
        out.push(format!("restic read {} bytes, the files hold {}", pushed.bytes, before.bytes()));
    }
    if after != before {
        out.push("a file changed since it was verified".into());
    }
    out
}
