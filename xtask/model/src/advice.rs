//! What to do next: every command line or hint the tool suggests is built
//! here, once, so that the same advice reads the same everywhere.
use std::path::Path;

use super::{label::Label, scenario::Scenario};
use xtask_base::exit::{Kind, with_next};

/// How this tool is run: `cargo xtask` in its workspace (the binary cargo
/// builds is named `xtask`), or the name of the released binary (`cargo
/// xtask dist` names it `tmws-xtask`), where there is no cargo.
pub fn program() -> &'static str {
    static PROGRAM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PROGRAM.get_or_init(|| {
        let exe = std::env::args_os().next().map(std::path::PathBuf::from);
        // cargo's own builds of it: `xtask`, and `xtask-HASH` or
        // `xtask_CRATE-HASH` for tests.
        match exe.as_deref().and_then(Path::file_name).and_then(|n| n.to_str()) {
            Some(name)
                if name != "xtask"
                    && !name.starts_with("xtask-")
                    && !name.starts_with("xtask_") =>
            {
                name.to_string()
            }
            _ => "cargo xtask".to_string(),
        }
    })
}

/// `cargo xtask COMMAND --root ROOT`: every suggested command names its
/// tree, so that it runs as pasted from any folder.
pub fn xtask(command: &str, root: &Path) -> String {
    format!("{} {command} --root {}", program(), quoted(&root.display().to_string()))
}

/// `cargo xtask rollback --scenario S FLAGS --root ROOT`.
pub fn rollback(scenario: Scenario, flags: &str, root: &Path) -> String {
    xtask(&format!("rollback --scenario {scenario} {flags}"), root)
}

/// `cargo xtask backup --root ROOT [--label L]`: the backup a command needs.
pub fn take_backup(label: &Label, root: &Path) -> String {
    if *label == Label::pre_deploy() {
        xtask("backup", root)
    } else {
        xtask(&format!("backup --label {label}"), root)
    }
}

pub use xtask_base::shell_words::quote as quoted;

/// The command that finishes an unfinished rollback.
pub fn resume(scenario: Scenario, root: &Path) -> String {
    format!("{} --yes", rollback(scenario, "--resume", root))
}

/// The command that restores the files outside the tree too: the complete
/// row again with `--external` (what already equals the backup is left as
/// it is).
pub fn restore_external(root: &Path) -> String {
    format!("{} --yes", rollback(Scenario::Complete, "--external", root))
}

/// The command that closes an unfinished rollback, keeping its bundle.
pub fn abandon(scenario: Scenario, root: &Path) -> String {
    rollback(scenario, "--abandon", root)
}

/// The command that closes a run whose journal cannot be read (any
/// scenario does: the journal no longer says which it was).
pub fn abandon_unreadable(root: &Path) -> String {
    abandon(Scenario::Complete, root)
}

/// After a migration rollback that cannot finish: close it, then restore the
/// database from the backup instead. The way on is the first of the two.
pub fn database_instead(root: &Path) -> Advised {
    let close = abandon(Scenario::Migration, root);
    Advised {
        message: format!(
            "close this run with `{close}`, then restore the database from the backup with `{}`",
            rollback(Scenario::Database, "--yes", root)
        ),
        next: close,
    }
}

/// Words for a person that name a command, and that command: the message
/// of an error and its way on (the error document's `next`), made from one
/// value so that they cannot disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advised {
    pub message: String,
    pub next: String,
}

impl Advised {
    /// An error of `kind` saying `before` then this advice.
    pub fn error(self, kind: Kind, before: &str) -> anyhow::Error {
        with_next(kind, format!("{before}{}", self.message), self.next)
    }
}

impl std::fmt::Display for Advised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What to do when a backup's tag is not in this repository.
pub fn missing_tag(tag: &str, commit: &str) -> String {
    format!(
        "no tag {tag} in this repository (the manifest's commit is {commit}): the git and complete rollbacks make it again at that commit, or make it by hand with `git tag {tag} {commit}`"
    )
}

/// What to do when a backup taken with `--no-tag` meets a rollback that
/// starts its branch at the backup's tag.
pub fn untagged_backup(label: &str, commit: &str) -> Advised {
    let tag = format!("git tag {label} {commit}");
    Advised {
        message: format!(
            "backup {label} was taken with --no-tag and this repository has no tag {label}: the git and complete rollbacks start their branch at it. Make it at the manifest's commit with `{tag}`, then run this again. Nothing was changed"
        ),
        next: tag,
    }
}

/// What to do when the commit a backup was taken at is not in this
/// repository (a clone of a history rewritten since, or fetched in part):
/// the tag cannot be made again and the code cannot go back.
pub fn missing_commit(tag: &str, commit: &str, root: &Path) -> Advised {
    Advised {
        message: format!(
            "the backup's commit {commit} is not in this repository, so its tag {tag} cannot be made again and the code cannot go back to it. Fetch that commit into this clone (`git fetch origin` when a branch of origin holds it; `git fetch origin {commit}` where the server serves commits by id) and run this again, or restore without the code: `{}`. Nothing was changed",
            rollback(Scenario::Database, "--yes", root)
        ),
        next: "git fetch origin".into(),
    }
}

/// `; the backups here are: a, b` (or that there is none), for an error
/// about a label that does not exist.
pub fn labels_here(labels: &[Label]) -> String {
    if labels.is_empty() {
        "; this tree has no backup yet".to_string()
    } else {
        let names: Vec<&str> = labels.iter().map(|l| l.as_str()).collect();
        format!("; the backups here are: {}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_carry_the_root() {
        let root = Path::new("/srv/tmws");
        assert_eq!(
            resume(Scenario::Complete, root),
            "cargo xtask rollback --scenario complete --resume --root /srv/tmws --yes"
        );
        let instead = database_instead(root);
        assert!(instead.message.contains("--scenario database --yes --root /srv/tmws"));
        assert_eq!(instead.next, abandon(Scenario::Migration, root), "the first way on");
        assert_eq!(labels_here(&[]), "; this tree has no backup yet");
        assert_eq!(
            xtask("list", Path::new("/srv/my tree's")),
            "cargo xtask list --root '/srv/my tree'\\''s'"
        );
        assert_eq!(quoted("a=b"), "a=b");
    }

    #[test]
    fn a_missing_commit_names_it_and_both_ways_on() {
        let advised = missing_commit("pre-phase4", "0123abcd", Path::new("/srv/tmws"));
        assert_eq!(advised.next, "git fetch origin");
        let advice = advised.message;
        assert!(advice.contains("commit 0123abcd is not in this repository"), "{advice}");
        assert!(advice.contains("`git fetch origin 0123abcd`"), "{advice}");
        assert!(
            advice.contains("rollback --scenario database --yes --root /srv/tmws`"),
            "{advice}"
        );
    }
}
