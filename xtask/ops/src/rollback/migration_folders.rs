//! Which of the profile's folders each of the backup's revision files goes
//! back to. One folder takes them all (a backup taken before the folder
//! moved restores into where it is now); with several, each file returns to
//! the folder it was backed up from, and a file from a folder the profile
//! no longer names stops the plan before anything changes.
use std::path::Path;

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
        None => refuse_merged(tree, manifest),
    }
}

/// Refuses a backup whose revisions come from several folders when the
/// profile names one: that one folder would take them all, beside the
/// other folders' own (one revision in two files). A backup of one folder
/// restores into the profile's one, wherever it was (a folder that moved).
fn refuse_merged(tree: &Tree, manifest: &Manifest) -> Result<()> {
    let folders = &tree.profile.migrations;
    if folders.several() {
        return Ok(());
    }
    let mut held: Vec<String> = Vec::new();
    for entry in manifest.files_of(Kind::Migration) {
        let parent = Path::new(&entry.source_path).parent().unwrap_or(Path::new(""));
        let parent = parent.to_string_lossy().into_owned();
        if !held.contains(&parent) {
            held.push(parent);
        }
    }
    if held.len() < 2 {
        return Ok(());
    }
    Err(refused(format!(
        "the backup holds revisions of several folders ({}) but the profile's migrations names one ({folders}): name each of them in migrations, as a list (as the backup's commit did), or restore them by hand (docs/backup-format.md). Nothing was changed",
        held.join(", ")
    )))
}
