//! The verification stamp: a record, in the tree's state folder, that a
//! backup passed every check, with the identity of each of its files (size,
//! inode, mtime and ctime). Any write to a file changes its ctime, so an
//! unchanged identity means unchanged content: a rollback then need not hash
//! and check it again (the restore hashes the database it copies anyway).
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::{
    fsutil::{self, Identity},
    profile::Tree,
};

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    path: String,
    identity: Identity,
}

#[derive(Debug, Serialize, Deserialize)]
struct Stamp {
    verified: String,
    tool: String,
    files: Vec<Entry>,
}

fn identities(dir: &Path) -> Result<Vec<Entry>> {
    fsutil::list_files(dir)?
        .into_iter()
        .map(|relative| {
            let identity = Identity::of(&dir.join(&relative))?;
            Ok(Entry { path: relative.display().to_string(), identity })
        })
        .collect()
}

fn path(tree: &Tree, dir: &Path) -> std::path::PathBuf {
    let key = fsutil::sha256_bytes(dir.display().to_string().as_bytes());
    tree.state_dir().join(format!("verified-{}.json", &key[..16]))
}

pub fn record(tree: &Tree, dir: &Path) -> Result<()> {
    let stamp = Stamp {
        verified: crate::clock::now_rfc3339(),
        tool: format!("xtask {}", env!("CARGO_PKG_VERSION")),
        files: identities(dir)?,
    };
    std::fs::create_dir_all(tree.state_dir())?;
    fsutil::write_atomic(&path(tree, dir), serde_json::to_string_pretty(&stamp)?.as_bytes())
}

/// When the backup passed verify-backup and no file of it changed since:
/// the time it was verified.
pub fn unchanged_since(tree: &Tree, dir: &Path) -> Option<(String, usize)> {
    let text = std::fs::read_to_string(path(tree, dir)).ok()?;
    let stamp: Stamp = serde_json::from_str(&text).ok()?;
    let now = identities(dir).ok()?;
    let count = now.len();
    (now == stamp.files).then_some((stamp.verified, count))
}
