//! One run at a time per TMWS root: an exclusive OS lock on an open file
//! (`.tmws-rollback/lock`), held for the whole command. The kernel releases
//! it when the process ends however it ends, so a crash, a kill -9 or a full
//! disk can never leave a lock that blocks forever. The file's content (pid,
//! host, start time) only says who holds it.
use std::{
    fs::File,
    io::{Read, Seek, Write},
};

use anyhow::{Context, Result};

use crate::{base::clock, base::exit::locked, fs::sys, model::profile::Tree};

#[derive(Debug)]
pub struct Lock {
    file: File,
    /// Who the file named when `--break-lock` took it over.
    pub taken_over_from: Option<String>,
}

impl Lock {
    /// Takes the lock of the tree, or explains who holds it (exit 3).
    /// `break_lock` takes over whatever an earlier holder wrote in the file;
    /// a lock that a live process holds cannot be taken, and says so.
    pub fn acquire(tree: &Tree, break_lock: bool) -> Result<Lock> {
        let state = tree.state_dir();
        tree.fs.create_dir_all(&state)?;
        let path = state.join("lock");
        let mut file = tree.fs.open_or_create(&path, 0o644)?;
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = describe(&holder);
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let hint = if break_lock {
                    "; --break-lock cannot take a lock that a running process holds: wait for it, or stop it"
                } else {
                    ""
                };
                return Err(locked(format!(
                    "another run holds the lock {}: {holder}{hint}",
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("lock {}", path.display()));
            }
        }
        let taken_over_from = (break_lock && !holder.is_empty()).then_some(holder);
        let content = format!(
            "pid={}\nhost={}\nstarted={}\n",
            std::process::id(),
            sys::hostname(),
            clock::now_rfc3339()
        );
        // Best effort: the content only informs; the OS lock is the lock.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(content.as_bytes()));
        Ok(Lock { file, taken_over_from })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // The file stays (removing a locked file lets two runs lock two
        // different files); it is emptied so nobody is named as its holder.
        let _ = self.file.set_len(0);
    }
}

/// `pid 12 on host, started T` from the file's content; any content at all
/// is accepted, an unreadable one is shown as it is.
fn describe(content: &str) -> String {
    let field = |name: &str| {
        content.lines().find_map(|l| l.strip_prefix(&format!("{name}="))).map(str::to_string)
    };
    match (field("pid"), field("host"), field("started")) {
        (Some(pid), host, started) => format!(
            "pid {pid} on {}, started {}",
            host.unwrap_or_else(|| "?".into()),
            started.unwrap_or_else(|| "?".into())
        ),
        _ if content.trim().is_empty() => String::new(),
        _ => format!(
            "a holder whose record is unreadable ({:?})",
            content.chars().take(60).collect::<String>()
        ),
    }
}
