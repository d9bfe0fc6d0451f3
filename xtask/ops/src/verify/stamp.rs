//! The verification stamp: a record, in the tree's state folder, that a
//! backup passed every check, with the identity of each of its files (size,
//! inode, mtime and ctime). Any write to a file changes its ctime, so an
//! unchanged identity means unchanged content: a rollback then need not hash
//! and check it again (the restore hashes the database it copies anyway).
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use xtask_base::events;
use xtask_fs::files::{self, Identity};
use xtask_model::{profile::Tree, sealed};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// The identities of a backup's files, taken before it is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot(Vec<Entry>);

impl Snapshot {
    /// The files' paths relative to the backup folder, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|e| e.path.as_str())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The sum of the files' sizes.
    pub fn bytes(&self) -> u64 {
        self.0.iter().map(|e| e.identity.size).sum()
    }
}

pub fn snapshot(dir: &Path) -> Result<Snapshot> {
    identities(dir).map(Snapshot)
}

fn identities(dir: &Path) -> Result<Vec<Entry>> {
    files::list_files(dir)?
        .into_iter()
        .map(|relative| {
            let identity = Identity::of(&dir.join(&relative))?;
            Ok(Entry { path: relative.display().to_string(), identity })
        })
        .collect()
}

/// What the stamp's seal names it.
const KIND: &str = "verification stamp";

fn path(tree: &Tree, dir: &Path) -> std::path::PathBuf {
    let key = files::sha256_bytes(dir.display().to_string().as_bytes());
    tree.state_dir().join(format!("verified-{}.json", &key[..16]))
}

/// Records that the backup passed, with the identities taken *before* it
/// was verified, and only if they are still the same: a file changed while
/// the checks (or a confirmation prompt) ran is never stamped as verified.
pub fn record(tree: &Tree, dir: &Path, before: Snapshot) -> Result<bool> {
    if identities(dir)? != before.0 {
        return Ok(false);
    }
    let stamp = Stamp {
        verified: xtask_base::clock::now_rfc3339(),
        tool: format!("xtask {}", env!("CARGO_PKG_VERSION")),
        files: before.0,
    };
    tree.fs.create_dir_all(&tree.state_dir())?;
    let text = sealed::seal(KIND, &tree.root, &stamp)?;
    files::write_atomic(&tree.fs, &path(tree, dir), text.as_bytes())?;
    Ok(true)
}

/// `record`, as best effort: without the stamp the next run only verifies
/// again, so a failure to write it is said, not fatal.
pub fn remember(tree: &Tree, dir: &Path, before: Snapshot) {
    match record(tree, dir, before) {
        Ok(true) => {}
        Ok(false) => events::note(&format!(
            "a file of {} changed while it was verified: it is not recorded as verified",
            dir.display()
        )),
        Err(err) => events::note(&format!(
            "the verification of {} could not be recorded ({err:#}); the next run verifies it again",
            dir.display()
        )),
    }
}

/// The state of a backup's last verification, for `list`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Verification {
    pub state: State,
    /// When it last passed verify-backup.
    pub verified: Option<String>,
}

/// Whether a backup passed verify-backup, and whether a file of it
/// changed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Never verified, or its record is unreadable.
    Never,
    /// Unchanged since it passed.
    Unchanged,
    /// Changed since it passed: it must be verified again.
    Changed,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Never => "never",
            State::Unchanged => "unchanged",
            State::Changed => "changed",
        })
    }
}

impl Verification {
    pub const NEVER: Verification = Verification { state: State::Never, verified: None };
}

impl std::fmt::Display for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.verified, self.state) {
            (None, _) => f.write_str("never verified"),
            (Some(at), state) => write!(f, "verified {at}, {state} since"),
        }
    }
}

pub fn state(tree: &Tree, dir: &Path) -> Verification {
    let never = Verification::NEVER;
    let Ok(text) = tree.fs.read_to_string(&path(tree, dir)) else { return never };
    let Ok(stamp) = sealed::open::<Stamp>(KIND, &tree.root, &text) else { return never };
    let state = match identities(dir) {
        Ok(now) if now == stamp.files => State::Unchanged,
        _ => State::Changed,
    };
    Verification { state, verified: Some(stamp.verified) }
}

/// When the backup passed verify-backup and no file of it changed since:
/// the time it was verified, and the identities it was verified with.
pub fn unchanged_since(tree: &Tree, dir: &Path) -> Option<(String, Snapshot)> {
    let text = tree.fs.read_to_string(&path(tree, dir)).ok()?;
    // A stamp this tool did not write (its seal does not match) is none:
    // the backup is verified again.
    let stamp: Stamp = sealed::open(KIND, &tree.root, &text).ok()?;
    let now = identities(dir).ok()?;
    (now == stamp.files).then_some((stamp.verified, Snapshot(now)))
}
