//! File primitives with the safety rules built in: streamed hashes, staged
//! writes that are fsynced and renamed into place, and path checks.
use std::{
    fs::{self, File},
    io::{self, Read, Write},
    os::unix::fs::PermissionsExt,
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
        let (sha, size) = copy_hashed(src, &stage)?;
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
