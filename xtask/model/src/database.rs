//! A database is its file plus every file SQLite keeps beside it: the
//! rollback journal (`-journal`), the write-ahead log (`-wal`) and its index
//! (`-shm`). They are preserved, moved and refused together.
use std::{
    io::Read,
    path::{Path, PathBuf},
};

use anyhow::Result;

use xtask_base::exit::refused;
use xtask_fs::{RootDir, files::with_suffix};

/// The suffixes of the files SQLite keeps beside a database.
pub const SIDECARS: [&str; 3] = ["-journal", "-wal", "-shm"];

/// The first bytes of a rollback journal that holds a transaction.
const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

/// The database's files, itself first, each with its name.
pub fn files(db: &Path) -> [(String, PathBuf); 4] {
    let name = db.file_name().unwrap_or_default().to_string_lossy().into_owned();
    ["", SIDECARS[0], SIDECARS[1], SIDECARS[2]]
        .map(|suffix| (format!("{name}{suffix}"), with_suffix(db, suffix)))
}

/// Refuses (exit 4) a database whose file or sidecar is a link or anything
/// but a regular file: none of them is ever followed, read or replaced.
pub fn check_files(fs: &RootDir, db: &Path) -> Result<()> {
    for (_, path) in files(db) {
        fs.expect_file_or_nothing(&path)?;
        if fs.kind(&path)?.is_some() {
            // A link that stays inside the root would pass the kind check
            // of its parent: the file itself must not be one.
            fs.open_read(&path)?;
        }
    }
    Ok(())
}

/// Whether the database has a hot journal: a `-journal` that starts with a
/// journal's header, left by a writer that stopped in the middle of a
/// transaction. Opening the database would roll it back, a write; reading
/// the file without it would see half a transaction.
pub fn hot_journal(fs: &RootDir, db: &Path) -> bool {
    let mut head = [0u8; 8];
    fs.open_read(&with_suffix(db, SIDECARS[0]))
        .is_ok_and(|mut f| f.read_exact(&mut head).is_ok() && head == JOURNAL_MAGIC)
}

/// The refusal for a database with a hot journal, naming what to do.
pub fn hot_journal_refusal(shown: &str) -> anyhow::Error {
    refused(format!(
        "{shown}-journal is a hot journal: a writer stopped in the middle of a transaction, and opening {shown} would roll that transaction back (a write). Roll it back on purpose first, for example with `sqlite3 {shown} 'PRAGMA integrity_check'` once the service is stopped; or roll back the database from the backup (`--scenario database`), which keeps both files in the bundle"
    ))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test lays out its files by hand
mod tests {
    use super::*;

    #[test]
    fn a_journal_is_hot_only_with_a_header() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let fs = RootDir::open(&root).unwrap();
        let db = root.join("app.db");
        let names: Vec<String> = files(&db).into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["app.db", "app.db-journal", "app.db-wal", "app.db-shm"]);
        assert!(!hot_journal(&fs, &db), "no journal");
        std::fs::write(root.join("app.db-journal"), [0u8; 512]).unwrap();
        assert!(!hot_journal(&fs, &db), "a zeroed header (journal_mode=PERSIST) is cold");
        let mut hot = JOURNAL_MAGIC.to_vec();
        hot.extend([0u8; 504]);
        std::fs::write(root.join("app.db-journal"), hot).unwrap();
        assert!(hot_journal(&fs, &db));
        std::os::unix::fs::symlink("/etc/hostname", root.join("app.db-wal")).unwrap();
        let err = check_files(&fs, &db).unwrap_err();
        assert_eq!(xtask_base::exit::kind_of(&err), xtask_base::exit::Kind::Unsafe);
    }
}
