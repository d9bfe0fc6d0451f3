//! `cargo xtask list`: the backups of a tree and their state (label,
//! created, git commit and whether its tag is here, database revision, size,
//! last verification), and whether a run holds the lock or a rollback is
//! unfinished.

use anyhow::Result;
use schemars::JsonSchema;
use serde::Serialize;

use crate::verify::stamp;
use xtask_adapters::git;
use xtask_model::label::Label;
use xtask_model::{
    backup::Backup,
    check::Version,
    journal::{Journal, Peek},
    lock::Lock,
    profile::{Tree, labels},
    repository::Entry,
};

/// One backup of `backups/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Listed {
    pub label: Label,
    pub created: String,
    pub git_commit: Option<String>,
    /// The backup's tag exists in this repository and points at its commit.
    pub tag_here: bool,
    /// The database's revisions (several on unmerged heads).
    pub database_revision: Vec<String>,
    /// Bytes of the files the manifest lists.
    pub size: u64,
    pub verification: stamp::Verification,
}

/// The document of `list`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Listing {
    pub schema: Version,
    #[schemars(extend("const" = "list"))]
    pub command: &'static str,
    pub backups: Vec<Listed>,
    /// Who holds the lock, when a run does.
    pub lock: Option<String>,
    /// An unfinished rollback: scenario, run and status.
    pub unfinished_rollback: Option<String>,
    /// The forensics bundles under forensics/, oldest first.
    pub bundles: Vec<crate::destination::ListedBundle>,
    /// With `--repo`: the backups that restic repository holds, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Vec<Entry>")]
    pub repository: Option<Vec<Entry>>,
}

pub fn list(tree: &Tree) -> Result<Listing> {
    let repo = git::open(&tree.root)?;
    let mut backups = Vec::new();
    for label in labels(tree) {
        let dir = tree.backup(&label);
        let Ok(manifest) = Backup::read_manifest(&tree.fs, &dir, Some(&label)) else {
            backups.push(Listed {
                label,
                created: "-".into(),
                git_commit: None,
                tag_here: false,
                database_revision: Vec::new(),
                size: 0,
                verification: stamp::Verification::NEVER,
            });
            continue;
        };
        let tag_here = match (&repo, &manifest.git_commit) {
            (Some(repo), Some(commit)) => {
                git::tag_commit(repo, &label).is_some_and(|at| at.to_string() == *commit)
            }
            _ => false,
        };
        backups.push(Listed {
            verification: stamp::state(tree, &dir),
            size: manifest.files.iter().map(|f| f.size).sum(),
            database_revision: manifest.database_revision.clone(),
            git_commit: manifest.git_commit.clone(),
            created: manifest.created.clone(),
            tag_here,
            label,
        });
    }
    // Oldest first; backups of the same second by their folders' mtime.
    let written = |label: &Label| {
        xtask_fs::files::Identity::of(&tree.backup(label)).map_or(0, |id| id.mtime_ns)
    };
    backups.sort_by(|a, b| {
        a.created.cmp(&b.created).then_with(|| written(&a.label).cmp(&written(&b.label)))
    });
    let lock = Lock::holder(tree);
    let unfinished_rollback = match Journal::<crate::rollback::Step>::peek(tree) {
        Peek::None => None,
        Peek::Found(j) => Some(format!(
            "--scenario {} (run {}, {:?}, stopped at step {})",
            j.scenario,
            j.run,
            j.status,
            j.stopped_at() + 1
        )),
        Peek::Unreadable(why) => Some(format!("of an unknown scenario: {why}")),
    };
    Ok(Listing {
        schema: Version,
        command: "list",
        backups,
        bundles: crate::destination::Bundles(tree).listed()?,
        lock,
        unfinished_rollback,
        repository: None,
    })
}
