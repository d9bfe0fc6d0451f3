//! A scratch copy of a tree for the checks that run the tree's programs
//! (the app, pytest, alembic, the import check): whatever they write (an
//! upgrade at start-up, a data folder, logs, caches, bytecode) lands in
//! the copy, never in the tree.
//!
//! The copy holds what the checks use (the caller says which paths; a tree
//! git does not track is copied whole, but for the folders no program
//! needs), and no more readable than the tree: a folder keeps at most its
//! permission bits, a file its permission bits without setuid, setgid or
//! sticky, and the copy lies in a 0700 scratch folder. Files are reflinked
//! where the file system offers it; otherwise only their data is copied,
//! so a sparse file stays sparse. Both trees are walked through folder
//! handles, one component at a time, so a path of any length copies, no
//! link is followed out of the tree and no FIFO is opened. When the tree's
//! programs run as its owner (root runs the tool), the copy is theirs.
use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::OsStr,
    fs::File,
    os::{fd::OwnedFd, unix::fs::FileExt},
    path::{Component, Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use super::{
    RootDir, handles, programs_owner,
    sys::{self, FileType, Resolve},
};

/// What a copy cost.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Cost {
    pub files: u64,
    pub bytes: u64,
    /// Files whose blocks are shared with the tree's (reflinks).
    pub reflinked: u64,
    #[serde(serialize_with = "millis")]
    pub took: Duration,
}

fn millis<S: serde::Serializer>(took: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(took.as_millis() as u64)
}

impl std::fmt::Display for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} files, {:.1} MiB ({} reflinked), {:.2}s",
            self.files,
            self.bytes as f64 / (1024.0 * 1024.0),
            self.reflinked,
            self.took.as_secs_f64()
        )
    }
}

/// What goes into a copy.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Everything below the root but the folders no program needs (a tree
    /// git does not track).
    Whole,
    /// Only these paths, relative to the root: each a file, a link, or a
    /// folder copied whole; the `folders` alone, empty (where the app
    /// writes its log). Each folder on their way is made with its mode; a
    /// link on their way is copied as the link it is. What is missing is
    /// left out.
    Only { paths: Vec<PathBuf>, folders: Vec<PathBuf> },
}

/// Folders no program of the tree needs in a copy: the tool's own at the
/// root, git's and the caches anywhere, and virtualenvs (run from where
/// they are).
fn skipped(parent: &OwnedFd, name: &OsStr, at_root: bool) -> bool {
    const TOOL: [&str; 3] = ["backups", "forensics", ".tmws-rollback"];
    const ANYWHERE: [&str; 8] = [
        ".git",
        "node_modules",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
    ];
    let named = name
        .to_str()
        .is_some_and(|name| ANYWHERE.contains(&name) || (at_root && TOOL.contains(&name)));
    let venv = || {
        sys::open_dir_below(parent, Path::new(name), Resolve::NoLinks)
            .and_then(|dir| sys::stat_in(&dir, Path::new("pyvenv.cfg")))
            .is_ok_and(|found| found.is_some())
    };
    named || venv()
}

/// Copies what `selection` names of the tree below `root` into the new
/// folder `to` (in a scratch folder of ours, outside the tree); FIFOs,
/// sockets and devices are left out, never opened.
pub fn copy_tree(fs: &RootDir, root: &Path, selection: &Selection, to: &Path) -> Result<Cost> {
    let started = Instant::now();
    let (scratch, name) = match (to.parent(), to.file_name()) {
        (Some(parent), Some(name)) => (handles::open_dir_path(parent)?, Path::new(name)),
        _ => anyhow::bail!("{} is no folder to copy into", to.display()),
    };
    sys::mkdir_in(&scratch, name, 0o700).with_context(|| format!("create {}", to.display()))?;
    let source = fs.dir(root)?;
    let mode = handles::stat(&source)?.st_mode & 0o777;
    let target = sys::open_dir_below(&scratch, name, Resolve::NoLinks)?;
    let mut copy =
        Copier { source, target, cost: Cost::default(), modes: BTreeMap::new(), last: None };
    copy.modes.insert(PathBuf::new(), mode);
    match selection {
        Selection::Whole => copy.folder(Path::new("")),
        Selection::Only { paths, folders } => copy.only(paths, folders),
    }
    .with_context(|| format!("copy {} into {}", root.display(), to.display()))?;
    copy.give_folders_their_modes()?;
    copy.cost.took = started.elapsed();
    Ok(copy.cost)
}

struct Copier {
    /// Handles on the tree's root and the copy's.
    source: OwnedFd,
    target: OwnedFd,
    cost: Cost,
    /// Each folder made and the mode it gets once it is filled (made 0700,
    /// so that a read-only folder can be filled first).
    modes: BTreeMap<PathBuf, u32>,
    /// The folder the last pick was in, and its handles on both sides.
    last: Option<(PathBuf, OwnedFd, OwnedFd)>,
}

impl Copier {
    /// Copies everything below the folder `relative` (made on both sides).
    fn folder(&mut self, relative: &Path) -> Result<()> {
        let mut pending = vec![relative.to_path_buf()];
        while let Some(dir) = pending.pop() {
            let from = handles::open_dir(&self.source, &dir, Resolve::NoLinks)
                .with_context(|| format!("open {}", dir.display()))?;
            let to = handles::open_dir(&self.target, &dir, Resolve::NoLinks)?;
            let mut entries =
                handles::entries(&from).with_context(|| format!("list {}", dir.display()))?;
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, kind) in entries {
                let path = dir.join(&name);
                match kind {
                    FileType::Directory if !skipped(&from, &name, dir.as_os_str().is_empty()) => {
                        self.make_folder(&from, &to, &path)?;
                        pending.push(path);
                    }
                    FileType::RegularFile => self.file(&from, &to, &path)?,
                    FileType::Symlink => self.link(&from, &to, &path)?,
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Copies each of `paths`, then makes each of `folders`; a path inside
    /// a folder copied whole for an earlier one is there already.
    fn only(&mut self, paths: &[PathBuf], folders: &[PathBuf]) -> Result<()> {
        let paths: BTreeSet<&PathBuf> = paths.iter().collect();
        let mut whole: BTreeSet<PathBuf> = BTreeSet::new();
        for path in paths {
            if !path.ancestors().any(|above| whole.contains(above))
                && let Some(folder) = self.pick(path, true)?
            {
                whole.insert(folder);
            }
        }
        for folder in folders {
            self.pick(folder, false)?;
        }
        Ok(())
    }

    /// Copies `path` (a folder whole when `whole`, else only the folder);
    /// returns it when it was a folder copied whole.
    fn pick(&mut self, path: &Path, whole: bool) -> Result<Option<PathBuf>> {
        let names: Vec<&OsStr> = path
            .components()
            .filter(|c| *c != Component::CurDir)
            .map(|c| match c {
                Component::Normal(name) => Ok(name),
                _ => Err(anyhow::anyhow!("{} is not a path inside the tree", path.display())),
            })
            .collect::<Result<_>>()?;
        let Some((last, folders)) = names.split_last() else { return Ok(None) };
        let parent: PathBuf = folders.iter().collect();
        let Some((from, to)) = self.reach(&parent, folders)? else { return Ok(None) };
        let at = parent.join(last);
        let copied_whole = match sys::stat_in(&from, Path::new(last))?.map(|s| sys::file_type(&s)) {
            Some(FileType::Directory) if !skipped(&from, last, folders.is_empty()) => {
                self.make_folder(&from, &to, &at)?;
                whole.then_some(at)
            }
            Some(FileType::RegularFile) => {
                self.file(&from, &to, &at)?;
                None
            }
            Some(FileType::Symlink) => {
                self.link(&from, &to, &at)?;
                None
            }
            _ => None,
        };
        self.last = Some((parent, from, to));
        if let Some(folder) = &copied_whole {
            self.folder(folder)?;
        }
        Ok(copied_whole)
    }

    /// Handles on the folder `parent` in the tree and in the copy, reached
    /// one component at a time, each folder on the way made in the copy
    /// (the last pick's, kept: the paths come sorted). `None` when
    /// something on the way is missing, left out, or a link, which is
    /// copied as the link it is, never followed.
    fn reach(&mut self, parent: &Path, folders: &[&OsStr]) -> Result<Option<(OwnedFd, OwnedFd)>> {
        if let Some((dir, from, to)) = self.last.take()
            && dir == parent
        {
            return Ok(Some((from, to)));
        }
        let here = |root: &OwnedFd| handles::open_dir(root, Path::new(""), Resolve::NoLinks);
        let (mut from, mut to) = (here(&self.source)?, here(&self.target)?);
        let mut at = PathBuf::new();
        for (i, name) in folders.iter().enumerate() {
            at.push(name);
            match sys::stat_in(&from, Path::new(name))?.map(|s| sys::file_type(&s)) {
                Some(FileType::Directory) if !skipped(&from, name, i == 0) => {
                    self.make_folder(&from, &to, &at)?;
                    let next =
                        |dir: &OwnedFd| sys::open_dir_below(dir, Path::new(name), Resolve::NoLinks);
                    (from, to) = (next(&from)?, next(&to)?);
                }
                Some(FileType::Symlink) => {
                    self.link(&from, &to, &at)?;
                    return Ok(None);
                }
                _ => return Ok(None),
            }
        }
        Ok(Some((from, to)))
    }

    /// Makes the folder `path` in the copy (its parent's handles given),
    /// to get the source's permission bits once it is filled.
    fn make_folder(&mut self, from: &OwnedFd, to: &OwnedFd, path: &Path) -> Result<()> {
        let name = Path::new(path.file_name().unwrap_or_default());
        let stat =
            sys::stat_in(from, name)?.with_context(|| format!("{} vanished", path.display()))?;
        handles::ensure_dir_in(to, name, 0o700)
            .with_context(|| format!("create {}", path.display()))?;
        self.modes.insert(path.to_path_buf(), stat.st_mode & 0o777);
        Ok(())
    }

    fn link(&mut self, from: &OwnedFd, to: &OwnedFd, path: &Path) -> Result<()> {
        let name = Path::new(path.file_name().unwrap_or_default());
        let target = sys::read_link_in(from, name)?;
        match handles::symlink_in(&target, to, name) {
            Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => {
                Err(err).with_context(|| format!("link {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// Copies a regular file: a reflink, else its data only (holes stay
    /// holes), with its permission bits but never setuid, setgid or sticky.
    fn file(&mut self, from: &OwnedFd, to: &OwnedFd, path: &Path) -> Result<()> {
        let name = Path::new(path.file_name().unwrap_or_default());
        let input = sys::open_read_below(from, name, Resolve::NoLinks)
            .with_context(|| format!("open {}", path.display()))?;
        let meta = input.metadata()?;
        if !meta.is_file() {
            return Ok(());
        }
        let output = match sys::create_new_in(to, name, 0o600) {
            Ok(output) => output,
            // Named twice (a tracked file the profile names too): copied.
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
            Err(err) => return Err(err).with_context(|| format!("create {}", path.display())),
        };
        if sys::clone_file(&input, &output).is_ok() {
            self.cost.reflinked += 1;
        } else {
            copy_data(&input, &output, meta.len())
                .with_context(|| format!("copy {}", path.display()))?;
        }
        sys::fchmod(&output, std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777)?;
        programs_owner::give(&output)?;
        self.cost.files += 1;
        self.cost.bytes += meta.len();
        Ok(())
    }

    /// Gives every folder made its mode, the deepest first (a folder that
    /// becomes read-only is filled already).
    fn give_folders_their_modes(&self) -> Result<()> {
        let mut folders: Vec<(&PathBuf, &u32)> = self.modes.iter().collect();
        folders.sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
        for (path, mode) in folders {
            let dir = handles::open_dir(&self.target, path, Resolve::NoLinks)?;
            handles::set_dir_mode(&dir, *mode)
                .with_context(|| format!("chmod {}", path.display()))?;
            programs_owner::give(&dir)?;
        }
        Ok(())
    }
}

/// Copies the data of `input` into the new file `output`, stretch by
/// stretch: the holes of a sparse file are skipped, and the copy is given
/// the length of the file, so they stay holes. The kernel moves the bytes
/// where it can (`copy_file_range`), else they are read and written.
fn copy_data(input: &File, output: &File, len: u64) -> std::io::Result<()> {
    let mut offset = 0;
    while let Some((start, end)) = handles::data_after(input, offset, len)? {
        let (mut from, mut to) = (start, start);
        while from < end {
            let chunk = (end - from).min(1 << 30) as usize;
            match sys::copy_range(input, &mut from, output, &mut to, chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) if sys::copy_unsupported(&err) => {
                    read_and_write(input, output, from, end)?;
                    break;
                }
                Err(err) => return Err(err),
            }
        }
        offset = end;
    }
    output.set_len(len)
}

fn read_and_write(input: &File, output: &File, mut at: u64, end: u64) -> std::io::Result<()> {
    let mut buffer = vec![0; 1 << 20];
    while at < end {
        let want = (end - at).min(buffer.len() as u64) as usize;
        let read = input.read_at(&mut buffer[..want], at)?;
        if read == 0 {
            break;
        }
        output.write_all_at(&buffer[..read], at)?;
        at += read as u64;
    }
    Ok(())
}
