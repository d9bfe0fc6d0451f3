//! Writes that are not below a tree's root, so `RootDir` cannot anchor them
//! (`outside` holds the reads):
//! a report file the user names (`--junit`, `--checklist`), our own scratch
//! and cache folders (the virtualenv, the bench's trees), a new sandbox.
//! They are few, and all here, so that a write below a root through plain
//! `std::fs` stands out anywhere else.
use std::{
    fs::{self, File},
    path::Path,
};

use anyhow::{Context, Result};

/// Writes a whole file, replacing what is there.
pub fn write(path: impl AsRef<Path>, bytes: impl AsRef<[u8]>) -> Result<()> {
    let path = path.as_ref();
    fs::write(path, bytes).with_context(|| format!("write {}", path.display()))
}

/// Writes a report file the user named (`--junit`, `--checklist`): into a
/// new file beside it, made exclusively and never through a link, fsynced,
/// then renamed over the name (which replaces a link there, never writes
/// through it). A file of that name another user owns is refused: in a
/// shared folder (`/tmp`) it is theirs to keep, and their link leads
/// wherever they chose.
pub fn write_report(path: impl AsRef<Path>, bytes: impl AsRef<[u8]>) -> Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let path = path.as_ref();
    if let Some(theirs) = foreign_owner(path) {
        return Err(xtask_base::exit::usage(format!(
            "{} belongs to {theirs}: a report is never written over another user's file or link; name another path",
            path.display()
        )));
    }
    let name = path.file_name().context("a report file has a name")?.to_string_lossy();
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let stage = parent.join(format!(".{name}.{}.writing", std::process::id()));
    let _ = fs::remove_file(&stage);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&stage)
        .with_context(|| format!("create {}", stage.display()))?;
    let written = file.write_all(bytes.as_ref()).and_then(|()| file.sync_all());
    if let Err(err) = written.and_then(|()| fs::rename(&stage, path)) {
        let _ = fs::remove_file(&stage);
        return Err(err).with_context(|| format!("write {}", path.display()));
    }
    Ok(())
}

/// The owner of what is at `path`, when it is another user's.
pub fn foreign_owner(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(path).ok()?;
    (meta.uid() != super::sys::effective_uid()).then(|| super::sys::user_name(meta.uid()))
}

/// Creates (or truncates) a file to write into.
pub fn create(path: impl AsRef<Path>) -> Result<File> {
    let path = path.as_ref();
    File::create(path).with_context(|| format!("create {}", path.display()))
}

pub fn create_dir_all(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    fs::create_dir_all(path).with_context(|| format!("create {}", path.display()))
}

/// A folder of this user's own that nobody else may enter (the virtualenvs,
/// the caches): made 0700 when missing, made 0700 again when it is ours
/// and open to others, refused when another user owns it (or the link to
/// it).
pub fn private_dir(path: impl AsRef<Path>) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let path = path.as_ref();
    if let Some(parent) = path.parent() {
        create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(err).with_context(|| format!("create {}", path.display()));
        }
        _ => {}
    }
    // A link of the user's own to a folder of theirs is theirs (a cache
    // moved to another disk); the folder it leads to is checked.
    let link = fs::symlink_metadata(path)?;
    let meta = fs::metadata(path)?;
    let me = super::sys::effective_uid();
    if !meta.is_dir() || meta.uid() != me || link.uid() != me {
        return Err(xtask_base::exit::refused(format!(
            "{} is not a folder of this user's ({}): the tool keeps its virtualenvs and caches only in a folder of its own user, never one another user could have filled; remove it or point XDG_CACHE_HOME elsewhere",
            path.display(),
            if meta.is_dir() {
                super::sys::user_name(meta.uid().max(link.uid()))
            } else {
                "not a folder".into()
            }
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("make {} private", path.display()))?;
    }
    Ok(())
}

/// Removes a folder of our own with everything in it; nothing there is fine.
pub fn remove_dir_all(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    match fs::remove_dir_all(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Removes a file of our own; nothing there is fine.
pub fn remove_file(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    match fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Copies a file into a folder of our own (a release's layout), with its
/// permissions.
pub fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    fs::copy(from, to)
        .map(|_| ())
        .with_context(|| format!("copy {} to {}", from.display(), to.display()))
}

/// Sets the permission bits of a file or folder of our own (a release's
/// layout, whose modes must not depend on the builder's umask).
pub fn set_mode(path: impl AsRef<Path>, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = path.as_ref();
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("set the mode of {}", path.display()))
}

/// Makes `link` a symbolic link to `target` (the sandbox's `.venv`).
pub fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) -> Result<()> {
    let (target, link) = (target.as_ref(), link.as_ref());
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("link {} to {}", link.display(), target.display()))
}

/// Renames within a folder of our own (a sandbox being built).
pub fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    fs::rename(from, to).with_context(|| format!("rename {} to {}", from.display(), to.display()))
}
