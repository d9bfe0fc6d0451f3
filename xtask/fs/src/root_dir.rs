//! The one file-access layer for a tree: every path the tool writes,
//! creates, renames or deletes below a root is resolved by the kernel
//! (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), so no component
//! can be a symbolic link or lead out of the root, and only a regular file is
//! accepted where a file is expected. Reads follow links only while they stay
//! below the root, and never open a FIFO, a socket or a device.
//!
//! Callers name paths as they know them (absolute, inside the root); the
//! layer turns them into paths relative to its directory handle.
use std::{
    fs::File,
    io::{self, Read},
    os::fd::OwnedFd,
    path::{Component, Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use crate::{
    handles, hash, paths, scratch,
    sys::{self, FileType, Rename, Resolve},
};
use xtask_base::exit::refused;

/// A directory handle that every access below it goes through.
pub struct RootDir {
    path: PathBuf,
    fd: OwnedFd,
    /// The folder of a file outside every tree (`external::folder`): its
    /// names are shown whole, and reads follow no link either.
    outside: bool,
}

impl std::fmt::Debug for RootDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RootDir({})", self.path.display())
    }
}

impl RootDir {
    /// Opens `path` (already canonical) as the anchor of every access.
    pub fn open(path: &Path) -> Result<RootDir> {
        let fd = sys::open_dir_handle(path).with_context(|| format!("open {}", path.display()))?;
        Ok(RootDir { path: path.to_path_buf(), fd, outside: false })
    }

    /// The anchor of a folder outside every tree, from a handle reached
    /// without any link (see `external::folder`).
    pub(crate) fn outside(path: &Path, fd: OwnedFd) -> RootDir {
        RootDir { path: path.to_path_buf(), fd, outside: true }
    }

    /// `path` relative to the root; it must be inside it and must not climb.
    pub fn relative<'a>(&self, path: &'a Path) -> Result<&'a Path> {
        let relative = if path.is_absolute() {
            path.strip_prefix(&self.path).map_err(|_| {
                refused(format!("{} is outside {}", path.display(), self.path.display()))
            })?
        } else {
            path
        };
        if relative.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
            return Err(refused(format!(
                "{} climbs out of {}",
                path.display(),
                self.path.display()
            )));
        }
        Ok(relative)
    }

    fn shown(&self, path: &Path) -> String {
        if self.outside {
            return self.path.join(path).display().to_string();
        }
        path.strip_prefix(&self.path).unwrap_or(path).display().to_string()
    }

    fn link_refusal(&self, path: &Path, err: &io::Error) -> anyhow::Error {
        refused(format!(
            "{} is, or passes through, a symbolic link or something that is not a folder ({err}): the tool never writes through a link; nothing was changed there",
            self.shown(path)
        ))
    }

    /// A handle on a folder below the root, reached without any link, at
    /// any depth (a path longer than the kernel takes in one call is
    /// opened a piece at a time).
    pub fn dir(&self, path: &Path) -> Result<OwnedFd> {
        let relative = self.relative(path)?;
        handles::open_dir(&self.fd, relative, Resolve::NoLinks).map_err(|err| {
            if sys::is_link_refusal(&err) {
                self.link_refusal(path, &err)
            } else {
                anyhow::Error::from(err).context(format!("open the folder {}", self.shown(path)))
            }
        })
    }

    /// A name for `path` that a library opening files by name (SQLite) can
    /// be given, anchored at a handle of its folder opened here (no link on
    /// the way, nothing out of the root), with a regular file or nothing as
    /// its last component: the kernel resolves the name to that very
    /// folder, wherever it is moved meanwhile. The library resolves it to a
    /// path itself (SQLite does, for its journal and WAL), so the caller
    /// proves with `Anchored::still_in_place` once it is done that the
    /// folder never left its place below the root.
    pub fn anchored(&self, path: &Path) -> Result<Anchored> {
        self.expect_file_or_nothing(path)?;
        let (dir, name) = self.parent_of(path)?;
        Ok(Anchored { dir, name, shown: path.to_path_buf() })
    }

    /// The folder holding `path` and `path`'s last component.
    fn parent_of(&self, path: &Path) -> Result<(OwnedFd, PathBuf)> {
        let relative = self.relative(path)?;
        let name =
            relative.file_name().with_context(|| format!("{} has no name", path.display()))?;
        let parent = relative.parent().unwrap_or(Path::new(""));
        Ok((self.dir(&self.path.join(parent))?, PathBuf::from(name)))
    }

    /// What is at `path` (not followed): `None` when nothing is there.
    pub fn kind(&self, path: &Path) -> Result<Option<FileType>> {
        // A folder on the way that does not exist (a fresh clone has no
        // data/ yet) means nothing is there; a link on the way is refused.
        let (dir, name) = match self.parent_of(path) {
            Ok(found) => found,
            Err(err) if not_found(&err) => return Ok(None),
            Err(err) => return Err(err),
        };
        let stat =
            sys::stat_in(&dir, &name).with_context(|| format!("stat {}", self.shown(path)))?;
        Ok(stat.map(|s| sys::file_type(&s)))
    }

    /// Refuses anything but a regular file (or nothing) at a path the tool
    /// is about to replace.
    pub fn expect_file_or_nothing(&self, path: &Path) -> Result<bool> {
        match self.kind(path)? {
            None => Ok(false),
            Some(FileType::RegularFile) => Ok(true),
            Some(other) => Err(refused(format!(
                "{} is a {} where a regular file is expected: the tool does not replace it; nothing was changed there",
                self.shown(path),
                describe(other)
            ))),
        }
    }

    /// Refuses anything but a folder (or nothing).
    pub fn expect_dir_or_nothing(&self, path: &Path) -> Result<bool> {
        match self.kind(path)? {
            None => Ok(false),
            Some(FileType::Directory) => Ok(true),
            Some(other) => Err(refused(format!(
                "{} is a {} where a folder is expected; nothing was changed there",
                self.shown(path),
                describe(other)
            ))),
        }
    }

    /// Creates a folder and its missing parents, none of them through a link.
    pub fn create_dir_all(&self, path: &Path) -> Result<()> {
        let relative = self.relative(path)?.to_path_buf();
        let mut done = self.path.clone();
        for component in relative.components() {
            done.push(component);
            if !self.expect_dir_or_nothing(&done)? {
                let (parent, name) = self.parent_of(&done)?;
                match sys::mkdir_in(&parent, &name, 0o755) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                        self.expect_dir_or_nothing(&done)?;
                    }
                    Err(err) => {
                        return Err(err).with_context(|| format!("create {}", self.shown(&done)));
                    }
                }
            }
        }
        Ok(())
    }

    /// Creates a new folder; an existing one is an error (`AlreadyExists`).
    pub fn create_dir(&self, path: &Path, mode: u32) -> io::Result<()> {
        let (parent, name) = self.parent_of(path).map_err(io::Error::other)?;
        sys::mkdir_in(&parent, &name, mode)
    }

    /// Creates a new regular file; anything already there is an error.
    pub fn create_new(&self, path: &Path, mode: u32) -> Result<File> {
        let (parent, name) = self.parent_of(path)?;
        sys::create_new_in(&parent, &name, mode)
            .with_context(|| format!("create {}", self.shown(path)))
    }

    /// Opens a file for reading and writing, created when missing (a lock).
    pub fn open_or_create(&self, path: &Path, mode: u32) -> Result<File> {
        self.expect_file_or_nothing(path)?;
        let (parent, name) = self.parent_of(path)?;
        sys::open_or_create_in(&parent, &name, mode)
            .with_context(|| format!("open {}", self.shown(path)))
    }

    /// Renames inside the root; neither side may pass through a link.
    pub fn rename(&self, from: &Path, to: &Path, how: Rename) -> Result<()> {
        let (from_dir, from_name) = self.parent_of(from)?;
        let (to_dir, to_name) = self.parent_of(to)?;
        sys::rename_in(&from_dir, &from_name, &to_dir, &to_name, how)
            .with_context(|| format!("rename {} to {}", self.shown(from), self.shown(to)))?;
        // The new name must survive a crash: fsync both folders.
        for dir in [from_dir, to_dir] {
            File::from(dir_for_sync(&dir)?).sync_all().context("fsync a folder")?;
        }
        Ok(())
    }

    /// Moves a file or a folder to a new name inside the root (never over
    /// anything). Within one file system it is a rename; across two (a
    /// `forensics/` or `data/` that is a mount point), the file or folder
    /// is copied byte for byte beside its new name's final place, fsynced,
    /// renamed there, and only then removed where it was: a crash leaves it
    /// in both places, never in neither.
    pub fn move_across(&self, from: &Path, to: &Path) -> Result<()> {
        let (from_dir, from_name) = self.parent_of(from)?;
        let (to_dir, to_name) = self.parent_of(to)?;
        match sys::rename_in(&from_dir, &from_name, &to_dir, &to_name, Rename::NoReplace) {
            Ok(()) => {
                for dir in [from_dir, to_dir] {
                    File::from(dir_for_sync(&dir)?).sync_all().context("fsync a folder")?;
                }
                Ok(())
            }
            Err(err) if sys::is_cross_device(&err) => {
                self.copy_whole(from, to)?;
                match self.kind(from)? {
                    Some(FileType::Directory) => self.remove_dir_all(from),
                    _ => self.remove_file(from),
                }
            }
            Err(err) => {
                Err(err).with_context(|| format!("move {} to {}", self.shown(from), self.shown(to)))
            }
        }
    }

    /// Copies a file (or a folder, whole) to a new name through a staging
    /// name, fsynced, then renamed into place.
    fn copy_whole(&self, from: &Path, to: &Path) -> Result<()> {
        let stage = paths::staging_path(to);
        if self.kind(&stage)?.is_some() {
            self.discard(&stage, anyhow::anyhow!("an earlier copy"));
        }
        match self.kind(from)? {
            Some(FileType::Directory) => {
                self.create_dir(&stage, 0o755)
                    .with_context(|| format!("create {}", self.shown(&stage)))?;
                for (name, _) in self.list(from)? {
                    self.copy_whole(&from.join(&name), &stage.join(&name))?;
                }
            }
            _ => {
                let input = self.open_read(from)?;
                let mode =
                    std::os::unix::fs::PermissionsExt::mode(&input.metadata()?.permissions());
                let output = self.create_new(&stage, mode & 0o7777)?;
                hash::copy_hashed(&input, &output)
                    .with_context(|| format!("copy {} across file systems", self.shown(from)))?;
            }
        }
        self.rename(&stage, to, Rename::NoReplace)
    }

    /// Removes a file (a link is removed itself, never followed).
    pub fn remove_file(&self, path: &Path) -> Result<()> {
        let (dir, name) = self.parent_of(path)?;
        if let Some(stat) = sys::stat_in(&dir, &name)?
            && sys::file_type(&stat) == FileType::Directory
        {
            bail!("{} is a folder, not a file", self.shown(path));
        }
        sys::unlink_in(&dir, &name).with_context(|| format!("remove {}", self.shown(path)))
    }

    /// Removes a folder of the tool's own and everything below it, never
    /// following a link (links are removed themselves).
    pub fn remove_dir_all(&self, path: &Path) -> Result<()> {
        let handle = self.dir(path)?;
        let listing = std::fs::read_dir(format!("/proc/self/fd/{}", raw(&handle)))
            .with_context(|| format!("list {}", self.shown(path)))?;
        for entry in listing {
            let entry = entry?;
            let child = path.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                self.remove_dir_all(&child)?;
            } else {
                sys::unlink_in(&handle, Path::new(&entry.file_name()))?;
            }
        }
        let (parent, name) = self.parent_of(path)?;
        sys::rmdir_in(&parent, &name).with_context(|| format!("remove {}", self.shown(path)))
    }

    /// Removes a folder a failed operation left half-made, and returns that
    /// operation's error; when the folder cannot go either, the error says
    /// so and where it is.
    pub fn discard(&self, path: &Path, err: anyhow::Error) -> anyhow::Error {
        match self.remove_dir_all(path) {
            Ok(()) => err,
            Err(left) => err.context(format!(
                "and {} could not be removed ({left:#}): remove it by hand",
                self.shown(path)
            )),
        }
    }

    /// Has a termination signal remove the folder `path` (with everything
    /// in it, or only when it is empty) before the run exits, until the
    /// registration is dropped: a pull's stage, which nothing must find
    /// half-made.
    pub fn remove_on_signal(
        &self,
        path: &Path,
        how: scratch::Removal,
    ) -> Result<scratch::Registration> {
        let (dir, name) = self.parent_of(path)?;
        scratch::on_signal(dir, &name, how)
    }

    /// Opens a regular file below the root for reading. Links are followed
    /// only while they stay below the root; anything but a regular file is
    /// refused without being read (a FIFO never blocks the tool).
    pub fn open_read(&self, path: &Path) -> Result<File> {
        let relative = self.relative(path)?;
        let resolve = if self.outside { Resolve::NoLinks } else { Resolve::Beneath };
        let file = handles::open_read(&self.fd, relative, resolve).map_err(|err| {
            if self.outside && sys::is_link_refusal(&err) {
                self.link_refusal(path, &err)
            } else if sys::is_escape(&err) {
                refused(format!(
                    "{} leads out of {} through a symbolic link: it is not read",
                    self.shown(path),
                    self.path.display()
                ))
            } else {
                anyhow::Error::from(err).context(format!("open {}", self.shown(path)))
            }
        })?;
        let kind = file.metadata()?.file_type();
        if !kind.is_file() {
            return Err(refused(format!(
                "{} is not a regular file (a FIFO, socket, device or folder): it is not read",
                self.shown(path)
            )));
        }
        Ok(file)
    }

    /// Sets the permission bits of a regular file below the root, reached
    /// without any link (the file itself is opened, not followed).
    pub fn set_mode(&self, path: &Path, mode: u32) -> Result<()> {
        let relative = self.relative(path)?;
        let file = handles::open_read(&self.fd, relative, Resolve::NoLinks)
            .map_err(|err| self.link_refusal(path, &err))?;
        if !file.metadata()?.is_file() {
            bail!("{} is not a regular file: its mode is left alone", self.shown(path));
        }
        sys::fchmod(&file, mode).with_context(|| format!("chmod {}", self.shown(path)))
    }

    /// Gives a regular file below the root an owner and a group, reached
    /// without any link (a restore as root keeps a file its service's).
    pub fn set_owner(&self, path: &Path, uid: u32, gid: u32) -> Result<()> {
        let relative = self.relative(path)?;
        let file = handles::open_read(&self.fd, relative, Resolve::NoLinks)
            .map_err(|err| self.link_refusal(path, &err))?;
        sys::fchown(&file, uid, gid).with_context(|| format!("chown {}", self.shown(path)))
    }

    /// The bytes of a regular file below the root (see `open_read`).
    pub fn read(&self, path: &Path) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open_read(path)?
            .read_to_end(&mut bytes)
            .with_context(|| format!("read {}", self.shown(path)))?;
        Ok(bytes)
    }

    /// The text of a regular file below the root (see `open_read`).
    pub fn read_to_string(&self, path: &Path) -> Result<String> {
        let mut text = String::new();
        self.open_read(path)?
            .read_to_string(&mut text)
            .with_context(|| format!("read {}", self.shown(path)))?;
        Ok(text)
    }

    /// Hex SHA-256 and size of a regular file below the root.
    pub fn sha256(&self, path: &Path) -> Result<(String, u64)> {
        hash::sha256_open(self.open_read(path)?, path)
    }

    /// The entries of a folder below the root, reached without any link:
    /// each name with what it is (a link is listed as a link, not followed).
    pub fn list(&self, path: &Path) -> Result<Vec<(std::ffi::OsString, FileType)>> {
        let handle = self.dir(path)?;
        let listing = std::fs::read_dir(format!("/proc/self/fd/{}", raw(&handle)))
            .with_context(|| format!("list {}", self.shown(path)))?;
        let mut entries = Vec::new();
        for entry in listing {
            let name = entry?.file_name();
            if let Some(stat) = sys::stat_in(&handle, Path::new(&name))? {
                entries.push((name, sys::file_type(&stat)));
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    /// The bytes of the regular files beneath the folder `path` (links are
    /// not followed).
    pub fn size_of(&self, path: &Path) -> Result<u64> {
        let mut total = 0;
        for (name, kind) in self.list(path)? {
            let child = path.join(&name);
            total += match kind {
                FileType::Directory => self.size_of(&child)?,
                FileType::RegularFile => self.open_read(&child)?.metadata()?.len(),
                _ => 0,
            };
        }
        Ok(total)
    }

    /// The target of the symbolic link at `path`, read without following it.
    pub fn read_link(&self, path: &Path) -> Result<PathBuf> {
        let (dir, name) = self.parent_of(path)?;
        sys::read_link_in(&dir, &name)
            .with_context(|| format!("read the link {}", self.shown(path)))
    }

    /// Whether `path` is a regular file reachable for reading.
    pub fn is_file(&self, path: &Path) -> bool {
        self.open_read(path).is_ok()
    }

    /// Whether `path` is a folder reached without any link.
    pub fn is_dir(&self, path: &Path) -> bool {
        self.kind(path).ok().flatten().is_some_and(|kind| kind.is_dir())
    }

    /// Whether anything (a link included) is at `path`.
    pub fn exists(&self, path: &Path) -> bool {
        self.kind(path).ok().flatten().is_some()
    }

    /// Every regular file below `path`, at most `depth` folders down, in
    /// the folders `enter` accepts (given each folder's path); links are
    /// neither followed nor listed. Sorted by depth, then by path.
    pub fn walk(&self, path: &Path, depth: usize, enter: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![(path.to_path_buf(), 0)];
        while let Some((dir, level)) = stack.pop() {
            for (name, kind) in self.list(&dir).unwrap_or_default() {
                let entry = dir.join(name);
                if kind.is_dir() && level < depth && enter(&entry) {
                    stack.push((entry, level + 1));
                } else if kind.is_file() {
                    out.push(entry);
                }
            }
        }
        out.sort_by_key(|p| (p.components().count(), p.clone()));
        out
    }
}

/// A file's name through a handle of its folder (see `RootDir::anchored`):
/// valid while this value lives.
pub struct Anchored {
    dir: OwnedFd,
    name: PathBuf,
    shown: PathBuf,
}

impl Anchored {
    /// `/proc/self/fd/N/NAME`: the kernel resolves N to the folder itself.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", raw(&self.dir))).join(&self.name)
    }

    /// The path as the user knows it, for messages.
    pub fn shown(&self) -> &Path {
        &self.shown
    }

    /// The folder reached now from the root, without links, is the one this
    /// name was anchored at, and the file is a regular file (or gone):
    /// nothing was swapped for a link while the library worked.
    pub fn still_in_place(&self, root: &RootDir) -> Result<()> {
        let now = root.dir(self.shown.parent().unwrap_or(Path::new("")))?;
        let (a, b) = (sys::fd_identity(&now)?, sys::fd_identity(&self.dir)?);
        if a != b {
            return Err(refused(format!(
                "the folder of {} was replaced while SQLite worked in it",
                self.shown.display()
            )));
        }
        root.expect_file_or_nothing(&self.shown).map(|_| ())
    }
}

/// A directory handle opened with O_PATH cannot be fsynced; reopen it.
fn dir_for_sync(dir: &OwnedFd) -> io::Result<OwnedFd> {
    let file = File::open(format!("/proc/self/fd/{}", raw(dir)))?;
    Ok(OwnedFd::from(file))
}

fn raw(fd: &OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

/// What kind of entry this is, for a message: "symbolic link", "FIFO"...
pub fn describe(kind: FileType) -> &'static str {
    match kind {
        FileType::Symlink => "symbolic link",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice | FileType::BlockDevice => "device",
        FileType::Directory => "folder",
        FileType::RegularFile => "regular file",
        _ => "special file",
    }
}

/// Whether an error says a path does not exist.
fn not_found(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_never_pass_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let root_path = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&root_path).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root_path.join("data")).unwrap();
        let root = RootDir::open(&root_path).unwrap();
        let err = root.create_new(&root_path.join("data/x"), 0o644).unwrap_err();
        assert_eq!(xtask_base::exit::kind_of(&err), xtask_base::exit::Kind::Unsafe, "{err:#}");
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none(), "written outside");
        let err = root.create_dir_all(&root_path.join("data/sub")).unwrap_err();
        assert_eq!(xtask_base::exit::kind_of(&err), xtask_base::exit::Kind::Unsafe, "{err:#}");
        assert!(root.relative(Path::new("../x")).is_err());
    }

    #[test]
    fn reads_refuse_an_escape_and_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let root_path = dir.path().join("root");
        std::fs::create_dir_all(&root_path).unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root_path.join("link")).unwrap();
        std::fs::write(root_path.join("plain"), "y").unwrap();
        std::os::unix::fs::symlink("plain", root_path.join("inner")).unwrap();
        let status = std::process::Command::new("mkfifo").arg(root_path.join("fifo")).status();
        assert!(status.unwrap().success());
        let root = RootDir::open(&root_path).unwrap();
        assert!(root.open_read(&root_path.join("link")).is_err(), "followed out of the root");
        assert!(root.open_read(&root_path.join("inner")).is_ok(), "a link inside is read");
        let err = root.open_read(&root_path.join("fifo")).unwrap_err();
        assert!(format!("{err:#}").contains("not a regular file"), "{err:#}");
    }
}
