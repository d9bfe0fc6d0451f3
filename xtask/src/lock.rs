//! One run at a time per TMWS root: a lock file with pid, host and start
//! time, created exclusively, removed when the run ends.
use std::{fs, io::Write, path::PathBuf};

use anyhow::{Context, Result};

use crate::{clock, exit::locked, process};

#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum Refusal {
    /// A live run holds it (exit 3).
    Held(anyhow::Error),
    /// Its holder is dead: an interrupted run, or a crash (exit 3 unless taken over).
    Stale(anyhow::Error),
}

impl Refusal {
    pub fn into_error(self) -> anyhow::Error {
        match self {
            Refusal::Held(err) | Refusal::Stale(err) => err,
        }
    }
}

impl Lock {
    /// Takes the lock in `dir`, or explains who holds it (exit 3). A lock of
    /// a dead process on this host is reported as stale; `break_stale` takes it.
    pub fn acquire(dir: &std::path::Path, break_stale: bool) -> Result<Lock, Refusal> {
        Lock::try_acquire(dir, break_stale).map_err(|err| match err.downcast_ref::<Stale>() {
            Some(_) => Refusal::Stale(err),
            None => Refusal::Held(err),
        })
    }

    fn try_acquire(dir: &std::path::Path, break_stale: bool) -> Result<Lock> {
        fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let path = dir.join("lock");
        let host = process::hostname();
        let content =
            format!("pid={}\nhost={host}\nstarted={}\n", std::process::id(), clock::now_rfc3339());
        loop {
            match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    file.write_all(content.as_bytes())?;
                    file.sync_all()?;
                    return Ok(Lock { path });
                }
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = fs::read_to_string(&path).unwrap_or_default();
                    let field = |name: &str| {
                        holder
                            .lines()
                            .find_map(|l| l.strip_prefix(&format!("{name}=")))
                            .unwrap_or("?")
                            .to_string()
                    };
                    let (pid, their_host, started) =
                        (field("pid"), field("host"), field("started"));
                    let dead =
                        their_host == host && pid.parse().is_ok_and(|p: i32| !process::alive(p));
                    if dead && break_stale {
                        eprintln!("taking over the stale lock of pid {pid} (started {started})");
                        fs::remove_file(&path)?;
                        continue;
                    }
                    if dead {
                        return Err(locked(format!(
                            "stale lock {}: pid {pid} on {their_host} (started {started}) is no longer running; pass --break-lock to take it over",
                            path.display()
                        ))
                        .context(Stale));
                    }
                    return Err(locked(format!(
                        "another run holds the lock {}: pid {pid} on {their_host}, started {started}",
                        path.display()
                    )));
                }
                Err(err) => return Err(err).with_context(|| format!("create {}", path.display())),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Marks a lock error as a stale lock.
#[derive(Debug)]
struct Stale;

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the lock's holder is no longer running")
    }
}
