//! The record a database restore leaves when it put the restored file back
//! into WAL mode. Its header then differs from the backup's, so its sha256 no
//! longer matches the manifest: a resumed run recognises its own restore by
//! this record (the file's identity) instead of the hash.
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use xtask_fs::files::{self, Identity};
use xtask_model::profile::Tree;

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Restored {
    backup_sha256: String,
    identity: Identity,
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("restored-database.json")
}

pub fn record(tree: &Tree, db: &Path, backup_sha256: &str) -> Result<()> {
    let restored = Restored { backup_sha256: backup_sha256.into(), identity: Identity::of(db)? };
    tree.fs.create_dir_all(&tree.state_dir())?;
    let text = serde_json::to_string_pretty(&restored)?;
    files::write_atomic(&tree.fs, &path(&tree.state_dir()), text.as_bytes())
}

/// Whether `db` is, unchanged, the restore of the backup with that sha256.
pub fn is_restore_of(tree: &Tree, db: &Path, backup_sha256: &str) -> bool {
    let Ok(text) = tree.fs.read_to_string(&path(&tree.state_dir())) else { return false };
    let Ok(restored) = serde_json::from_str::<Restored>(&text) else { return false };
    restored.backup_sha256 == backup_sha256
        && Identity::of(db).is_ok_and(|identity| identity == restored.identity)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test lays out its files by hand
mod tests {
    use super::*;

    #[test]
    fn a_restore_is_recognised_until_its_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let tree = Tree {
            root: root.clone(),
            profile: Default::default(),
            fs: std::sync::Arc::new(xtask_fs::root_dir::RootDir::open(&root).unwrap()),
            copy_of: None,
        };
        let db = root.join("tmws.db");
        std::fs::write(&db, "restored").unwrap();
        assert!(!is_restore_of(&tree, &db, "abc"), "nothing recorded yet");
        record(&tree, &db, "abc").unwrap();
        assert!(is_restore_of(&tree, &db, "abc"));
        assert!(!is_restore_of(&tree, &db, "def"), "the restore of another backup");
        // A file put in its place has another inode, even with equal bytes.
        let other = root.join("other");
        std::fs::write(&other, "restored").unwrap();
        std::fs::rename(&other, &db).unwrap();
        assert!(!is_restore_of(&tree, &db, "abc"));
    }
}
