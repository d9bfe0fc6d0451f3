//! File primitives with the safety rules built in: streamed hashes, staged
//! writes that are fsynced and renamed into place, and path checks.
use std::{
    fs::{self, File},
    io::{self, Write},
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use super::hash::sha256_at;
pub use super::hash::{copy_hashed, sha256_bytes, sha256_open};
pub use super::paths::{check_inside, check_relative, staging_path, with_suffix};

use crate::root_dir::RootDir;
pub use crate::scratch::Scratch;
use crate::sys::{self, Rename};

/// A copy staged beside its target: written, fsynced, hash-checked and given
/// its final mode, but not yet in place. Dropped without `commit`, it is
/// removed and the target is untouched.
pub struct Staged<'a> {
    root: &'a RootDir,
    stage: PathBuf,
    target: PathBuf,
    pub sha256: String,
    pub size: u64,
    committed: bool,
}

impl Staged<'_> {
    /// Where the staged copy is, to check it before it goes into place.
    pub fn path(&self) -> &Path {
        &self.stage
    }

    /// Renames the staged copy over its target (a regular file or nothing).
    pub fn commit(mut self) -> Result<()> {
        self.root.expect_file_or_nothing(&self.target)?;
        self.root.rename(&self.stage, &self.target, Rename::Replace)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        // A stage left behind (removal failed) is removed by the next run
        // before it stages again: nothing to report from a destructor.
        if !self.committed {
            let _left_for_the_next_run = self.root.remove_file(&self.stage);
        }
    }
}

/// Stages a copy of `source` (opened by the caller, so the bytes hashed are
/// the bytes copied) beside `target` with `mode`, fsynced, and checked
/// against `expected_sha` when given. Nothing of the target changes.
pub fn stage_copy<'a>(
    root: &'a RootDir,
    source: &File,
    target: &Path,
    expected_sha: Option<&str>,
    mode: u32,
) -> Result<Staged<'a>> {
    let stage = staging_path(target);
    // A stage left by a crashed run is ours: it goes (a link is removed
    // itself, never followed).
    if root.kind(&stage)?.is_some() {
        root.remove_file(&stage).context("remove an earlier staged copy")?;
    }
    let output = root.create_new(&stage, 0o600)?;
    let mut staged = Staged {
        root,
        stage,
        target: target.to_path_buf(),
        sha256: String::new(),
        size: 0,
        committed: false,
    };
    let (sha, size) = copy_in_kernel(source, &output)
        .with_context(|| format!("copy into {}", staged.stage.display()))?;
    if let Some(expected) = expected_sha
        && sha != expected
    {
        bail!("{} hashes to {sha}, the manifest says {expected}", target.display());
    }
    // The mode is set before the rename: no crash leaves a read-only target.
    sys::fchmod(&output, mode)?;
    output.sync_all().with_context(|| format!("fsync {}", staged.stage.display()))?;
    (staged.sha256, staged.size) = (sha, size);
    Ok(staged)
}

/// Copies `source` over `target` through a staged copy (see `stage_copy`).
/// A crash leaves either the old target or the new one, never a torn file.
pub fn copy_staged(
    root: &RootDir,
    source: &File,
    target: &Path,
    expected_sha: Option<&str>,
    mode: u32,
) -> Result<(String, u64)> {
    let staged = stage_copy(root, source, target, expected_sha, mode)?;
    let done = (staged.sha256.clone(), staged.size);
    staged.commit()?;
    Ok(done)
}

/// Copies a file with `copy_file_range` (the kernel moves the bytes, no
/// user-space buffer) while another thread hashes the same open file with
/// positioned reads, then fsyncs the copy. Falls back to a plain read and
/// write where the kernel cannot copy between these files.
fn copy_in_kernel(input: &File, output: &File) -> Result<(String, u64)> {
    let hashing = {
        let reader = input.try_clone()?;
        std::thread::spawn(move || sha256_at(&reader))
    };
    let copied = kernel_copy(input, output);
    // The hashing thread's result is moot once the copy fails or falls back
    // to one that hashes as it copies.
    let to = match copied {
        Ok(Some(to)) => to,
        Ok(None) => {
            let _moot = hashing.join();
            return copy_hashed(input, output);
        }
        Err(err) => {
            let _moot = hashing.join();
            return Err(err);
        }
    };
    let (sha, size) =
        hashing.join().map_err(|_| anyhow::anyhow!("the hashing thread panicked"))??;
    if size != to {
        bail!("the source changed while it was copied ({size} bytes hashed, {to} copied)");
    }
    Ok((sha, size))
}

/// The kernel copies `input` into `output` (`copy_file_range`), in chunks
/// of 64 MiB each handed to the disk as soon as it is copied, so the final
/// fsync waits for little; the bytes copied, or `None` where the kernel
/// cannot copy between these files (nothing was written then).
fn kernel_copy(input: &File, output: &File) -> Result<Option<u64>> {
    let len = input.metadata()?.len();
    let (mut from, mut to) = (0u64, 0u64);
    let mut progress = xtask_base::events::Progress::bytes("copy", len);
    let halfway = crash_halfway();
    while from < len {
        let mut chunk = (len - from).min(64 << 20) as usize;
        if halfway {
            chunk = chunk.min(len.div_ceil(2) as usize);
        }
        let before = to;
        match sys::copy_range(input, &mut from, output, &mut to, chunk) {
            Ok(0) => break,
            Ok(n) => {
                sys::start_writeback(output, before, n as u64);
                progress.update(to);
                if halfway && to < len {
                    xtask_base::events::note("fault injected half-way through a copy: aborting");
                    std::process::abort();
                }
            }
            Err(err) if from == 0 && sys::copy_unsupported(&err) => return Ok(None),
            Err(err) => return Err(err).context("copy_file_range"),
        }
    }
    progress.finish();
    output.sync_all().context("fsync the copy")?;
    Ok(Some(to))
}

/// The crash tests' instant half-way through a copy the kernel makes
/// (`XTASK_ROLLBACK_FAULT=inside:copy-halfway`): the first half is copied,
/// then the process aborts, as a kill or a power loss would leave it.
fn crash_halfway() -> bool {
    xtask_base::faults::rollback().is_some_and(|fault| fault == "inside:copy-halfway")
}

/// Copies `source` (a path inside `from`) into a new file `dest` inside
/// `to`, hashing what it reads: evidence and backups are written this way.
pub fn copy_new(from: &RootDir, source: &Path, to: &RootDir, dest: &Path) -> Result<(String, u64)> {
    let input = from.open_read(source)?;
    if let Some(parent) = dest.parent() {
        to.create_dir_all(parent)?;
    }
    let output = to.create_new(dest, 0o644)?;
    copy_hashed(&input, &output).with_context(|| format!("copy {}", source.display()))
}

/// Copies `source` into a new file `dest` of the same root as the service
/// would have it: its permission bits (never setuid, setgid or sticky), its
/// owner and group when this runs as root, fsynced; returns its size. The
/// copy a migration works on takes the database's place later, so it must
/// be the same file to its service. Nothing hashes it: the kernel copies
/// at the disk's pace, and the copy is checked by what it holds.
pub fn copy_like(root: &RootDir, source: &Path, dest: &Path) -> Result<u64> {
    let input = root.open_read(source)?;
    let meta = input.metadata()?;
    let output = root.create_new(dest, 0o600)?;
    let copied = match kernel_copy(&input, &output) {
        Ok(Some(copied)) => Ok(copied),
        Ok(None) => copy_hashed(&input, &output).map(|(_, size)| size),
        Err(err) => Err(err),
    }
    .with_context(|| format!("copy {}", source.display()))?;
    if copied != meta.len() {
        bail!(
            "{} changed while it was copied ({copied} of {} bytes)",
            source.display(),
            meta.len()
        );
    }
    if sys::running_as_root() {
        sys::fchown(&output, meta.uid(), meta.gid())
            .with_context(|| format!("give {} its owner", dest.display()))?;
    }
    sys::fchmod(&output, meta.mode() & 0o777)?;
    output.sync_all().with_context(|| format!("fsync {}", dest.display()))?;
    Ok(copied)
}

/// Writes bytes to `path` through a staged, fsynced file and a rename.
pub fn write_atomic(root: &RootDir, path: &Path, bytes: &[u8]) -> Result<()> {
    let stage = staging_path(path);
    if root.kind(&stage)?.is_some() {
        root.remove_file(&stage)?;
    }
    let mut file = root.create_new(&stage, 0o644)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(err) = written {
        // A stage left behind is removed by the next write of this file.
        let _left_for_the_next_write = root.remove_file(&stage);
        return Err(err).with_context(|| format!("write {}", stage.display()));
    }
    root.expect_file_or_nothing(path)?;
    root.rename(&stage, path, Rename::Replace)
}

/// `path` if nothing is there, else the first free `path.2`, `path.3`, ...
pub fn free_name(path: &Path) -> PathBuf {
    let mut candidate = path.to_path_buf();
    let mut n = 1;
    while candidate.exists() {
        n += 1;
        candidate = PathBuf::from(format!("{}.{n}", path.display()));
    }
    candidate
}

pub fn fsync_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("fsync {}", parent.display()))?;
    }
    Ok(())
}

/// What tells a file's content apart without reading it: any write changes
/// its ctime, and a file put in its place has another inode.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub size: u64,
    pub inode: u64,
    pub device: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl Identity {
    pub fn of(path: &Path) -> io::Result<Identity> {
        let meta = fs::symlink_metadata(path)?;
        let ns = |secs: i64, nsec: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
        Ok(Identity {
            size: meta.size(),
            inode: meta.ino(),
            device: meta.dev(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        })
    }
}

/// The permission bits of a file, as the manifest records them.
pub fn mode(path: &Path) -> Result<u32> {
    Ok(fs::symlink_metadata(path)?.permissions().mode() & 0o7777)
}

/// Every regular file below `dir`, as sorted relative paths. Symlinks are
/// returned too (as entries, not followed) so callers can refuse them.
pub fn list_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(dir, Path::new(""), &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(base: &Path, relative: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let dir = base.join(relative);
    for entry in fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))? {
        let entry = entry?;
        let path = relative.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            walk(base, &path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Copies a directory tree of regular files; symlinks are refused.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    fs::create_dir_all(dst)?;
    for relative in list_files(src)? {
        let from = src.join(&relative);
        if fs::symlink_metadata(&from)?.file_type().is_symlink() {
            bail!("refusing to copy symlink {}", from.display());
        }
        let to = dst.join(&relative);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(&from, &to).with_context(|| format!("copy {}", from.display()))?;
    }
    Ok(())
}

/// The bytes of the regular files beneath `dir` (links not followed;
/// what cannot be read counts nothing): how far a restore has come.
pub fn bytes_beneath(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => bytes_beneath(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// A folder of our own under the system's temporary folder (0700, a new
/// name that says which run made it, created exclusively), removed with
/// everything in it when dropped, by the signal path when a termination
/// signal ends the run (see `scratch`), or by a later run when this one
/// was killed (see `leftovers`).
pub fn scratch_dir(prefix: &str) -> Result<Scratch> {
    Scratch::new(prefix).context("create a scratch folder")
}
