//! Which of the profile's folders each of the backup's revision files goes
//! back to. One folder takes them all (a backup taken before the folder
//! moved restores into where it is now); with several, each file returns to
//! the folder it was backed up from, and a file from a folder the profile
//! no longer names stops the plan before anything changes.
use anyhow::Result;

use xtask_base::exit::refused;
use xtask_model::{
    manifest::{FileEntry, Kind, Manifest},
    profile::Tree,
};

/// Each folder of the profile (relative to the root) with the backup's
/// revision files that belong in it, in the profile's order.
pub fn by_folder(tree: &Tree, manifest: &Manifest) -> Vec<(String, Vec<FileEntry>)> {
    let folders = &tree.profile.migrations;
    folders
        .iter()
        .map(|folder| {
            let entries = manifest.files_of(Kind::Migration);
            let held = entries.filter(|f| folders.holding(&f.source_path) == Some(folder));
            (folder.to_string(), held.cloned().collect())
        })
        .collect()
}

/// Refuses a backup with a revision file from a folder the profile does
/// not name: it would have nowhere to go back to.
pub fn refuse_unplaced(tree: &Tree, manifest: &Manifest) -> Result<()> {
    let folders = &tree.profile.migrations;
    let unplaced =
        manifest.files_of(Kind::Migration).find(|f| folders.holding(&f.source_path).is_none());
    match unplaced {
        Some(entry) => Err(refused(format!(
            "the backup holds the revision {}, whose folder the profile's migrations ({}) does not name: name that folder in migrations (as the backup's commit did), or restore it by hand (docs/backup-format.md). Nothing was changed",
            entry.source_path, folders
        ))),
        None => Ok(()),
    }
}
