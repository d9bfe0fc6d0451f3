//! The tree's own `backups/` folder as a holder: each backup a folder named
//! by its label, described by its manifest.
use anyhow::Result;
use xshell::Shell;

use super::Holder;
use xtask_model::{
    backup::Backup,
    label::Label,
    profile::{Tree, labels},
    repository::Entry,
};

pub struct Local<'a>(pub &'a Tree);

impl Holder for Local<'_> {
    fn name(&self) -> String {
        self.0.backups().display().to_string()
    }

    /// Oldest first: by the time the manifest records, then (for backups
    /// of the same second) by the folder's mtime. A backup whose manifest
    /// cannot be read is listed with what is known: its label.
    fn entries(&self, _sh: &Shell) -> Result<Vec<Entry>> {
        let tree = self.0;
        let mut entries: Vec<(Entry, i128)> = labels(tree)
            .into_iter()
            .map(|label| {
                let dir = tree.backup(&label);
                let written = xtask_fs::files::Identity::of(&dir).map_or(0, |id| id.mtime_ns);
                let manifest = Backup::read_manifest(&tree.fs, &dir, Some(&label)).ok();
                let field = |f: fn(&xtask_model::manifest::Manifest) -> String| {
                    manifest.as_ref().map_or_else(|| "-".to_string(), f)
                };
                let entry = Entry {
                    id: label.to_string(),
                    time: field(|m| m.created.clone()),
                    commit: field(|m| m.git_commit.clone().unwrap_or_else(|| "-".into())),
                    revision: field(|m| m.database_revision.join("+")),
                    label: label.to_string(),
                };
                (entry, written)
            })
            .collect();
        entries.sort_by(|(a, at), (b, bt)| a.time.cmp(&b.time).then(at.cmp(bt)));
        Ok(entries.into_iter().map(|(e, _)| e).collect())
    }

    fn forget(&self, _sh: &Shell, entries: &[&Entry]) -> Result<()> {
        for entry in entries {
            let label: Label = Label::new(&entry.label)?;
            self.0.fs.remove_dir_all(&self.0.backup(&label))?;
        }
        Ok(())
    }
}
