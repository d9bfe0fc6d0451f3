//! The run's scratch folders (check copies, the programs' `HOME`s, a
//! restore of `verify-backup --repo`) and the folders a stopped run must
//! not leave half-made in a tree (a pull's stage): each is registered
//! while it lives, so that a termination signal, which ends the process
//! without running any destructor, removes them before the run exits.
//!
//! A scratch folder is made 0700 in the temporary folder and named after
//! the run that made it (`tmws-KIND-PID.START-RANDOM`, see `leftovers`), so
//! that a later run can remove what a run killed by SIGKILL left.
use std::{
    hash::{BuildHasher, Hasher},
    io,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard, RwLock},
};

use anyhow::{Context, Result};

use crate::{handles, leftovers::RunId, sys};

/// What the signal path does with a registered folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Removes it with everything below it.
    Whole,
    /// Removes it only when it is empty (a `backups/` a pull made, which
    /// may hold backups by the time the signal comes).
    IfEmpty,
}

struct Entry {
    id: u64,
    /// The folder holding it, reached without a link when it was registered.
    parent: OwnedFd,
    name: PathBuf,
    how: Removal,
}

struct Registry {
    /// Set by the signal path: no folder is registered (or made) after it.
    closed: bool,
    next: u64,
    entries: Vec<Entry>,
}

/// Held only to add, take out or hand over entries (and, in `Scratch::new`,
/// for the one `mkdirat` that makes a folder): never while removing.
static REGISTRY: Mutex<Registry> =
    Mutex::new(Registry { closed: false, next: 0, entries: Vec::new() });

/// Shared by each owner removing its folder (`Scratch`'s drop), taken alone
/// by the signal path before it ends the run: a folder its owner took out
/// of the registry is never left half-removed by the exit. Taken before the
/// registry's lock, never after it.
static REMOVING: RwLock<()> = RwLock::new(());

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn stopped() -> anyhow::Error {
    anyhow::anyhow!("the run is being stopped by a signal: no new scratch folder is made")
}

/// A folder the signal path removes until this is dropped (or `forget` is
/// called): dropping it removes nothing.
#[must_use = "the folder is no longer removed on a signal once this is dropped"]
pub struct Registration {
    id: u64,
}

impl Registration {
    /// The folder's work is done (renamed into place, or removed by its
    /// owner): a signal leaves it alone from now on.
    pub fn forget(self) {}

    fn take(&self) -> Option<Entry> {
        let mut registry = registry();
        let at = registry.entries.iter().position(|entry| entry.id == self.id)?;
        Some(registry.entries.remove(at))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.take();
    }
}

/// Registers `name` in the folder `parent` (a handle reached without a
/// link) for removal on a termination signal.
pub fn on_signal(parent: OwnedFd, name: &Path, how: Removal) -> Result<Registration> {
    let mut registry = registry();
    if registry.closed {
        return Err(stopped());
    }
    Ok(register(&mut registry, parent, name.to_path_buf(), how))
}

fn register(registry: &mut Registry, parent: OwnedFd, name: PathBuf, how: Removal) -> Registration {
    registry.next += 1;
    let id = registry.next;
    registry.entries.push(Entry { id, parent, name, how });
    Registration { id }
}

/// Removes every registered folder, newest first, and refuses any new one:
/// what a termination signal does before the run exits. The registry's
/// lock is held only to take the list out; the removals run without it.
/// A removal its owner has begun (a program stopped by the signal, its
/// check done) is waited for.
pub fn remove_all_on_signal() {
    let _owners_done = REMOVING.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    let entries = {
        let mut registry = registry();
        registry.closed = true;
        std::mem::take(&mut registry.entries)
    };
    for entry in entries.into_iter().rev() {
        // The run is ending: a folder that cannot go is swept by the next run.
        let _left_for_the_next_run = remove(&entry);
    }
}

fn remove(entry: &Entry) -> io::Result<()> {
    match entry.how {
        Removal::Whole => handles::remove_tree(&entry.parent, &entry.name),
        Removal::IfEmpty => sys::rmdir_in(&entry.parent, &entry.name),
    }
}

/// A folder of this run's own in the temporary folder: made 0700 under a
/// new name (never an existing folder), removed with everything in it when
/// dropped or when a termination signal ends the run.
pub struct Scratch {
    path: PathBuf,
    registration: Registration,
}

impl Scratch {
    /// A new folder `PREFIX-PID.START-RANDOM` in the temporary folder.
    pub fn new(prefix: &str) -> Result<Scratch> {
        Scratch::new_in(&std::env::temp_dir(), prefix, 0o700)
    }

    /// A new folder `PREFIX-PID.START-RANDOM` in `temp`, made with `mode`
    /// (0711: other users may pass through to a folder inside whose name
    /// they are given, never list it).
    pub fn new_in(temp: &Path, prefix: &str, mode: u32) -> Result<Scratch> {
        let run = RunId::current();
        for _ in 0..100 {
            let parent = handles::open_dir_path(temp)
                .with_context(|| format!("open the temporary folder {}", temp.display()))?;
            let name = PathBuf::from(format!("{prefix}-{}-{}", run.tag(), random_word()));
            let mut registry = registry();
            if registry.closed {
                return Err(stopped());
            }
            match sys::mkdir_in(&parent, &name, mode) {
                Ok(()) => {
                    let path = temp.join(&name);
                    let registration = register(&mut registry, parent, name, Removal::Whole);
                    return Ok(Scratch { path, registration });
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => {
                    return Err(err)
                        .with_context(|| format!("create a folder in {}", temp.display()));
                }
            }
        }
        anyhow::bail!("no free name for a scratch folder in {} after 100 tries", temp.display())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Held until the folder is gone: the signal path waits for it.
        let _removing = REMOVING.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Gone already when the signal path took it: it removes it itself.
        if let Some(entry) = self.registration.take() {
            // Nothing to report from a destructor: what stays is swept by
            // the next run, which sees this one gone.
            let _left_for_the_next_run = remove(&entry);
        }
    }
}

/// Six letters or digits no other process can guess, so that nobody can
/// make the folder first in a shared temporary folder (std's hasher is
/// keyed with random bytes from the kernel, new for every instance).
fn random_word() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    hasher.write_u128(now.map_or(0, |d| d.as_nanos()));
    let mut bits = hasher.finish();
    (0..6)
        .map(|_| {
            let letter = ALPHABET[(bits % ALPHABET.len() as u64) as usize] as char;
            bits /= ALPHABET.len() as u64;
            letter
        })
        .collect()
}
