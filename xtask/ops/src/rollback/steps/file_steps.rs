//! The file steps: config and critical files restored one by one, and the
//! migrations folder swapped whole.
use std::path::Path;

use anyhow::{Context, Result};

use super::Ctx;
use xtask_fs::{files, sys::Rename};
use xtask_model::manifest::{FileEntry, Kind};

impl Ctx<'_> {
    /// Restores the config or critical files whose hash differs.
    pub(super) fn restore_kind(
        &mut self,
        kind: Kind,
        only: Option<&Vec<String>>,
    ) -> Result<String> {
        let entries: Vec<_> = self
            .manifest
            .files_of(kind)
            .filter(|f| only.is_none_or(|paths| paths.contains(&f.source_path)))
            .cloned()
            .collect();
        let fs = &self.tree.fs;
        let mut restored = Vec::new();
        for entry in &entries {
            files::check_relative(&entry.source_path)?;
            let target = self.tree.path(&entry.source_path);
            if fs.expect_file_or_nothing(&target)?
                && self.tree.fs.sha256(&target)?.0 == entry.sha256
            {
                continue;
            }
            if let Some(parent) = target.parent() {
                fs.create_dir_all(parent)?;
            }
            let source = self.backup_file(&entry.backup_path)?;
            files::copy_staged(fs, &source, &target, Some(&entry.sha256), entry.restored_mode())
                .with_context(|| format!("restore {}", entry.source_path))?;
            restored.push(entry.source_path.clone());
        }
        // Files that did not exist at backup time go into the bundle: the
        // tree then holds what it held when the backup was taken.
        let absent: Vec<String> = self
            .manifest
            .absent_of(kind)
            .filter(|p| only.is_none_or(|paths| paths.iter().any(|q| q == p)))
            .map(String::from)
            .collect();
        let mut removed = Vec::new();
        for path in absent {
            let target = self.tree.path(&path);
            if self.tree.fs.expect_file_or_nothing(&target)? {
                self.bundle()?;
                let dest = files::free_name(&self.bundle_dir.join("added-since").join(&path));
                if let Some(parent) = dest.parent() {
                    self.tree.fs.create_dir_all(parent)?;
                }
                self.tree.fs.move_across(&target, &dest)?;
                removed.push(path);
            }
        }
        let mut done = Vec::new();
        if !restored.is_empty() {
            done.push(format!("restored {}", restored.join(", ")));
        }
        if !removed.is_empty() {
            done.push(format!(
                "moved into the bundle (absent at backup time): {}",
                removed.join(", ")
            ));
        }
        self.changed |= !done.is_empty();
        Ok(if done.is_empty() {
            format!("all {} {} files already equal the backup", entries.len(), kind.name())
        } else {
            done.join("; ")
        })
    }

    /// Swaps each migrations folder for the backup's (see
    /// `restore_migration_folder`), one after the other: a rerun finds the
    /// folders already swapped equal to the backup and moves on.
    pub(super) fn restore_migrations(&mut self) -> Result<String> {
        let folders = crate::rollback::migration_folders::by_folder(self.tree, &self.manifest);
        let several = folders.len() > 1;
        let mut said = Vec::new();
        for (folder, entries) in folders {
            let done = self.restore_migration_folder(&folder, &entries)?;
            said.push(if several { format!("{folder}: {done}") } else { done });
        }
        Ok(said.join("; "))
    }

    /// Swaps one migrations folder: the backup's revisions are staged in a
    /// sibling folder, the two folders are exchanged in one atomic rename,
    /// and the replaced one moves into the bundle. At no instant is there no
    /// migrations folder, and it is never emptied in place.
    fn restore_migration_folder(&mut self, folder: &str, entries: &[FileEntry]) -> Result<String> {
        let dir = self.tree.path(folder);
        let fs = self.tree.fs.clone();
        let staged = files::staging_path(&dir);
        let dir_exists = fs.expect_dir_or_nothing(&dir)?;
        if dir_exists && self.migrations_match(&dir, entries)? {
            // A crash right after the exchange leaves the replaced folder at
            // the staging name: it is evidence, kept in the bundle.
            if fs.expect_dir_or_nothing(&staged)? {
                self.keep_replaced(&staged)?;
            }
            return Ok("migrations already equal the backup".into());
        }
        self.changed = true;
        if fs.expect_dir_or_nothing(&staged)? {
            // An earlier staging folder is never deleted: it may be what a
            // crash left after the exchange.
            self.keep_replaced(&staged)?;
        }
        fs.create_dir_all(&staged)?;
        for entry in entries {
            let source = self.backup_file(&entry.backup_path)?;
            let output =
                fs.create_new(&staged.join(revision_name(entry)?), entry.restored_mode())?;
            let (sha, _) = files::copy_hashed(&source, &output)?;
            anyhow::ensure!(
                sha == entry.sha256,
                "{} does not match the manifest",
                entry.backup_path
            );
        }
        // Files of the folder that are not revisions (an __init__.py, a README)
        // are the project's own: they stay.
        if dir_exists {
            for (name, kind) in fs.list(&dir)? {
                let name = name.to_string_lossy().into_owned();
                let revision = name.ends_with(".py") && !name.starts_with("__");
                if kind.is_file() && !revision {
                    files::copy_new(&fs, &dir.join(&name), &fs, &staged.join(&name))?;
                }
            }
            fs.rename(&staged, &dir, Rename::Exchange)
                .context("exchange the restored migrations with the current ones")?;
            crate::rollback::fault_hook("inside", "migrations-exchanged");
            self.keep_replaced(&staged)?;
        } else {
            fs.rename(&staged, &dir, Rename::NoReplace)
                .context("move the restored migrations into place")?;
        }
        Ok(format!("swapped in {} revision files", entries.len()))
    }

    /// Moves a replaced migrations folder into this run's bundle.
    pub(super) fn keep_replaced(&mut self, folder: &Path) -> Result<()> {
        self.bundle()?;
        let replaced = files::free_name(&self.bundle_dir.join("migrations-replaced"));
        self.tree.fs.move_across(folder, &replaced)
    }

    /// Whether the folder holds the backup's revisions and nothing else
    /// alembic would load: a `*.py` link or FIFO counts, so that the swap
    /// moves it into the bundle rather than leaving it beside the restored
    /// revisions.
    pub(super) fn migrations_match(&self, dir: &Path, entries: &[FileEntry]) -> Result<bool> {
        let loaded = self.tree.fs.list(dir)?.into_iter().filter(|(name, _)| {
            let name = name.to_string_lossy();
            name.ends_with(".py") && !name.starts_with("__")
        });
        if loaded.count() != entries.len() {
            return Ok(false);
        }
        for entry in entries {
            let path = dir.join(revision_name(entry)?);
            if !self.tree.fs.is_file(&path) || self.tree.fs.sha256(&path)?.0 != entry.sha256 {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// A backed-up revision file's name in its folder.
fn revision_name(entry: &FileEntry) -> Result<&std::ffi::OsStr> {
    Path::new(&entry.source_path).file_name().context("a revision file has a name")
}
