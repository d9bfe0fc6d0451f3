//! A backup: its folder under `backups/` and its parsed manifest, opened one
//! way. The folder must be a real folder inside the root; the manifest is
//! read through the file-access layer (never through a link out of it, never
//! from a FIFO) and must name the folder's own label.
use std::{
    io::Read,
    path::{Path, PathBuf},
};

use anyhow::Result;

use crate::{
    advice,
    label::Label,
    manifest::{MANIFEST_FILE, Manifest},
    profile::{Tree, labels},
};
use xtask_base::exit::{Kind, kind_of, refused, usage, with_next};
use xtask_fs::RootDir;

/// The most bytes a manifest may hold. A manifest has one short line per
/// file, so even a service of a million files stays far below it; what is
/// larger was not written by a backup, and reading it whole would let
/// whoever wrote it (into a backup folder or a restic repository) make the
/// tool take as much memory as they like. It is refused unread past this.
pub const MANIFEST_LIMIT: u64 = 64 << 20;

/// Why a manifest larger than `MANIFEST_LIMIT` is refused, in one line.
pub fn manifest_too_large() -> String {
    format!(
        "{MANIFEST_FILE} is larger than {} MiB, which no backup writes, so it is not read",
        MANIFEST_LIMIT >> 20
    )
}

#[derive(Debug, Clone)]
pub struct Backup {
    pub label: Label,
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Backup {
    /// The tree's backup `label`, manifest and all.
    pub fn open(tree: &Tree, label: &Label) -> Result<Backup> {
        let dir = Backup::folder(tree, label)?;
        let manifest = Backup::read_manifest(&tree.fs, &dir, Some(label))?;
        Ok(Backup { label: label.clone(), dir, manifest })
    }

    /// The tree's backup `label`, or `None` when the tree has none of that
    /// name; one that is there but cannot be read is an error.
    pub fn find(tree: &Tree, label: &Label) -> Result<Option<Backup>> {
        if tree.fs.kind(&tree.backup(label)).ok().flatten().is_none() {
            return Ok(None);
        }
        Backup::open(tree, label).map(Some)
    }

    /// The folder of the tree's backup `label`: a real folder inside the
    /// root; otherwise a usage error (exit 2) that names the backups there are.
    pub fn folder(tree: &Tree, label: &Label) -> Result<PathBuf> {
        let dir = tree.backup(label);
        match tree.fs.dir(&dir) {
            Ok(_) => Ok(dir),
            Err(err) if kind_of(&err) == Kind::Unsafe => Err(usage(format!(
                "the backup folder {} must be a real folder inside the root: {err:#}",
                dir.display()
            ))),
            Err(_) => {
                let take = advice::take_backup(label, &tree.root);
                Err(with_next(
                    Kind::Usage,
                    format!(
                        "no backup at {}: take one with `{take}`{}",
                        dir.display(),
                        advice::labels_here(&labels(tree))
                    ),
                    take,
                ))
            }
        }
    }

    /// The manifest of the backup folder `dir`, read through `fs` (the
    /// tree's, or the backup folder's own). When `label` is given, the
    /// manifest must name it: a backup renamed to another label is not that
    /// backup. Every failure is a refusal (exit 4) that says why.
    pub fn read_manifest(fs: &RootDir, dir: &Path, label: Option<&Label>) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let mut bytes = Vec::new();
        // One byte past the limit tells a manifest that is too large.
        fs.open_read(&path)
            .and_then(|file| Ok(file.take(MANIFEST_LIMIT + 1).read_to_end(&mut bytes)?))
            .map_err(|err| refused(format!("{MANIFEST_FILE} cannot be read: {err:#}")))?;
        if bytes.len() as u64 > MANIFEST_LIMIT {
            return Err(refused(manifest_too_large()));
        }
        let text = String::from_utf8(bytes)
            .map_err(|err| refused(format!("{MANIFEST_FILE} cannot be read: {err}")))?;
        let manifest = Manifest::parse(&text)
            .map_err(|err| refused(format!("{MANIFEST_FILE} is unreadable: {err:#}")))?;
        if let Some(label) = label
            && manifest.label != *label
        {
            return Err(refused(format!(
                "{MANIFEST_FILE} is the manifest of backup {}, not of {label}: a backup renamed to another label is not that backup",
                manifest.label
            )));
        }
        Ok(manifest)
    }
}
