//! One run at a time per TMWS root: an exclusive OS lock on an open file
//! (`.tmws-rollback/lock`), held for the whole command. The kernel releases
//! it when the process ends however it ends, so a crash, a kill -9 or a full
//! disk can never leave a lock that blocks forever. The file's content (a
//! JSON record of pid, host and start time) only says who holds it.
use std::{
    fs::File,
    io::{Read, Seek, Write},
    path::PathBuf,
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::{profile::Tree, sealed};
use xtask_base::{clock, exit::locked};
use xtask_fs::sys;

/// Who holds (or last held) the lock, as its file records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub started: String,
}

impl Holder {
    fn this_process() -> Holder {
        Holder { pid: std::process::id(), host: sys::hostname(), started: clock::now_rfc3339() }
    }
}

#[derive(Debug)]
pub struct Lock {
    file: File,
    /// What an earlier run left in the file, when it left a record.
    pub left_by: Option<String>,
}

/// The lock file of a tree.
pub fn path(tree: &Tree) -> PathBuf {
    tree.state_dir().join("lock")
}

impl Lock {
    /// Takes the lock of the tree, or explains who holds it (exit 3). A
    /// record an earlier run left in the file never blocks: only a live
    /// holder of the OS lock does.
    pub fn acquire(tree: &Tree) -> Result<Lock> {
        let state = tree.state_dir();
        tree.fs.create_dir_all(&state)?;
        let path = path(tree);
        let mut file = tree.fs.open_or_create(&path, 0o644)?;
        let mut content = String::new();
        // Unreadable content (not UTF-8) is described as such below.
        let _unreadable = file.read_to_string(&mut content);
        let holder = describe(tree, &content);
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(locked(format!(
                    "another run holds the lock {}: {holder}",
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("lock {}", path.display()));
            }
        }
        let record = sealed::seal(KIND, &tree.root, &Holder::this_process())?;
        // Best effort: the content only informs; the OS lock is the lock.
        let _informative = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(record.as_bytes()));
        Ok(Lock { file, left_by: (!holder.is_empty()).then_some(holder) })
    }

    /// Who holds the tree's lock now, if a live process does; never takes
    /// it, never waits, and never opens anything but a regular file.
    pub fn holder(tree: &Tree) -> Option<String> {
        let mut file = tree.fs.open_read(&path(tree)).ok()?;
        if file.try_lock_shared().is_ok() {
            return None;
        }
        let mut content = String::new();
        let _unreadable = file.read_to_string(&mut content);
        Some(describe(tree, &content))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // The file stays (removing a locked file lets two runs lock two
        // different files); it is emptied so nobody is named as its holder.
        let _emptied = self.file.set_len(0);
    }
}

/// What the lock's seal names its record.
const KIND: &str = "lock record";

/// `pid 12 on host, started T` from the file's record; an empty file says
/// nothing, and anything else (a record this tool did not write for this
/// user) is shown, shortened, as it is.
pub fn describe(tree: &Tree, content: &str) -> String {
    describe_in(&tree.root, content)
}

fn describe_in(root: &std::path::Path, content: &str) -> String {
    if content.trim().is_empty() {
        return String::new();
    }
    match sealed::open::<Holder>(KIND, root, content) {
        Ok(h) => format!("pid {} on {}, started {}", h.pid, h.host, h.started),
        Err(_) => format!(
            "a holder whose record this tool did not write ({:?})",
            content.chars().take(60).collect::<String>()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record this tool sealed reads as who and when (the integration
    /// tests hold the lock and read it so); anything else, as it is.
    #[test]
    fn a_record_this_tool_did_not_seal_reads_as_it_is() {
        let root = std::path::Path::new("/srv/tmws");
        let unsealed = serde_json::to_string(&Holder {
            pid: 12,
            host: "box".into(),
            started: "2026-11-30T03:00:00Z".into(),
        })
        .unwrap();
        let said = describe_in(root, &unsealed);
        assert!(said.starts_with("a holder whose record this tool did not write"), "{said}");
        assert_eq!(describe_in(root, "  \n"), "");
        assert_eq!(
            describe_in(root, &"x".repeat(500)).len(),
            "a holder whose record this tool did not write (\"\")".len() + 60
        );
    }
}
