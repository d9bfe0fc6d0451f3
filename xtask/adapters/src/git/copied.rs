//! What of a checkout a scratch copy for the checks holds, as git sees
//! it: the files it tracks (read from its index, so a file changed but not
//! committed is copied as it is now) and those it would track (untracked
//! and not ignored: a new test not added yet), never what it ignores
//! (logs, build output, data).
use std::{ffi::OsStr, os::unix::ffi::OsStrExt, path::PathBuf};

use anyhow::{Context, Result};
use git2::{Status, StatusOptions};

/// The paths, relative to `root`, of the files git tracks there (a
/// submodule is its folder) and of the untracked files it does not
/// ignore; `None` when `root` holds no repository of its own.
pub fn files_for_checks(root: &std::path::Path) -> Result<Option<Vec<PathBuf>>> {
    let Some(repo) = super::open(root)? else { return Ok(None) };
    let index = repo.index().context("read git's index")?;
    let mut paths: Vec<PathBuf> =
        index.iter().map(|entry| PathBuf::from(OsStr::from_bytes(&entry.path))).collect();
    let mut options = StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .exclude_submodules(true);
    let statuses = repo.statuses(Some(&mut options)).context("read git's status")?;
    for status in statuses.iter().filter(|s| s.status().contains(Status::WT_NEW)) {
        paths.push(PathBuf::from(OsStr::from_bytes(status.path_bytes())));
    }
    // A file in conflict has up to three entries in the index.
    paths.sort();
    paths.dedup();
    Ok(Some(paths))
}
