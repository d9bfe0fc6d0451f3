//! Whose tree it is. As git refuses a repository another user owns, the
//! tool acts only on a tree whose root belongs to the user running it (or
//! to root, when root runs it) and that others may not write, unless the
//! user named it as safe: in `safe_roots` of their own config
//! (`$XDG_CONFIG_HOME/tmws-xtask/config.toml`), or with `--root DIR
//! --trust-owner` for one run. Looking for a tree from the current folder
//! never climbs into a folder another user owns or others may write.
use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::OnceLock,
};

use anyhow::Result;
use serde::Deserialize;

use xtask_base::exit::refused;
use xtask_fs::{outside, sys};

/// The root one run was told to trust (`--root DIR --trust-owner`).
static TRUSTED: OnceLock<PathBuf> = OnceLock::new();

/// Trusts `root` for this run, whoever owns it: the command line's
/// `--trust-owner`, given with `--root`.
pub fn trust(root: &Path) {
    let _first = TRUSTED.set(outside::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()));
}

/// The user's own config of the tool.
pub fn config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("tmws-xtask/config.toml"))
}

#[derive(Deserialize, Default)]
struct Config {
    #[serde(default)]
    safe_roots: Vec<PathBuf>,
}

/// The roots the user's config names as safe. A config another user owns,
/// or others may write, names none.
fn safe_roots() -> Vec<PathBuf> {
    let Some(path) = config_path() else { return Vec::new() };
    let Some(meta) = outside::entry(&path) else { return Vec::new() };
    if meta.uid() != sys::effective_uid() || meta.permissions().mode() & 0o022 != 0 {
        return Vec::new();
    }
    let text = outside::read_to_string(&path).unwrap_or_default();
    let config: Config = toml::from_str(&text).unwrap_or_default();
    config.safe_roots.iter().filter_map(|root| outside::canonicalize(root).ok()).collect()
}

/// Whether this user may take a folder's word as their own: it belongs to
/// them (or to root, when root asks) and others may not write it.
fn ours(meta: &std::fs::Metadata) -> bool {
    let me = sys::effective_uid();
    meta.uid() == me && meta.permissions().mode() & 0o022 == 0
}

/// Whether looking for a tree may climb into `dir`.
pub fn may_climb_into(dir: &Path) -> bool {
    outside::entry(dir).is_some_and(|meta| ours(&meta))
}

/// Ok when the tree at `root` (canonical) is this user's, or named safe; a
/// refusal (exit 4) that says whose it is and how to trust it otherwise.
pub fn check(root: &Path) -> Result<()> {
    let meta = outside::entry(root).ok_or_else(|| anyhow::anyhow!("{} is gone", root.display()))?;
    let trusted =
        TRUSTED.get().is_some_and(|t| t == root) || safe_roots().iter().any(|s| s == root);
    if ours(&meta) || trusted {
        return Ok(());
    }
    let me = sys::effective_uid();
    let whose = if meta.uid() == me {
        format!("others may write it (mode {:o})", meta.permissions().mode() & 0o7777)
    } else {
        format!("it belongs to {}, not to {}", sys::user_name(meta.uid()), sys::user_name(me))
    };
    let config = config_path().map_or("your config".into(), |p| p.display().to_string());
    let flag = format!(
        "--root {} --trust-owner",
        xtask_base::shell_words::quote(&root.display().to_string())
    );
    Err(refused(format!(
        "{} is not a tree of yours: {whose}. The tool runs the programs of a tree and writes into it, so it acts on one another user controls only when you say it is safe (as git refuses such a repository): add it to safe_roots in {config}, or pass {flag} for this run. Nothing was read or changed",
        root.display()
    )))
}
