//! Folders reached through handles, at any depth. The kernel refuses a
//! path of more than `PATH_MAX` (4096) bytes in one call, but allows a
//! tree of any depth: a longer path is opened a piece at a time, each
//! piece resolved below the handle of the one before with the same rules
//! (`openat2`, see `sys::Resolve`). A folder's entries are read, and a tree
//! removed, through handles too, so no link is ever followed and no path
//! is too long.
use std::{
    ffi::{OsStr, OsString},
    fs::File,
    io,
    os::{
        fd::{AsFd, AsRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Component, Path, PathBuf},
};

use rustix::fs::{Mode, OFlags};

use crate::sys::{self, FileType, Resolve};

/// The bytes of path one call resolves: well below `PATH_MAX`.
const PIECE: usize = 3072;

/// `relative` cut at component boundaries into pieces of at most `PIECE`
/// bytes (a component alone is at most 255).
fn pieces(relative: &Path) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::new()];
    for component in relative.components() {
        let Component::Normal(name) = component else { continue };
        let current = out.last_mut().expect("never empty");
        if !current.as_os_str().is_empty() && current.as_os_str().len() + name.len() + 1 > PIECE {
            out.push(PathBuf::from(name));
        } else {
            current.push(name);
        }
    }
    out
}

/// A handle on the folder `relative` below `base` (see `sys::open_dir_below`),
/// whatever the path's length.
pub fn open_dir(base: impl AsFd, relative: &Path, resolve: Resolve) -> io::Result<OwnedFd> {
    if relative.as_os_str().len() <= PIECE {
        let relative = if relative.as_os_str().is_empty() { Path::new(".") } else { relative };
        return sys::open_dir_below(base, relative, resolve);
    }
    let mut pieces = pieces(relative).into_iter();
    let first = pieces.next().unwrap_or_default();
    let mut dir = sys::open_dir_below(base, &first, resolve)?;
    for piece in pieces {
        dir = sys::open_dir_below(&dir, &piece, resolve)?;
    }
    Ok(dir)
}

/// A regular file below `base` opened for reading (see
/// `sys::open_read_below`), whatever the path's length.
pub fn open_read(base: impl AsFd, relative: &Path, resolve: Resolve) -> io::Result<File> {
    if relative.as_os_str().len() <= PIECE {
        return sys::open_read_below(base, relative, resolve);
    }
    let name = relative.file_name().ok_or_else(|| io::Error::other("a file path has a name"))?;
    let parent = open_dir(base, relative.parent().unwrap_or(Path::new("")), resolve)?;
    sys::open_read_below(&parent, Path::new(name), resolve)
}

/// The entries of the folder a handle (an `O_PATH` one too) is on, each
/// with what it is; a link is a link, never followed. Unsorted.
pub fn entries(dir: impl AsFd) -> io::Result<Vec<(OsString, FileType)>> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let readable = rustix::fs::openat(&dir, ".", flags, Mode::empty())?;
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::new(readable)? {
        let entry = entry?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        let kind = match entry.file_type() {
            FileType::Unknown => match sys::stat_in(&dir, Path::new(name))? {
                Some(stat) => sys::file_type(&stat),
                None => continue,
            },
            known => known,
        };
        out.push((name.to_os_string(), kind));
    }
    Ok(out)
}

/// Makes a new symbolic link `name` in `dir` that leads to `target`.
pub fn symlink_in(target: &Path, dir: impl AsFd, name: &Path) -> io::Result<()> {
    Ok(rustix::fs::symlinkat(target, dir, name)?)
}

/// The permission bits of a folder, given through its handle (an `O_PATH`
/// handle cannot `fchmod`; the kernel's own link to the open folder can be
/// changed without following any link of the tree).
pub fn set_dir_mode(dir: impl AsFd, mode: u32) -> io::Result<()> {
    let own = format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd());
    Ok(rustix::fs::chmod(own.as_str(), Mode::from_raw_mode(mode))?)
}

/// The status of what a handle is on.
pub fn stat(fd: impl AsFd) -> io::Result<sys::Stat> {
    Ok(rustix::fs::fstat(fd)?)
}

/// Removes `name` in `parent` and, when it is a folder, everything below
/// it, without following any link (a link is removed itself) and at any
/// depth: no more than two handles are open at a time. A folder the run
/// cannot enter is made the owner's (0700) first. What another thread adds
/// meanwhile is removed on the next pass; nothing there is fine.
pub fn remove_tree(parent: impl AsFd, name: &Path) -> io::Result<()> {
    match sys::stat_in(&parent, name)? {
        None => return Ok(()),
        Some(stat) if sys::file_type(&stat) != FileType::Directory => {
            return ignore_gone(sys::unlink_in(&parent, name));
        }
        Some(_) => {}
    }
    let mut pending = vec![name.to_path_buf()];
    let mut passes = 0;
    while let Some(dir) = pending.last().cloned() {
        let handle = match open_dir(&parent, &dir, Resolve::NoLinks) {
            Ok(handle) => handle,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                pending.pop();
                continue;
            }
            Err(err) => return Err(err),
        };
        if stat(&handle)?.st_mode & 0o700 != 0o700 {
            set_dir_mode(&handle, 0o700)?;
        }
        let mut deeper = Vec::new();
        for (entry, kind) in entries(&handle)? {
            match kind {
                FileType::Directory => deeper.push(dir.join(entry)),
                _ => ignore_gone(sys::unlink_in(&handle, Path::new(&entry)))?,
            }
        }
        if !deeper.is_empty() {
            pending.extend(deeper);
            continue;
        }
        let up = dir.parent().unwrap_or(Path::new(""));
        let last = Path::new(dir.file_name().unwrap_or_default());
        let removed = if up.as_os_str().is_empty() {
            sys::rmdir_in(&parent, last)
        } else {
            sys::rmdir_in(open_dir(&parent, up, Resolve::NoLinks)?, last)
        };
        match removed {
            Err(err) if err.raw_os_error() == Some(libc::ENOTEMPTY) && passes < 100 => passes += 1,
            other => {
                ignore_gone(other)?;
                pending.pop();
            }
        }
    }
    Ok(())
}

fn ignore_gone(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// `mkdirat`, where a folder already there is fine (a folder of a pick
/// made for an earlier one).
pub fn ensure_dir_in(dir: impl AsFd, name: &Path, mode: u32) -> io::Result<()> {
    match sys::mkdir_in(&dir, name, mode) {
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            match sys::stat_in(&dir, name)?.map(|s| sys::file_type(&s)) {
                Some(FileType::Directory) => Ok(()),
                _ => Err(err),
            }
        }
        other => other,
    }
}

/// The first stretch of data of `file` at or after `offset`, up to the
/// next hole (`SEEK_DATA`, `SEEK_HOLE`): `None` past the last data. Where
/// the file system cannot say, the rest of the file is data.
pub fn data_after(file: &File, offset: u64, len: u64) -> io::Result<Option<(u64, u64)>> {
    use rustix::fs::SeekFrom;
    let start = match rustix::fs::seek(file, SeekFrom::Data(offset)) {
        Ok(start) => start,
        Err(rustix::io::Errno::NXIO) => return Ok(None),
        Err(rustix::io::Errno::INVAL) => return Ok((offset < len).then_some((offset, len))),
        Err(err) => return Err(err.into()),
    };
    let end = rustix::fs::seek(file, SeekFrom::Hole(start))?;
    Ok((start < len).then_some((start, end.min(len))))
}

/// A handle on the folder at `path`, the links on its way followed: the
/// temporary folder the user chose (`TMPDIR` may be a link).
pub fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(rustix::fs::open(path, flags, Mode::empty())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_path_is_cut_into_pieces_at_its_components() {
        let name = "d".repeat(200);
        let long: PathBuf = std::iter::repeat_n(name.as_str(), 40).collect();
        let cut = pieces(&long);
        assert!(cut.len() >= 3, "{} pieces", cut.len());
        assert!(cut.iter().all(|p| p.as_os_str().len() <= PIECE));
        assert_eq!(cut.iter().collect::<PathBuf>(), long);
    }
}
