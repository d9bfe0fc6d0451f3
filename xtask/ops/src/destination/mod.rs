//! Where backups are kept, behind one interface: the tree's own `backups/`
//! folder and an off-site repository. `list` and `prune` go over every
//! holder alike; `push`, `pull`, `backup --repo`, `verify-backup --repo` and
//! `rollback --repo` store in and fetch from a remote one. A new kind of
//! remote (another tool, another service) is one module here that
//! implements `Remote`, and one arm in `remote`.
mod bundles;
mod local;
mod restic;

use std::path::Path;

use anyhow::Result;
use xshell::Shell;

pub use bundles::{Bundles, Listed as ListedBundle};
pub use local::Local;

use xtask_model::{
    label::Label,
    manifest::Manifest,
    repository::{Entry, Repository, Stored},
};

/// A place that holds backups.
pub trait Holder {
    /// What it is, for a person: `backups/` or the repository.
    fn name(&self) -> String;

    /// Every backup it holds, oldest first.
    fn entries(&self, sh: &Shell) -> Result<Vec<Entry>>;

    /// Removes these of its entries.
    fn forget(&self, sh: &Shell, entries: &[&Entry]) -> Result<()>;
}

/// An off-site holder: it stores a backup folder and gives it back.
pub trait Remote: Holder {
    /// Stores the backup folder `dir` (its `manifest` names it); says what
    /// it stored, by its own account.
    fn store(&self, sh: &Shell, dir: &Path, manifest: &Manifest) -> Result<Stored>;

    /// Restores the newest copy of backup `label` into the empty folder
    /// `target`; returns its id.
    fn fetch(&self, sh: &Shell, label: &Label, target: &Path) -> Result<String>;

    /// The manifest of the newest copy of backup `label`, and its id, read
    /// without restoring the backup (for a plan). A manifest larger than
    /// `backup::MANIFEST_LIMIT` is refused, never held whole.
    fn manifest(&self, sh: &Shell, label: &Label) -> Result<(String, String)>;

    /// Checks its own consistency (the data of one backup is read back by
    /// `fetch`).
    fn check(&self, sh: &Shell) -> Result<()>;
}

/// The remote a repository names.
pub fn remote(repository: &Repository) -> Box<dyn Remote> {
    match repository {
        Repository::Restic(spec) => Box::new(restic::Restic(spec.clone())),
    }
}
