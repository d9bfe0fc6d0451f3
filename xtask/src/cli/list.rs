//! `cargo xtask list`: the backups of a tree (and of a repository) as a
//! table or a JSON document.
use anyhow::Result;
use xshell::Shell;
use xtask_base::units;
use xtask_model::{profile::Tree, repository::Repository};
use xtask_ops::{
    destination,
    list::{Listing, list},
};

use super::{
    flags::{self, Format},
    ui,
};

impl flags::List {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let format = self.format.unwrap_or_default();
        let tree = Tree::locate(self.root.as_deref())?;
        let mut listing = list(&tree)?;
        if let Some(repo) = Repository::resolve(self.repo.as_deref(), &tree.profile)? {
            listing.repository = Some(destination::remote(&repo).entries(sh)?);
        }
        match format {
            Format::Json => ui::document(&listing)?,
            Format::Human => super::ui::out(&human(&tree, &listing)),
        }
        Ok(())
    }
}

fn human(tree: &Tree, listing: &Listing) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if listing.backups.is_empty() {
        let take = xtask_model::advice::xtask("backup", &tree.root);
        out.push_str(&format!("no backup in this tree: take one with `{take}`\n"));
    } else {
        let _ = writeln!(
            out,
            "{:<16} {:<20} {:<12} {:<4} {:<14} {:>10}  verification",
            "label", "created", "commit", "tag", "revision", "size"
        );
        for b in &listing.backups {
            let _ = writeln!(
                out,
                "{:<16} {:<20} {:<12} {:<4} {:<14} {:>10}  {}",
                b.label.as_str(),
                b.created,
                b.git_commit.as_deref().map_or("-", |c| &c[..12.min(c.len())]),
                if b.tag_here { "yes" } else { "no" },
                b.database_revision.join(" "),
                units::size(b.size),
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
    if !listing.bundles.is_empty() {
        let total: u64 = listing.bundles.iter().map(|b| b.size).sum();
        let _ = writeln!(
            out,
            "\nforensics bundles: {}, {} (prune --bundles --keep N removes old ones)",
            listing.bundles.len(),
            units::size(total)
        );
        for b in &listing.bundles {
            let _ = writeln!(out, "  {:<48} {:>10}", b.name, units::size(b.size));
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
