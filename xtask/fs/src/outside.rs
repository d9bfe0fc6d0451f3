//! Reads of paths that are not below a tree's root, so `RootDir` cannot
//! anchor them: `/proc`, the folders of `PATH`, the folder a command is run
//! from, a file the user names, our own scratch and cache folders. Every
//! other crate is refused `std::fs` by its lints, so each such read is here
//! and says what it follows.
use std::{
    ffi::OsString,
    fs::{self, Metadata},
    io::Read,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use crate::sys;

/// The text of a regular file: never a FIFO, which would block.
pub fn read_to_string(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let mut text = String::new();
    sys::open_regular(path)
        .and_then(|mut file| file.read_to_string(&mut text))
        .with_context(|| format!("read {}", path.display()))?;
    Ok(text)
}

/// The bytes of such a file.
pub fn read(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let mut bytes = Vec::new();
    sys::open_regular(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .with_context(|| format!("read {}", path.display()))?;
    Ok(bytes)
}

/// What is at `path` itself (a link is a link); `None` when nothing is.
pub fn entry(path: impl AsRef<Path>) -> Option<Metadata> {
    fs::symlink_metadata(path).ok()
}

/// What `path` leads to, links followed; `None` when nothing is there.
pub fn followed(path: impl AsRef<Path>) -> Option<Metadata> {
    fs::metadata(path).ok()
}

/// A regular file, or a link to one.
pub fn is_file(path: impl AsRef<Path>) -> bool {
    followed(path).is_some_and(|m| m.is_file())
}

/// A folder, or a link to one.
pub fn is_dir(path: impl AsRef<Path>) -> bool {
    followed(path).is_some_and(|m| m.is_dir())
}

/// Something at `path`, a dangling link included.
pub fn exists(path: impl AsRef<Path>) -> bool {
    entry(path).is_some()
}

/// The path with every link resolved, as the kernel sees it.
pub fn canonicalize(path: impl AsRef<Path>) -> Result<PathBuf> {
    let path = path.as_ref();
    fs::canonicalize(path).with_context(|| format!("resolve {}", path.display()))
}

/// The target of a link, read, never followed.
pub fn read_link(path: impl AsRef<Path>) -> Result<PathBuf> {
    let path = path.as_ref();
    fs::read_link(path).with_context(|| format!("read the link {}", path.display()))
}

/// The names in a folder, unsorted; an error when it cannot be listed.
pub fn names(dir: impl AsRef<Path>) -> Result<Vec<OsString>> {
    let dir = dir.as_ref();
    let entries = fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))?;
    Ok(entries.flatten().map(|e| e.file_name()).collect())
}

/// An executable file named `name` in a folder of `PATH`, looked up rather
/// than run (a version call would add a process start).
pub fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| {
        followed(candidate).is_some_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The bytes free on the file system of `path` when it is a tmpfs (held in
/// memory); `None` on any other, or when it cannot be asked.
pub fn tmpfs_free(path: impl AsRef<Path>) -> Option<u64> {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let stat = rustix::fs::statfs(path.as_ref()).ok()?;
    let in_memory = stat.f_type == TMPFS_MAGIC;
    let block = u64::try_from(stat.f_bsize).ok()?;
    in_memory.then(|| stat.f_bavail.saturating_mul(block))
}
