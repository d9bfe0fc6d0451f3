//! Whom the tree's programs run as. Root running the tool on a tree another
//! user owns (named safe) runs the tree's programs (alembic, the app,
//! pytest, the import check) as that user, never as root: what they can
//! reach is what the tree's owner can. What is made for them (their
//! scratch HOME, a scratch copy, the migration's folder) is given to that
//! user, inside scratch folders that stay root's (0711), which root's
//! next run sweeps away if this one is killed.
use std::{
    io,
    os::fd::AsFd,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use anyhow::{Context, Result};

use crate::{handles, sys};

static OWNER: OnceLock<(u32, u32)> = OnceLock::new();

/// Records, once per command, that the tree's programs run as `uid` and
/// `gid`: only when this process is root and the tree is not root's.
pub fn run_programs_as(uid: u32, gid: u32) {
    if sys::running_as_root() && uid != 0 {
        let _ = OWNER.set((uid, gid));
    }
}

/// The user and group the tree's programs run as, when not this process's.
pub fn programs_owner() -> Option<(u32, u32)> {
    OWNER.get().copied()
}

/// Gives a file or folder made for the programs to the user they run as
/// (through its handle, which may be a path-only one).
pub fn give(file: impl AsFd) -> io::Result<()> {
    let Some((uid, gid)) = programs_owner() else { return Ok(()) };
    let (uid, gid) = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
    let empty = rustix::fs::AtFlags::EMPTY_PATH;
    Ok(rustix::fs::chownat(file, "", Some(uid), Some(gid), empty)?)
}

/// Lets the tree's owner pass through a scratch folder of ours to what it
/// holds for them (0711): the folder stays ours, so our next run can sweep
/// it away if this one is killed.
pub fn open_to_programs(scratch: &Path) -> Result<()> {
    if programs_owner().is_none() {
        return Ok(());
    }
    let dir =
        handles::open_dir_path(scratch).with_context(|| format!("open {}", scratch.display()))?;
    handles::set_dir_mode(&dir, 0o711).with_context(|| format!("chmod {}", scratch.display()))
}

/// The folder of a scratch folder of ours where the programs may write
/// (their HOME, pytest's report): the scratch folder itself, or, when they
/// run as the tree's owner, a folder `programs` inside it that is theirs.
pub fn folder_for_programs(scratch: &Path) -> Result<PathBuf> {
    if programs_owner().is_none() {
        return Ok(scratch.to_path_buf());
    }
    open_to_programs(scratch)?;
    let parent =
        handles::open_dir_path(scratch).with_context(|| format!("open {}", scratch.display()))?;
    let name = Path::new("programs");
    sys::mkdir_in(&parent, name, 0o700)
        .with_context(|| format!("create {}", scratch.join(name).display()))?;
    let dir = sys::open_dir_below(&parent, name, sys::Resolve::NoLinks)?;
    give(&dir).with_context(|| format!("give {} to the tree's owner", scratch.display()))?;
    Ok(scratch.join(name))
}
