//! `cargo xtask list`: the backups of a tree and their state (label,
//! created, git commit and whether its tag is here, database revision, size,
//! last verification), and whether a run holds the lock or a rollback is
//! unfinished.
use std::io::Read;

use anyhow::Result;
use serde::Serialize;
use xshell::Shell;

use crate::{
    flags, git,
    journal::Journal,
    manifest::{MANIFEST_FILE, Manifest},
    profile::{Tree, labels},
    report::Format,
    verify_backup::stamp,
};

#[derive(Debug, Serialize)]
pub struct Listed {
    pub label: String,
    pub created: String,
    pub git_commit: Option<String>,
    /// The backup's tag exists in this repository and points at its commit.
    pub tag_here: bool,
    pub database_revision: Vec<String>,
    /// Bytes of the files the manifest lists.
    pub size: u64,
    pub verification: String,
}

#[derive(Debug, Serialize)]
pub struct Listing {
    pub schema: u32,
    pub command: &'static str,
    pub backups: Vec<Listed>,
    /// Who holds the lock, when a run does.
    pub lock: Option<String>,
    /// An unfinished rollback: scenario, run and status.
    pub unfinished_rollback: Option<String>,
    /// With `--repo`: the backups that restic repository holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<Vec<crate::restic::Stored>>,
}

impl flags::List {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let format = self.format.unwrap_or_default();
        let tree = Tree::locate(self.root.as_deref())?;
        let mut listing = list(&tree)?;
        if let Some(repo) = &self.repo {
            listing.repository = Some(crate::restic::stored(sh, repo)?);
        }
        match format {
            Format::Json => println!("{}", serde_json::to_string_pretty(&listing)?),
            Format::Human => print!("{}", human(&listing)),
        }
        Ok(())
    }
}

pub fn list(tree: &Tree) -> Result<Listing> {
    let repo = git::open(&tree.root)?;
    let mut backups = Vec::new();
    for label in labels(tree) {
        let dir = tree.backup(&label);
        let mut text = String::new();
        let read = tree
            .fs
            .open_read(&dir.join(MANIFEST_FILE))
            .and_then(|mut f| Ok(f.read_to_string(&mut text)?));
        let Ok(manifest) = read.and_then(|_| Manifest::parse(&text)) else {
            backups.push(Listed {
                label,
                created: "-".into(),
                git_commit: None,
                tag_here: false,
                database_revision: Vec::new(),
                size: 0,
                verification: "unreadable manifest".into(),
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
    let written =
        |label: &str| crate::fsutil::Identity::of(&tree.backup(label)).map_or(0, |id| id.mtime_ns);
    backups.sort_by(|a, b| {
        a.created.cmp(&b.created).then_with(|| written(&a.label).cmp(&written(&b.label)))
    });
    let lock_file = tree.state_dir().join("lock");
    let lock = std::fs::File::open(&lock_file).ok().and_then(|file| match file.try_lock_shared() {
        Ok(()) => None,
        Err(_) => Some(
            std::fs::read_to_string(&lock_file)
                .unwrap_or_default()
                .replace('\n', " ")
                .trim()
                .to_string(),
        ),
    });
    let journal: Option<Journal<serde_json::Value>> = Journal::load(tree)?;
    let unfinished_rollback = journal.map(|j| {
        format!(
            "--scenario {} (run {}, {:?}, stopped at step {})",
            j.scenario,
            j.run,
            j.status,
            j.stopped_at() + 1
        )
    });
    Ok(Listing {
        schema: crate::report::SCHEMA,
        command: "list",
        backups,
        lock,
        unfinished_rollback,
        repository: None,
    })
}

fn human(listing: &Listing) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if listing.backups.is_empty() {
        out.push_str("no backup in this tree: take one with `cargo xtask backup`\n");
    } else {
        let _ = writeln!(
            out,
            "{:<16} {:<20} {:<12} {:<4} {:<14} {:>10}  verification",
            "label", "created", "commit", "tag", "revision", "MiB"
        );
        for b in &listing.backups {
            let _ = writeln!(
                out,
                "{:<16} {:<20} {:<12} {:<4} {:<14} {:>10.1}  {}",
                b.label,
                b.created,
                b.git_commit.as_deref().map_or("-", |c| &c[..12.min(c.len())]),
                if b.tag_here { "yes" } else { "no" },
                b.database_revision.join(" "),
                b.size as f64 / f64::from(1 << 20),
                b.verification
            );
        }
    }
    if let Some(stored) = &listing.repository {
        let _ = writeln!(out, "\nin the repository:");
        if stored.is_empty() {
            let _ = writeln!(out, "  no backup");
        }
        for s in stored {
            let _ = writeln!(
                out,
                "  {:<16} {:<32} {:<12} {:<14} snapshot {}",
                s.label,
                s.time,
                &s.commit[..12.min(s.commit.len())],
                s.revision,
                s.id
            );
        }
    }
    if let Some(lock) = &listing.lock {
        let _ = writeln!(out, "\nlock: held by {lock}");
    }
    if let Some(run) = &listing.unfinished_rollback {
        let _ = writeln!(out, "\nunfinished rollback {run}: --resume it or --abandon it");
    }
    out
}
