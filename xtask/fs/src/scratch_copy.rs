//! A scratch copy of a tree for the checks that run the tree's programs
//! (the app, pytest, alembic, the import check): whatever they write (an
//! upgrade at start-up, a data folder, logs, caches, bytecode) lands in
//! the copy, never in the tree. Files are reflinked where the file system
//! offers it, copied otherwise; the tree is read through its `RootDir`, so
//! no link is followed out of it and no FIFO is opened.
use std::{
    fs::{self, File},
    io,
    os::unix::fs::PermissionsExt,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use super::{RootDir, sys::FileType};

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

/// Folders no program of the tree needs in a copy: the tool's own, git's
/// and caches, and virtualenvs (run from where they are).
fn skipped(fs: &RootDir, path: &Path, name: &str) -> bool {
    const NAMES: [&str; 11] = [
        ".git",
        "backups",
        "forensics",
        ".tmws-rollback",
        "node_modules",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
    ];
    NAMES.contains(&name) || fs.kind(&path.join("pyvenv.cfg")).ok().flatten().is_some()
}

/// Copies the tree below `root` into the new folder `to` (outside the
/// tree), keeping modes and links as they are; FIFOs, sockets and devices
/// are left out, never opened.
pub fn copy_tree(fs: &RootDir, root: &Path, to: &Path) -> Result<Cost> {
    let started = Instant::now();
    let mut cost = Cost::default();
    fs::create_dir(to).with_context(|| format!("create {}", to.display()))?;
    copy_dir(fs, root, to, &mut cost)?;
    cost.took = started.elapsed();
    Ok(cost)
}

fn copy_dir(fs: &RootDir, from: &Path, to: &Path, cost: &mut Cost) -> Result<()> {
    for (name, kind) in fs.list(from)? {
        let (source, target) = (from.join(&name), to.join(&name));
        match kind {
            FileType::Directory if !skipped(fs, &source, &name.to_string_lossy()) => {
                fs::create_dir(&target).with_context(|| format!("create {}", target.display()))?;
                copy_dir(fs, &source, &target, cost)?;
            }
            FileType::RegularFile => copy_file(fs, &source, &target, cost)?,
            FileType::Symlink => {
                std::os::unix::fs::symlink(fs.read_link(&source)?, &target)
                    .with_context(|| format!("link {}", target.display()))?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn copy_file(fs: &RootDir, source: &Path, target: &Path, cost: &mut Cost) -> Result<()> {
    let mut input = fs.open_read(source)?;
    let meta = input.metadata()?;
    let mut output =
        File::create_new(target).with_context(|| format!("create {}", target.display()))?;
    if super::sys::clone_file(&input, &output).is_ok() {
        cost.reflinked += 1;
    } else {
        io::copy(&mut input, &mut output).with_context(|| format!("copy {}", source.display()))?;
    }
    output.set_permissions(fs::Permissions::from_mode(meta.permissions().mode() & 0o7777))?;
    cost.files += 1;
    cost.bytes += meta.len();
    Ok(())
}
