//! The folders of a tree's revision files: one (`migrations = "migrations/versions"`)
//! or several (`migrations = ["migrations/versions", "plugins/versions"]`),
//! as alembic.ini's `version_locations` names them. Alembic reads every one
//! of them as one history, so the tool backs up, checks and restores them
//! all; each keeps its own revisions.
use std::fmt;

use anyhow::{Result, bail};
use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationFolders(Vec<String>);

impl MigrationFolders {
    pub fn new(folders: Vec<String>) -> MigrationFolders {
        MigrationFolders(folders)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Several folders: the backup keeps each revision at its path, since
    /// two folders may hold files of one name.
    pub fn several(&self) -> bool {
        self.0.len() > 1
    }

    /// The folder, of those named, that holds `path` (a path relative to
    /// the root); with one folder, that folder, wherever the file was
    /// (a backup taken before the folder moved).
    pub fn holding(&self, path: &str) -> Option<&str> {
        let parent = plain(std::path::Path::new(path).parent()?);
        match self.0.as_slice() {
            [one] => Some(one),
            _ => self.iter().find(|folder| parent == plain(std::path::Path::new(folder))),
        }
    }

    /// Where a copy (a backup, a bundle) keeps the revision file `source`
    /// inside its folder of revisions: by its name for one folder (as
    /// backups always have), at its path for several.
    pub fn kept_as(&self, source: &str) -> String {
        match self.several() {
            true => source.to_string(),
            false => {
                let name = std::path::Path::new(source).file_name().unwrap_or_default();
                name.to_string_lossy().into_owned()
            }
        }
    }

    /// The value as a profile holds it: a string for one folder, an array
    /// for several.
    pub fn to_toml(&self) -> String {
        match self.0.as_slice() {
            [one] => format!("{one:?}"),
            many => {
                let quoted: Vec<String> = many.iter().map(|f| format!("{f:?}")).collect();
                format!("[{}]", quoted.join(", "))
            }
        }
    }

    /// Each folder with its key (`migrations`, or `migrations[1]` in a list).
    pub fn keyed(&self) -> Vec<(String, &str)> {
        match self.0.as_slice() {
            [one] => vec![("migrations".to_string(), one.as_str())],
            many => many
                .iter()
                .enumerate()
                .map(|(i, f)| (format!("migrations[{i}]"), f.as_str()))
                .collect(),
        }
    }

    /// No folder twice, and none inside another (restoring the outer one
    /// would swap the inner one with it), however each is spelled
    /// (`./migrations/versions` is `migrations/versions`).
    pub fn check(&self) -> Result<()> {
        if self.0.is_empty() {
            bail!("migrations = []: name the folder of the revision files (or several)");
        }
        let keyed = self.keyed();
        for (i, (key, folder)) in keyed.iter().enumerate() {
            for (other_key, other) in &keyed[..i] {
                let (inner, outer) =
                    (plain(std::path::Path::new(folder)), plain(std::path::Path::new(other)));
                if inner == outer {
                    bail!(
                        "{key} = {folder:?}: {other_key} names it already: name each folder once"
                    );
                }
                if inner.starts_with(&outer) || outer.starts_with(&inner) {
                    bail!(
                        "{key} = {folder:?}: it and {other_key} = {other:?} hold one another: a restore swaps a folder whole, so name folders beside each other"
                    );
                }
            }
        }
        Ok(())
    }
}

/// A relative path without its `.` components: `./a/./b` and `a/b` name
/// one folder (`Path` drops a `.` inside a path, but not a leading one).
fn plain(path: &std::path::Path) -> std::path::PathBuf {
    path.components().filter(|c| *c != std::path::Component::CurDir).collect()
}

impl fmt::Display for MigrationFolders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

impl From<&str> for MigrationFolders {
    fn from(folder: &str) -> MigrationFolders {
        MigrationFolders(vec![folder.to_string()])
    }
}

impl<'de> Deserialize<'de> for MigrationFolders {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a folder's path, or a list of them")]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(folder) => MigrationFolders(vec![folder]),
            OneOrMany::Many(folders) => MigrationFolders(folders),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folders(list: &[&str]) -> MigrationFolders {
        MigrationFolders::new(list.iter().map(|f| f.to_string()).collect())
    }

    #[test]
    fn one_folder_reads_as_a_string_and_several_as_a_list() {
        #[derive(Deserialize)]
        struct Holder {
            migrations: MigrationFolders,
        }
        let one: Holder = toml::from_str("migrations = \"a/versions\"").unwrap();
        assert_eq!(one.migrations.to_toml(), "\"a/versions\"");
        let two: Holder = toml::from_str("migrations = [\"a\", \"b/c\"]").unwrap();
        assert_eq!(two.migrations.to_toml(), "[\"a\", \"b/c\"]");
        assert_eq!(two.migrations.to_string(), "a, b/c");
        assert_eq!(two.migrations.holding("b/c/x.py"), Some("b/c"));
        assert_eq!(two.migrations.holding("d/x.py"), None);
        assert_eq!(one.migrations.holding("d/x.py"), Some("a/versions"));
        let dotted: Holder = toml::from_str("migrations = [\"./a\", \"b/c\"]").unwrap();
        assert_eq!(dotted.migrations.holding("a/x.py"), Some("./a"));
    }

    #[test]
    fn folders_named_twice_or_nested_are_refused_by_key() {
        let cases = [
            (folders(&[]), "migrations = []"),
            (folders(&["a", "a/"]), "migrations[1] = \"a/\": migrations[0] names it already"),
            (folders(&["a", "a/b"]), "migrations[1] = \"a/b\": it and migrations[0] = \"a\""),
            (
                folders(&["a/b", "./a/b"]),
                "migrations[1] = \"./a/b\": migrations[0] names it already",
            ),
            (folders(&["./a", "a/b"]), "migrations[1] = \"a/b\": it and migrations[0] = \"./a\""),
        ];
        for (folders, says) in cases {
            let message = folders.check().unwrap_err().to_string();
            assert!(message.starts_with(says), "{says:?} does not start {message:?}");
        }
        assert!(folders(&["a", "b"]).check().is_ok());
    }
}
