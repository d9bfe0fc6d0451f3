//! The profile's files outside the tree (`external_files`): where a backup
//! keeps each, and how each is reached: always through a handle on its
//! folder opened from `/` without any link (`xtask_fs::external`), so a
//! read, a preserved copy and a restore meet the same rules as in the tree.
use std::{fs::File, os::unix::fs::PermissionsExt, path::Path};

use anyhow::{Context, Result};

use xtask_base::exit::{refused, usage};
use xtask_fs::{RootDir, sys::FileType};
use xtask_model::{manifest::Kind, profile::Tree};

/// Where a backup keeps the file `source` (absolute): under `external/` at
/// its own path, so two files of one name never collide.
pub fn backup_path(source: &str) -> String {
    format!("{}/{}", Kind::External.folder(), source.trim_start_matches('/'))
}

/// The handle on the folder of `source`; a folder that is gone, or that
/// is reached through a link, is refused (exit 4) naming it.
pub fn folder(source: &str) -> Result<RootDir> {
    xtask_fs::external::folder(Path::new(source))?.ok_or_else(|| {
        refused(format!(
            "the folder of {source} does not exist: the tool makes no folder outside the tree; create it, or restore the file by hand from the backup"
        ))
    })
}

/// What is at `source` now, seen through its folder's handle (never
/// followed): `None` when nothing is there (or its folder is gone).
pub fn kind(source: &str) -> Result<Option<FileType>> {
    match xtask_fs::external::folder(Path::new(source))? {
        Some(dir) => dir.kind(Path::new(source)),
        None => Ok(None),
    }
}

/// A file outside the tree as a backup reads it: a regular file, opened
/// through no link, with its permission bits. Missing or not a regular
/// file is a mistake of the profile (exit 2, as for a config file); a link
/// is refused (exit 4): it is never followed.
pub fn open_for_backup(tree: &Tree, key: &str, source: &str) -> Result<(File, u32)> {
    let named = || tree.named(key, source);
    let dir = xtask_fs::external::folder(Path::new(source))
        .map_err(|err| usage(format!("{}: {err:#}", named())))?;
    let found = dir.as_ref().map(|d| d.kind(Path::new(source))).transpose()?.flatten();
    match found {
        None => Err(usage(format!("{}: the file outside the tree is missing", named()))),
        Some(FileType::Symlink) => Err(refused(format!(
            "{}: it is a symbolic link: a file outside the tree is never read or written through a link; nothing was copied",
            named()
        ))),
        Some(FileType::RegularFile) => {
            let dir = dir.expect("a file was found in it");
            let file = dir.open_read(Path::new(source))?;
            let mode = file.metadata().with_context(|| format!("stat {source}"))?.permissions();
            Ok((file, mode.mode() & 0o7777))
        }
        Some(_) => {
            Err(usage(format!("{}: the file outside the tree is not a regular file", named())))
        }
    }
}

/// A file outside the tree as a rollback reads it: `None` when nothing is
/// there (or its folder is gone); a link or anything but a regular file is
/// refused (exit 4) naming it, never followed or read.
pub fn open(source: &str) -> Result<Option<(File, u32)>> {
    let Some(dir) = xtask_fs::external::folder(Path::new(source))? else { return Ok(None) };
    if !dir.expect_file_or_nothing(Path::new(source))? {
        return Ok(None);
    }
    let file = dir.open_read(Path::new(source))?;
    let mode = file.metadata().with_context(|| format!("stat {source}"))?.permissions();
    Ok(Some((file, mode.mode() & 0o7777)))
}

/// The sha256 of a file outside the tree now (see `open`).
pub fn sha256(source: &str) -> Result<Option<String>> {
    match open(source)? {
        Some((file, _)) => Ok(Some(xtask_fs::files::sha256_open(file, Path::new(source))?.0)),
        None => Ok(None),
    }
}
