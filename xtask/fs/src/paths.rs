//! Paths, judged without touching the disk (but `check_inside`, which
//! resolves): the staging name beside a target, a database's sidecar, and
//! the checks a path from a manifest or a profile must pass.
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The temporary name used beside a target while it is staged.
pub fn staging_path(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.xtask-staged"))
}

/// `tmws.db` + `-wal` → `tmws.db-wal`.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{name}{suffix}"))
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
/// leads outside `base`. A path that does not exist passes: only where it
/// would lead is judged here; opening it is the file-access layer's job.
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
