//! How a plan reads: each step as one line for a person (the dry run and
//! the confirmation show it) and as what it touches (the JSON plan).
use std::path::Path;

use schemars::JsonSchema;
use serde::Serialize;

use super::plan::{Step, rel};
use crate::evidence::DatabaseCapture;
use xtask_adapters::services;
use xtask_model::{
    database::SIDECARS,
    manifest::{JournalMode, Kind, Manifest},
    profile::Tree,
};

/// What one step touches, in a JSON plan.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct PlanTouches {
    /// Paths of the tree the step writes.
    pub paths: Vec<String>,
    /// Alembic revisions or git commits it goes to.
    pub revisions: Vec<String>,
    /// What it keeps in the forensics bundle first.
    pub preserves: Vec<String>,
}

/// What kind of step a step is: its id in the JSON document, and its
/// name in tables and journals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StepId {
    StopServices,
    Preserve,
    RestoreDatabase,
    MigrateCopy,
    SwapMigrated,
    RestoreConfig,
    RestoreMigrations,
    RestoreFiles,
    GitBranch,
    GitSoftReset,
    GitHardReset,
    GitRestorePaths,
    RestoreExternal,
}

impl StepId {
    pub fn name(self) -> &'static str {
        match self {
            StepId::StopServices => "stop-services",
            StepId::Preserve => "preserve",
            StepId::RestoreDatabase => "restore-database",
            StepId::MigrateCopy => "migrate-copy",
            StepId::SwapMigrated => "swap-migrated",
            StepId::RestoreConfig => "restore-config",
            StepId::RestoreMigrations => "restore-migrations",
            StepId::RestoreFiles => "restore-files",
            StepId::GitBranch => "git-branch",
            StepId::GitSoftReset => "git-soft-reset",
            StepId::GitHardReset => "git-hard-reset",
            StepId::GitRestorePaths => "git-restore-paths",
            StepId::RestoreExternal => "restore-external",
        }
    }
}

impl Step {
    /// One line for the plan, with every detail a person checks before saying yes.
    pub fn describe(
        &self,
        tree: &Tree,
        backup: &Path,
        manifest: &Manifest,
        bundle: &Path,
    ) -> String {
        let from = |backup_path: &str| rel(&tree.root, &backup.join(backup_path));
        match self {
            Step::StopServices => stop_services(tree),
            Step::Preserve { database } => preserve(tree, *database, bundle),
            Step::RestoreDatabase => match manifest.database() {
                Some(db) => format!(
                    "restore {} from {} (sha256 {}): staged beside it, fsynced, hash-checked (integrity-checked unless verified); then the failed files go to the bundle and the copy is renamed into place{}",
                    tree.profile.database,
                    from(&db.backup_path),
                    short(&db.sha256),
                    if manifest.journal_mode == JournalMode::Wal {
                        "; back to WAL mode"
                    } else {
                        ""
                    }
                ),
                // Only with --skip-verify: the step itself then fails and says so.
                None => format!(
                    "restore {}: the backup's manifest lists no database",
                    tree.profile.database
                ),
            },
            Step::MigrateCopy { target, up, folder } => format!(
                "{verb} a copy of {db} to {target}: its files are copied into {copy}/, and alembic, with {url} naming the copy and allowed to write only there, must open that copy, then runs {verb} {target}; the copy must pass integrity_check and hold {target}{schema}. {db} itself is not touched",
                verb = if *up { "upgrade" } else { "downgrade" },
                db = tree.profile.database,
                copy = folder,
                url = if tree.profile.database_url_env.is_empty() {
                    "no URL variable"
                } else {
                    &tree.profile.database_url_env
                },
                schema = if manifest.revision() == Some(target.as_str()) {
                    " and the backup's schema"
                } else {
                    ""
                },
            ),
            Step::SwapMigrated { .. } => format!(
                "put the migrated copy in place: the failed {} with its -wal/-shm goes to the bundle byte for byte, and the checked copy is renamed over it",
                tree.profile.database
            ),
            Step::RestoreConfig => {
                let files: Vec<String> = manifest
                    .files_of(Kind::Config)
                    .map(|f| format!("{} ({})", f.source_path, short(&f.sha256)))
                    .collect();
                format!("restore config from {}: {}", from(Kind::Config.folder()), files.join(", "))
            }
            Step::RestoreMigrations => restore_migrations(tree, manifest),
            Step::RestoreFiles { paths, kept } => restore_files(manifest, paths, kept, &from),
            Step::GitBranch { branch, tag, commit, recreate_tag: false } => {
                format!(
                    "git: create branch {branch} at tag {tag} ({}) and check it out",
                    short(commit)
                )
            }
            Step::GitBranch { branch, tag, commit, recreate_tag: true } => {
                format!(
                    "git: make tag {tag} again at the manifest's commit {} (this repository has that commit but not the tag: a clone never gets it, the tool never pushes), then create branch {branch} at it and check it out",
                    short(commit)
                )
            }
            Step::GitSoftReset { commit } => {
                format!("git: reset --soft to {} (changes stay staged)", short(commit))
            }
            Step::GitHardReset { commit, keep_ref } => {
                format!("git: keep HEAD as {keep_ref}, then reset --hard to {}", short(commit))
            }
            Step::GitRestorePaths { from, paths } => {
                format!("git: restore {} from {}", paths.join(" "), short(from))
            }
            Step::RestoreExternal { paths } => restore_external(manifest, paths, &from),
        }
    }

    /// What a step touches, for the structured plan: the paths it writes,
    /// the revisions or commits it goes to, what it preserves first.
    pub fn touches(&self, tree: &Tree, manifest: &Manifest) -> PlanTouches {
        let p = &tree.profile;
        let sidecars = |db: &str| {
            let files = std::iter::once(String::new()).chain(SIDECARS.map(String::from));
            files.map(|suffix| format!("{db}{suffix}")).collect::<Vec<_>>()
        };
        let mut t = PlanTouches::default();
        match self {
            Step::StopServices => {}
            Step::Preserve { database } => {
                let named = p.config_files.iter().chain(&p.critical_files);
                t.preserves.extend(named.chain(&p.external_files).cloned());
                t.preserves.extend(p.migrations.iter().map(String::from));
                if database.is_some() {
                    t.preserves.extend(sidecars(&p.database));
                }
            }
            Step::RestoreDatabase => {
                t.paths = sidecars(&p.database);
                t.revisions = manifest.database_revision.clone();
                t.preserves = sidecars(&p.database);
            }
            Step::MigrateCopy { target, folder, .. } => {
                t.paths.push(folder.clone());
                t.revisions.push(target.clone());
            }
            Step::SwapMigrated { .. } => {
                t.paths = sidecars(&p.database);
                t.preserves = sidecars(&p.database);
            }
            Step::RestoreConfig => {
                t.paths = manifest.files_of(Kind::Config).map(|f| f.source_path.clone()).collect()
            }
            Step::RestoreMigrations => {
                t.paths.extend(p.migrations.iter().map(String::from));
                t.preserves.extend(p.migrations.iter().map(String::from));
            }
            Step::RestoreFiles { paths, .. } => t.paths = paths.clone(),
            Step::GitBranch { commit, .. }
            | Step::GitSoftReset { commit }
            | Step::GitHardReset { commit, .. } => t.revisions.push(commit.clone()),
            Step::GitRestorePaths { from, paths } => {
                t.paths = paths.clone();
                t.revisions.push(from.clone());
            }
            Step::RestoreExternal { paths } => {
                t.paths = paths.clone();
                t.preserves = paths.clone();
            }
        }
        t
    }

    pub fn id(&self) -> StepId {
        match self {
            Step::StopServices => StepId::StopServices,
            Step::Preserve { .. } => StepId::Preserve,
            Step::RestoreDatabase => StepId::RestoreDatabase,
            Step::MigrateCopy { .. } => StepId::MigrateCopy,
            Step::SwapMigrated { .. } => StepId::SwapMigrated,
            Step::RestoreConfig => StepId::RestoreConfig,
            Step::RestoreMigrations => StepId::RestoreMigrations,
            Step::RestoreFiles { .. } => StepId::RestoreFiles,
            Step::GitBranch { .. } => StepId::GitBranch,
            Step::GitSoftReset { .. } => StepId::GitSoftReset,
            Step::GitHardReset { .. } => StepId::GitHardReset,
            Step::GitRestorePaths { .. } => StepId::GitRestorePaths,
            Step::RestoreExternal { .. } => StepId::RestoreExternal,
        }
    }

    /// A short name for tables and journals.
    pub fn name(&self) -> &'static str {
        self.id().name()
    }
}

fn stop_services(tree: &Tree) -> String {
    let found = services::find(tree);
    if found.is_empty() {
        "stop the service: no process of this root is running now".into()
    } else {
        let list: Vec<String> =
            found.iter().map(|p| format!("pid {} ({})", p.pid, p.reason)).collect();
        format!("stop the service: SIGTERM then SIGKILL to {}", list.join(", "))
    }
}

fn preserve(tree: &Tree, database: Option<DatabaseCapture>, bundle: &Path) -> String {
    let db = match database {
        Some(DatabaseCapture::Move) => format!(
            "{} with its -wal/-shm is moved in byte for byte once its replacement is ready",
            tree.profile.database
        ),
        Some(DatabaseCapture::Copy) => format!(
            "{} with its -wal/-shm copied byte for byte before anything opens it",
            tree.profile.database
        ),
        None => "no database (it is not overwritten)".into(),
    };
    format!(
        "preserve the failed state in {}: {db}, migrations, config and critical files{}, diffs, alembic output, log",
        rel(&tree.root, bundle),
        if tree.profile.external_files.is_empty() { "" } else { ", files outside the tree" }
    )
}

fn restore_files(
    manifest: &Manifest,
    paths: &[String],
    kept: &[super::plan::Kept],
    from: &dyn Fn(&str) -> String,
) -> String {
    let files: Vec<String> = manifest
        .files_of(Kind::Critical)
        .filter(|f| paths.contains(&f.source_path))
        .map(|f| format!("{} ({})", f.source_path, short(&f.sha256)))
        .collect();
    let absent: Vec<&str> =
        manifest.absent_of(Kind::Critical).filter(|p| paths.iter().any(|q| q == p)).collect();
    let mut line = format!(
        "restore critical files from {}: {}",
        from(Kind::Critical.folder()),
        files.join(", ")
    );
    if !absent.is_empty() {
        line.push_str(&format!(
            "; move into the bundle what did not exist at backup time: {}",
            absent.join(", ")
        ));
    }
    if !kept.is_empty() {
        line.push_str(&format!(
            "; keep as the deploy's commits left them (--all restores them too): {}",
            kept.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        ));
    }
    line
}

fn restore_external(
    manifest: &Manifest,
    paths: &[String],
    from: &dyn Fn(&str) -> String,
) -> String {
    let files: Vec<String> = manifest
        .files_of(Kind::External)
        .filter(|f| paths.contains(&f.source_path))
        .map(|f| format!("{} ({})", f.source_path, short(&f.sha256)))
        .collect();
    format!(
        "restore the files outside the tree (--external) from {}: {}; each current file is kept in the bundle first, and the copy is staged beside it (through no link) and renamed into place",
        from(Kind::External.folder()),
        files.join(", ")
    )
}

/// The first 12 characters of a hash or commit id.
fn short(sha: &str) -> String {
    sha.chars().take(12).collect()
}

fn restore_migrations(tree: &Tree, manifest: &Manifest) -> String {
    let (folders, count) = (&tree.profile.migrations, manifest.count(Kind::Migration));
    match folders.several() {
        true => format!(
            "swap each of {folders} for the backup's revision files of that folder, {count} in all (each staged beside its folder; each old folder goes to the bundle)"
        ),
        false => format!(
            "swap {folders} for the backup's {count} revision files (staged beside it; the old folder goes to the bundle)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One name per step everywhere: the journal's tag, the table's name
    /// and the JSON document's id.
    #[test]
    fn a_step_has_one_name() {
        let text = || String::from("x");
        let steps = [
            Step::StopServices,
            Step::Preserve { database: None },
            Step::RestoreDatabase,
            Step::MigrateCopy { target: text(), up: false, folder: text() },
            Step::SwapMigrated { folder: text(), target: text() },
            Step::RestoreConfig,
            Step::RestoreMigrations,
            Step::RestoreFiles { paths: Vec::new(), kept: Vec::new() },
            Step::GitBranch { branch: text(), tag: text(), commit: text(), recreate_tag: false },
            Step::GitSoftReset { commit: text() },
            Step::GitHardReset { commit: text(), keep_ref: text() },
            Step::GitRestorePaths { from: text(), paths: Vec::new() },
            Step::RestoreExternal { paths: Vec::new() },
        ];
        for step in steps {
            let tag = serde_json::to_value(&step).unwrap()["step"].clone();
            assert_eq!(tag, step.name(), "{step:?}");
            assert_eq!(serde_json::to_value(step.id()).unwrap(), step.name(), "{step:?}");
        }
    }
}
