//! File primitives with the safety rules built in: streamed hashes, staged
//! writes that are fsynced and renamed into place, and path checks.
use std::{
    fs::{self, File},
    io::{self, Read, Write},
    os::{
        fd::AsRawFd,
        unix::fs::{MetadataExt, PermissionsExt},
    },
    path::{Component, Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// Large enough that SHA-256 with CPU extensions is never waiting on syscalls.
const CHUNK: usize = 1 << 20;

/// Hex SHA-256 and size of a file, read in fixed chunks so memory stays flat.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).with_context(|| format!("read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies `src` to `dst` through a staged file beside `dst`: hashed while
/// written, fsynced, optionally checked against an expected hash, then renamed.
/// A crash leaves either the old `dst` or the new one, never a torn file.
pub fn copy_staged(src: &Path, dst: &Path, expected_sha: Option<&str>) -> Result<(String, u64)> {
    let stage = staging_path(dst);
    let result = (|| {
        let (sha, size) = copy_in_kernel(src, &stage)?;
        if let Some(expected) = expected_sha
            && sha != expected
        {
            bail!("{} hashes to {sha}, the manifest says {expected}", src.display());
        }
        let mode = fs::metadata(src)?.permissions().mode() & 0o7777;
        fs::set_permissions(&stage, fs::Permissions::from_mode(mode))?;
        fs::rename(&stage, dst).with_context(|| format!("rename into {}", dst.display()))?;
        fsync_parent(dst)?;
        Ok((sha, size))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&stage);
    }
    result
}

/// Copies a file with `copy_file_range` (the kernel moves the bytes, no
/// user-space buffer) while another thread hashes the source, then fsyncs the
/// copy. The source must not change meanwhile: callers copy from the backup,
/// which is read-only and which nothing writes while the lock is held. Falls
/// back to `copy_hashed` where the kernel cannot copy between these files.
pub fn copy_in_kernel(src: &Path, dst: &Path) -> Result<(String, u64)> {
    let input = File::open(src).with_context(|| format!("open {}", src.display()))?;
    let output = File::create(dst).with_context(|| format!("create {}", dst.display()))?;
    let len = input.metadata()?.len();
    let hashing = {
        let src = src.to_path_buf();
        std::thread::spawn(move || sha256_file(&src))
    };
    let mut copied = 0u64;
    while copied < len {
        // Chunks of 64 MiB, each handed to the disk as soon as it is copied:
        // the final fsync then waits for little.
        let chunk = (len - copied).min(64 << 20) as usize;
        // SAFETY: both descriptors are open files we own; null offsets mean
        // "use and advance the files' own positions".
        let n = unsafe {
            libc::copy_file_range(
                input.as_raw_fd(),
                std::ptr::null_mut(),
                output.as_raw_fd(),
                std::ptr::null_mut(),
                chunk,
                0,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            let unsupported = matches!(
                err.raw_os_error(),
                Some(libc::ENOSYS | libc::EXDEV | libc::EINVAL | libc::EOPNOTSUPP)
            );
            let _ = hashing.join();
            if copied == 0 && unsupported {
                drop(output);
                return copy_hashed(src, dst);
            }
            return Err(err).with_context(|| format!("copy {}", src.display()));
        }
        if n == 0 {
            break;
        }
        // SAFETY: starts asynchronous writeback of the range just copied.
        unsafe {
            libc::sync_file_range(
                output.as_raw_fd(),
                copied as i64,
                n as i64,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        copied += n as u64;
    }
    output.sync_all().with_context(|| format!("fsync {}", dst.display()))?;
    let (sha, size) =
        hashing.join().map_err(|_| anyhow::anyhow!("the hashing thread panicked"))??;
    if size != copied {
        bail!(
            "{} changed while it was copied ({size} bytes hashed, {copied} copied)",
            src.display()
        );
    }
    Ok((sha, size))
}

/// Copies a file while hashing it, and fsyncs the copy.
pub fn copy_hashed(src: &Path, dst: &Path) -> Result<(String, u64)> {
    let mut input = File::open(src).with_context(|| format!("open {}", src.display()))?;
    let mut output = File::create(dst).with_context(|| format!("create {}", dst.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buffer).with_context(|| format!("read {}", src.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        output.write_all(&buffer[..n]).with_context(|| format!("write {}", dst.display()))?;
        size += n as u64;
    }
    output.sync_all().with_context(|| format!("fsync {}", dst.display()))?;
    Ok((hex(&hasher.finalize()), size))
}

/// Writes bytes to `path` through a staged, fsynced file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let stage = staging_path(path);
    let mut file = File::create(&stage).with_context(|| format!("create {}", stage.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&stage, path).with_context(|| format!("rename into {}", path.display()))?;
    fsync_parent(path)
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

/// The temporary name used beside a target while it is staged.
pub fn staging_path(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.xtask-staged"))
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

/// A path from a manifest or a profile must be relative and must not climb.
pub fn check_relative(path: &str) -> Result<()> {
    let p = Path::new(path);
    let climbs = p.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if path.is_empty() || climbs || path.contains(['\n', '\t']) {
        bail!(
            "path {path:?} must be relative and stay inside its folder (no '..', no leading '/')"
        );
    }
    Ok(())
}

/// Fails when a path inside `base` is, or passes through, a symlink that
/// leads outside `base`.
pub fn check_inside(base: &Path, relative: &str) -> Result<()> {
    check_relative(relative)?;
    let full = base.join(relative);
    let Ok(resolved) = full.canonicalize() else { return Ok(()) };
    let base = base.canonicalize().with_context(|| format!("resolve {}", base.display()))?;
    if !resolved.starts_with(&base) {
        bail!("{relative} leads outside {} (to {})", base.display(), resolved.display());
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

pub fn is_not_found(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound
}

/// A folder of our own under the system's temporary folder, removed with
/// everything in it when dropped.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// `<tmp>/<prefix>-<pid>-<time>`: unique per process and run.
    pub fn new(prefix: &str) -> Result<ScratchDir> {
        let name = format!("{prefix}-{}-{}", std::process::id(), crate::clock::now_compact());
        let path = std::env::temp_dir().join(name);
        fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(ScratchDir(path.canonicalize()?))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
