//! The tree's `forensics/` folder as a holder: each forensics bundle a
//! folder, listed and pruned under the same rules as backups (`prune
//! --bundles`), never the bundle of an unfinished rollback.
use anyhow::Result;
use serde::Serialize;
use xshell::Shell;

use super::Holder;
use xtask_fs::sys::FileType;
use xtask_model::{profile::Tree, repository::Entry};

pub struct Bundles<'a>(pub &'a Tree);

/// One bundle, for `list`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Listed {
    pub name: String,
    /// When it was written: the UTC stamp in its name (`20261130T082338Z`),
    /// or `-`.
    pub created: String,
    /// The bytes of its files.
    pub size: u64,
}

impl Bundles<'_> {
    /// Every bundle folder, oldest first (by the stamp in its name, then
    /// by name).
    pub fn listed(&self) -> Result<Vec<Listed>> {
        let tree = self.0;
        let dir = tree.forensics_dir();
        if !tree.fs.expect_dir_or_nothing(&dir)? {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for (name, kind) in tree.fs.list(&dir)? {
            let Some(name) = name.to_str().filter(|_| kind == FileType::Directory) else {
                continue;
            };
            // Only what the tool made: a bundle marked with its run, a live
            // check's or an unreadable journal's copy, named with its stamp.
            // A folder a person put there is theirs.
            let marked = tree.fs.is_file(&dir.join(name).join(crate::evidence::RUN_FILE))
                || name.starts_with("live-check-")
                || name.starts_with("unreadable-journal-");
            if !marked || stamp_in(name) == "-" {
                continue;
            }
            let size = tree.fs.size_of(&dir.join(name))?;
            out.push(Listed { name: name.to_string(), created: stamp_in(name), size });
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        Ok(out)
    }
}

/// The `YYYYMMDDTHHMMSSZ` stamp a bundle's name carries, or `-`.
fn stamp_in(name: &str) -> String {
    name.split('-')
        .find(|part| {
            part.len() == 16
                && part.ends_with('Z')
                && part.as_bytes()[8] == b'T'
                && part.chars().filter(char::is_ascii_digit).count() == 14
        })
        .unwrap_or("-")
        .to_string()
}

impl Holder for Bundles<'_> {
    fn name(&self) -> String {
        self.0.forensics_dir().display().to_string()
    }

    fn entries(&self, _sh: &Shell) -> Result<Vec<Entry>> {
        Ok(self
            .listed()?
            .into_iter()
            .map(|b| Entry {
                id: b.name.clone(),
                time: b.created,
                label: b.name,
                commit: "-".into(),
                revision: String::new(),
            })
            .collect())
    }

    fn forget(&self, _sh: &Shell, entries: &[&Entry]) -> Result<()> {
        for entry in entries {
            // A name from the listing above: one folder of forensics/.
            xtask_fs::files::check_relative(&entry.label)?;
            self.0.fs.remove_dir_all(&self.0.forensics_dir().join(&entry.label))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stamp_comes_from_the_name() {
        assert_eq!(
            super::stamp_in("pre-phase4-failure-20261130T082338Z-14719"),
            "20261130T082338Z"
        );
        assert_eq!(super::stamp_in("live-check-20261130T082338Z-1"), "20261130T082338Z");
        assert_eq!(super::stamp_in("by-hand"), "-");
    }
}
