//! `cargo xtask backup`: takes the backup (or plans it) and says what it did.
use std::{path::Path, time::Instant};

use anyhow::Result;
use xshell::Shell;
use xtask_adapters::git;
use xtask_model::{
    check::Version,
    manifest::{Kind, Manifest},
    profile::Tree,
    repository::Repository,
};
use xtask_ops::{
    self,
    backup::{Action, BackupOptions, PlanItem},
};

use super::{
    documents::{BackupDocument, Effect},
    flags::{self, Format},
    ui,
};

impl flags::Backup {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let format = self.format.unwrap_or_default();
        let tree = Tree::locate(self.root.as_deref())?;
        let options = BackupOptions {
            label: self.label.unwrap_or_else(|| tree.profile.label.clone()),
            dry_run: self.dry_run,
            tag: !self.no_tag,
        };
        // Resolved first: a repository setting that is refused takes no backup.
        let repository = Repository::resolve(self.repo.as_deref(), &tree.profile)?;
        let started = Instant::now();
        let (manifest, plan) = xtask_ops::backup::take(sh, &tree, &options)?;
        // Off-site too: verified, stored, and checked against what restic read.
        let offsite = match (&repository, options.dry_run) {
            (Some(repo), false) => {
                Some(xtask_ops::offsite::push(sh, &tree, &options.label, repo, None)?)
            }
            _ => None,
        };
        if format == Format::Json {
            ui::document(&BackupDocument {
                schema: Version,
                command: "backup",
                result: Effect::of(options.dry_run),
                dry_run: options.dry_run,
                backup: tree.backup(&options.label),
                plan,
                manifest,
                offsite,
            })?;
        } else if options.dry_run {
            print_plan(&tree.backup(&options.label), &plan);
        } else {
            let db = manifest.database().map_or(0, |f| f.size);
            super::ui::line(&format!(
                "backed up {} files to {} in {:.2}s: database {} at revision {}, {} migrations, {} config, {} critical files{}{}{}",
                manifest.files.len(),
                tree.backup(&options.label).display(),
                started.elapsed().as_secs_f64(),
                xtask_base::units::size(db),
                manifest.database_revision.join(" "),
                manifest.count(Kind::Migration),
                manifest.count(Kind::Config),
                manifest.count(Kind::Critical),
                match manifest.count(Kind::External) {
                    0 => String::new(),
                    n => format!(", {n} outside the tree"),
                },
                notes(&manifest),
                tag_note(&tree, &manifest, &options),
            ));
            if let Some(pushed) = &offsite {
                super::ui::line(&pushed.summary());
            }
        }
        Ok(())
    }
}

/// What the summary adds about absent files and uncommitted changes.
fn notes(manifest: &Manifest) -> String {
    let mut out = String::new();
    if !manifest.absent.is_empty() {
        let paths: Vec<&str> = manifest.absent.iter().map(|a| a.source_path.as_str()).collect();
        out.push_str(&format!("; absent, recorded as such: {}", paths.join(", ")));
    }
    if !manifest.worktree.is_empty() {
        let paths: Vec<&str> = manifest.worktree.iter().map(|w| w.path.as_str()).collect();
        out.push_str(&format!(
            "; uncommitted changes recorded (the tag names HEAD, the files copied differ from it): {}",
            paths.join(", ")
        ));
    }
    out
}

/// The tag taken with the backup, and how a person shares it.
fn tag_note(tree: &Tree, manifest: &Manifest, options: &BackupOptions) -> String {
    match (&manifest.git_commit, options.tag) {
        (Some(commit), true) => format!(
            "; git tag {} at {}, in this clone only (the tool never runs git push; to share the tag: `git push {} refs/tags/{}`)",
            options.label,
            &commit[..12],
            git::open(&tree.root)
                .ok()
                .flatten()
                .and_then(|r| git::first_remote(&r))
                .unwrap_or_else(|| "<remote>".into()),
            options.label
        ),
        _ => String::new(),
    }
}

fn print_plan(target: &Path, plan: &[PlanItem]) {
    super::ui::line(&format!(
        "dry run: nothing is written. The backup would be {}:",
        target.display()
    ));
    for item in plan {
        let how = match item.action {
            Action::SqliteOnlineBackup => "SQLite online backup",
            Action::Copy => "copy",
            Action::Write => "write",
            Action::GitTag => "git tag",
        };
        let what = if item.source.is_empty() {
            item.target.clone()
        } else {
            format!("{} -> {}", item.source, item.target)
        };
        super::ui::line(&format!("  {how:<20} {what}"));
    }
}
