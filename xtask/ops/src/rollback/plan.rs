//! The decision matrix as ordered steps. A plan is computed once, printed
//! (that is the dry run), journaled, and then executed exactly as printed.
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::evidence::DatabaseCapture;
use xtask_adapters::{git, sqlite};
use xtask_base::exit::{refused, usage};
use xtask_model::{
    database,
    manifest::{Kind, Manifest},
    migrations::Graph,
    profile::Tree,
    scenario::Scenario,
};

/// One step of a rollback. Every step checks whether its effect already
/// holds, so running it again (on `--resume`) is safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    StopServices,
    Preserve {
        database: Option<DatabaseCapture>,
    },
    RestoreDatabase,
    /// The database copied into a folder of its own beside it, and
    /// downgraded there by alembic, which may write nowhere else; the copy
    /// checked (integrity, revision, schema). The live file is not touched.
    MigrateCopy {
        target: String,
        /// The copy's folder, relative to the root: beside the database, so
        /// that the swap is a rename on one file system.
        folder: String,
    },
    /// The failed files moved into the bundle, the checked copy renamed
    /// into their place.
    SwapMigrated {
        folder: String,
        target: String,
    },
    RestoreConfig,
    RestoreMigrations,
    RestoreFiles {
        paths: Vec<String>,
        /// Critical files that differ from the backup because the deploy's
        /// commits changed them: left as they are (`--all` restores them).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kept: Vec<String>,
    },
    GitBranch {
        branch: String,
        tag: String,
        commit: String,
        /// The repository lacks the backup's tag (a clone of the origin,
        /// which never received it: the tool never pushes), so the step
        /// makes it again at the manifest's commit first.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        recreate_tag: bool,
    },
    GitSoftReset {
        commit: String,
    },
    GitHardReset {
        commit: String,
        keep_ref: String,
    },
    GitRestorePaths {
        from: String,
        paths: Vec<String>,
    },
}

/// What the user asked for, beyond the scenario.
#[derive(Debug, Default, Clone)]
pub struct Choices {
    pub to: Option<String>,
    pub steps: Option<u32>,
    pub allow_data_loss: bool,
    pub paths: Vec<String>,
    /// files: also the critical files the deploy's commits changed.
    pub all: bool,
    pub commit: Option<String>,
    pub hard: bool,
    pub force: bool,
    pub from: Option<String>,
}

/// Checks flag combinations before anything else (exit 2 or 4).
pub fn check_choices(scenario: Scenario, c: &Choices) -> Result<()> {
    let git_flags = c.commit.is_some() || c.hard || c.from.is_some();
    if git_flags && scenario != Scenario::Git {
        return Err(usage("--commit, --hard and --from belong to --scenario git"));
    }
    if (c.to.is_some() || c.steps.is_some()) && scenario != Scenario::Migration {
        return Err(usage("--to and --steps belong to --scenario migration"));
    }
    if c.to.is_some() && c.steps.is_some() {
        return Err(usage("--to and --steps are alternatives: give one"));
    }
    if c.steps == Some(0) {
        return Err(usage("--steps must be at least 1"));
    }
    if !c.paths.is_empty() && !matches!(scenario, Scenario::Files | Scenario::Git) {
        return Err(usage("--paths belongs to --scenario files or git"));
    }
    if c.from.is_some() && c.paths.is_empty() {
        return Err(usage("--from needs --paths: which files to restore from that commit"));
    }
    if c.hard && !c.force {
        return Err(refused(
            "--hard discards commits and uncommitted changes: it needs --force as well",
        ));
    }
    if c.hard && c.commit.is_none() {
        return Err(usage("--hard needs --commit REV: the commit to reset to"));
    }
    if c.to.as_deref() == Some("base") && !c.allow_data_loss {
        return Err(refused(
            "downgrading to base drops every table and destroys all data: it needs --allow-data-loss",
        ));
    }
    for path in &c.paths {
        xtask_fs::files::check_relative(path).map_err(|e| usage(format!("--paths: {e:#}")))?;
    }
    Ok(())
}

/// Builds the ordered steps of a scenario for this tree and backup.
pub fn build(
    scenario: Scenario,
    tree: &Tree,
    manifest: &Manifest,
    c: &Choices,
    run: &str,
) -> Result<Vec<Step>> {
    let repo = git::open(&tree.root)?;
    let mut steps = Vec::new();
    match scenario {
        Scenario::Database => {
            steps.push(Step::StopServices);
            steps.push(Step::Preserve { database: Some(DatabaseCapture::Move) });
            steps.push(Step::RestoreDatabase);
        }
        Scenario::Migration => {
            let target = downgrade_target(tree, manifest, c)?;
            steps.push(Step::StopServices);
            steps.push(Step::Preserve { database: Some(DatabaseCapture::Move) });
            let folder = migration_folder(tree, run);
            steps.push(Step::MigrateCopy { target: target.clone(), folder: folder.clone() });
            steps.push(Step::SwapMigrated { folder, target });
        }
        Scenario::Files => {
            let paths = critical_paths(manifest, &c.paths)?;
            // Without --paths or --all, what the deploy's commits changed on
            // purpose stays; what changed beside them is restored.
            let (paths, kept) = match (&repo, c.paths.is_empty() && !c.all) {
                (Some(repo), true) => split_by_commits(tree, manifest, repo, paths),
                _ => (paths, Vec::new()),
            };
            steps.push(Step::Preserve { database: None });
            steps.push(Step::RestoreFiles { paths, kept });
        }
        Scenario::Complete => steps = complete(tree, manifest, repo.as_ref())?,
        Scenario::Git => {
            let Some(repo) = &repo else {
                return Err(usage(format!("{} is not a git repository", tree.root.display())));
            };
            steps = git(tree, manifest, c, run, repo)?;
        }
    }
    Ok(steps)
}

/// The complete row: everything, the code included when git has the tag.
fn complete(
    tree: &Tree,
    manifest: &Manifest,
    repo: Option<&git2::Repository>,
) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    steps.push(Step::StopServices);
    steps.push(Step::Preserve { database: Some(DatabaseCapture::Move) });
    if let Some(repo) = repo
        && let Some((commit, recreate_tag)) = backup_commit(tree, manifest, repo)?
    {
        // Every object the checkout needs is present before step 1.
        git::refuse_move(&git::plan_move(repo, &tree.fs, commit)?, true)?;
        steps.push(Step::GitBranch {
            branch: format!("rollback-{}", manifest.label),
            tag: manifest.label.to_string(),
            commit: commit.to_string(),
            recreate_tag,
        });
    }
    steps.push(Step::RestoreDatabase);
    steps.push(Step::RestoreConfig);
    steps.push(Step::RestoreMigrations);
    steps.push(Step::RestoreFiles { paths: critical_paths(manifest, &[])?, kept: Vec::new() });
    Ok(steps)
}

/// The git row: a branch at the tag, a reset to `--commit`, or `--paths`
/// restored from `--from`.
fn git(
    tree: &Tree,
    manifest: &Manifest,
    c: &Choices,
    run: &str,
    repo: &git2::Repository,
) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    steps.push(Step::Preserve { database: None });
    if let Some(from) = &c.from {
        let from = git::resolve(repo, from).map_err(|e| usage(format!("{e:#}")))?;
        git::plan_restore(repo, &tree.fs, from, &c.paths)?;
        steps.push(Step::GitRestorePaths { from: from.to_string(), paths: c.paths.clone() });
    } else if let Some(commit) = &c.commit {
        let commit = git::resolve(repo, commit).map_err(|e| usage(format!("{e:#}")))?.to_string();
        if c.hard {
            let oid = git2::Oid::from_str(&commit)?;
            git::refuse_move(&git::plan_reset(repo, &tree.fs, oid)?, true)?;
            let keep_ref = format!("refs/tmws-rollback/discarded-{run}");
            steps.push(Step::GitHardReset { commit, keep_ref });
        } else {
            steps.push(Step::GitSoftReset { commit });
        }
    } else {
        let Some((commit, recreate_tag)) = backup_commit(tree, manifest, repo)? else {
            return Err(usage(format!(
                "no git tag {}: pass --commit REV, or take backups with their tag",
                manifest.label
            )));
        };
        git::refuse_move(&git::plan_move(repo, &tree.fs, commit)?, false)?;
        check_database_fits(tree, repo, commit, c.force)?;
        steps.push(Step::GitBranch {
            branch: format!("rollback-{}", manifest.label),
            tag: manifest.label.to_string(),
            commit: commit.to_string(),
            recreate_tag,
        });
    }
    Ok(steps)
}

/// The commit the backup's branch starts at, and whether its tag must be
/// made again first: the tag's commit when this repository has the tag;
/// else the manifest's commit when the repository holds it and the backup
/// was tagged (a fresh clone of the origin has the history, never the
/// tool's tags); `None` when the backup records no commit. A commit the
/// repository lacks, or a `--no-tag` backup, is refused with what to do.
fn backup_commit(
    tree: &Tree,
    manifest: &Manifest,
    repo: &git2::Repository,
) -> Result<Option<(git2::Oid, bool)>> {
    if let Some(commit) = git::tag_commit(repo, &manifest.label) {
        return Ok(Some((commit, false)));
    }
    let Some(recorded) = &manifest.git_commit else { return Ok(None) };
    let label = manifest.label.as_str();
    match git2::Oid::from_str(recorded) {
        Ok(commit) if git::has_commit(repo, commit) => match manifest.git_tag {
            Some(_) => Ok(Some((commit, true))),
            None => Err(refused(xtask_model::advice::untagged_backup(label, recorded))),
        },
        _ => Err(refused(xtask_model::advice::missing_commit(label, recorded, &tree.root))),
    }
}

/// A git-only rollback that moves the code below the database's revision
/// leaves the database ahead of its migrations: say so before it starts, and
/// go on only with `--force`.
fn check_database_fits(
    tree: &Tree,
    repo: &git2::Repository,
    commit: git2::Oid,
    force: bool,
) -> Result<()> {
    let Ok(revisions) =
        sqlite::open_tree_database(tree).and_then(|c| sqlite::alembic_revisions(&c))
    else {
        return Ok(());
    };
    let defined = git::revisions_defined_at(repo, commit, &tree.profile.migrations)?;
    let missing: Vec<&String> = revisions.iter().filter(|r| !defined.contains(r)).collect();
    if missing.is_empty() || force {
        return Ok(());
    }
    Err(refused(format!(
        "the database is at revision {} which commit {} does not define: after this git rollback the database would be ahead of the code. Use --scenario complete (it restores the database too), or pass --force to move only the code",
        missing.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" "),
        &commit.to_string()[..12]
    )))
}

/// Checks, before step 1, that every path the plan will write is one the
/// file-access layer accepts (no link on the way, a regular file or nothing
/// where a file goes, a folder where a folder goes), that the database's
/// files are regular files, and that every backup file a step restores is
/// there to read (a backup damaged since it was verified, or never verified
/// with `--skip-verify`): a plan that would stop half-way does not start.
pub fn check_paths(tree: &Tree, backup: &Path, steps: &[Step], manifest: &Manifest) -> Result<()> {
    let fs = &tree.fs;
    fs.expect_dir_or_nothing(&tree.forensics_dir())?;
    let sources = |kind: Kind| -> Result<()> {
        for entry in manifest.files_of(kind) {
            xtask_fs::files::check_relative(&entry.backup_path)?;
            fs.open_read(&backup.join(&entry.backup_path)).map_err(|err| {
                refused(format!(
                    "the backup's {} cannot be read ({err:#}): it is not restored, and nothing was changed",
                    entry.backup_path
                ))
            })?;
        }
        Ok(())
    };
    for step in steps {
        match step {
            Step::RestoreDatabase => {
                database::check_files(fs, &tree.database())?;
                sources(Kind::Database)?;
            }
            Step::Preserve { database: Some(_) } => database::check_files(fs, &tree.database())?,
            Step::MigrateCopy { folder, .. } | Step::SwapMigrated { folder, .. } => {
                database::check_files(fs, &tree.database())?;
                fs.expect_dir_or_nothing(&tree.path(folder))?;
            }
            Step::RestoreConfig | Step::RestoreFiles { .. } => {
                let kind = if *step == Step::RestoreConfig { Kind::Config } else { Kind::Critical };
                let paths = manifest
                    .files_of(kind)
                    .map(|f| f.source_path.as_str())
                    .chain(manifest.absent_of(kind));
                for path in paths {
                    xtask_fs::files::check_relative(path)?;
                    fs.expect_file_or_nothing(&tree.path(path))?;
                }
                sources(kind)?;
            }
            Step::RestoreMigrations => {
                fs.expect_dir_or_nothing(&tree.migrations())?;
                refuse_mount_point(tree, &tree.migrations())?;
                sources(Kind::Migration)?;
            }
            Step::GitBranch { branch, commit, .. } => {
                let repo = git::open(&tree.root)?.context("the root is not a git repository")?;
                git::refuse_unready(&repo, Some((branch, git2::Oid::from_str(commit)?)))?;
            }
            Step::GitSoftReset { .. }
            | Step::GitHardReset { .. }
            | Step::GitRestorePaths { .. } => {
                let repo = git::open(&tree.root)?.context("the root is not a git repository")?;
                git::refuse_unready(&repo, None)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A folder the plan swaps whole must not be a mount point: it cannot be
/// renamed (a mount point beneath it, like `forensics/` or `data/`, is
/// fine: what moves across is copied).
fn refuse_mount_point(tree: &Tree, folder: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let entry = xtask_fs::outside::entry;
    let (Some(here), Some(Some(above))) = (entry(folder), folder.parent().map(entry)) else {
        return Ok(());
    };
    if here.dev() != above.dev() {
        return Err(refused(format!(
            "{} is a mount point: a migration restore swaps that folder whole, which a mount point cannot be. Mount its parent instead, or restore the files by hand (docs/backup-format.md). Nothing was changed",
            tree.profile.migrations
        )));
    }
    Ok(())
}

/// The revision a migration rollback goes down to, resolved now so that a
/// resumed run goes to the same place (a relative `-1` would not).
fn downgrade_target(tree: &Tree, manifest: &Manifest, c: &Choices) -> Result<String> {
    let graph =
        tree.graph().map_err(|e| usage(format!("the tree's migrations cannot be read: {e:#}")))?;
    if let Some(to) = &c.to {
        if to != "base" && !graph.contains(to) {
            let known: Vec<&String> = graph.revisions.keys().collect();
            return Err(usage(format!(
                "--to {to}: no revision file of {} defines it (known: {})",
                tree.profile.migrations,
                known.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        return below_backup(&graph, manifest, to, &format!("--to {to}"), c.allow_data_loss)
            .map(|()| to.clone());
    }
    let Some(steps) = c.steps else {
        let revision = manifest
            .revision()
            .map(String::from)
            .ok_or_else(|| usage("the backup's database has several revisions: pass --to REV"))?;
        if !graph.contains(&revision) {
            return Err(usage(format!(
                "the backup's revision {revision} is not defined by {}: restore the migrations first (--scenario complete)",
                tree.profile.migrations
            )));
        }
        return Ok(revision);
    };
    let conn = sqlite::open_tree_database(tree)?;
    let current = sqlite::alembic_revisions(&conn)?;
    let [revision] = <[String; 1]>::try_from(current).map_err(|_| {
        usage("the database has several revisions: pass --to REV instead of --steps")
    })?;
    let target = steps_down(&graph, revision, steps, c.allow_data_loss)
        .with_context(|| format!("in the revisions of {}", tree.profile.migrations))?;
    below_backup(&graph, manifest, &target, &format!("--steps {steps}"), c.allow_data_loss)?;
    Ok(target)
}

/// A downgrade to a revision below the backup's drops what the backup's
/// schema holds (the tables and columns of the revisions in between): it
/// needs `--allow-data-loss`, as base does.
fn below_backup(
    graph: &Graph,
    manifest: &Manifest,
    target: &str,
    flag: &str,
    allow_data_loss: bool,
) -> Result<()> {
    let Some(backup) = manifest.revision() else { return Ok(()) };
    let mut below = Vec::new();
    let mut next = vec![backup.to_string()];
    while let Some(revision) = next.pop() {
        for down in graph.revisions.get(&revision).map(|r| r.down.clone()).unwrap_or_default() {
            if !below.contains(&down) {
                below.push(down.clone());
                next.push(down);
            }
        }
    }
    let is_below = target == "base" || below.iter().any(|r| r == target);
    if is_below && !allow_data_loss {
        return Err(refused(format!(
            "{flag} goes down to {target}, below the backup's revision {backup}: the downgrades between them drop tables or columns the backup's schema holds, with their data. Pass --allow-data-loss to go there anyway, or leave out {} to stop at the backup's revision",
            flag.split(' ').next().unwrap_or(flag)
        )));
    }
    Ok(())
}

/// The revision `steps` below `revision`, following each one's single
/// parent; `base` (below the first) only with `allow_data_loss`.
fn steps_down(
    graph: &Graph,
    mut revision: String,
    steps: u32,
    allow_data_loss: bool,
) -> Result<String> {
    for _ in 0..steps {
        let Some(node) = graph.revisions.get(&revision) else {
            bail!("revision {revision} is not defined");
        };
        match node.down.as_slice() {
            [] if !allow_data_loss => {
                return Err(refused(format!(
                    "--steps {steps} goes below the first revision to base, which drops every table and destroys all data: it needs --allow-data-loss"
                )));
            }
            [] => return Ok("base".into()),
            [one] => revision = one.clone(),
            _ => {
                return Err(usage(format!(
                    "{revision} is a merge of several revisions: pass --to REV"
                )));
            }
        }
    }
    Ok(revision)
}

/// Splits the critical files into those to restore and those the deploy's
/// commits changed (since the backup's commit; the working file is the
/// committed one), with the commit that did, for the plan.
fn split_by_commits(
    tree: &Tree,
    manifest: &Manifest,
    repo: &git2::Repository,
    paths: Vec<String>,
) -> (Vec<String>, Vec<String>) {
    let since = manifest.git_commit.as_deref();
    let (mut restore, mut kept) = (Vec::new(), Vec::new());
    for path in paths {
        let backed_up = manifest.files_of(Kind::Critical).find(|f| f.source_path == path);
        let now = tree.fs.sha256(&tree.path(&path)).ok().map(|(sha, _)| sha);
        let differs = match (backed_up, &now) {
            (Some(entry), Some(sha)) => entry.sha256 != *sha,
            (Some(_), None) => true,
            // Absent at backup time: it differs when it exists now.
            (None, now) => now.is_some(),
        };
        match git::committed_in(repo, &path, since).filter(|_| differs && now.is_some()) {
            Some(commit) => kept.push(format!("{path} ({commit})")),
            None => restore.push(path),
        }
    }
    (restore, kept)
}

/// The critical files to restore: all, or those named by `--paths`.
fn critical_paths(manifest: &Manifest, wanted: &[String]) -> Result<Vec<String>> {
    let all: Vec<String> = manifest
        .files_of(Kind::Critical)
        .map(|f| f.source_path.clone())
        .chain(manifest.absent_of(Kind::Critical).map(String::from))
        .collect();
    if wanted.is_empty() {
        return Ok(all);
    }
    for path in wanted {
        if !all.contains(path) {
            return Err(usage(format!(
                "{path} is not a critical file of the backup; it has: {}",
                all.join(", ")
            )));
        }
    }
    Ok(wanted.to_vec())
}

/// The folder a migration rollback's copy of the database lives in while
/// alembic works on it: beside the database (one file system, so the swap
/// is a rename), hidden, named after the run.
pub fn migration_folder(tree: &Tree, run: &str) -> String {
    let db = Path::new(&tree.profile.database);
    let name = db.file_name().unwrap_or_default().to_string_lossy();
    let folder = db.with_file_name(format!(".{name}.migration-{run}"));
    folder.display().to_string()
}

pub fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use xtask_base::exit::{Kind as ExitKind, kind_of};
    use xtask_model::migrations::Revision;

    /// a <- b <- (c, d) <- m: two branches merged.
    fn graph() -> Graph {
        let mut graph = Graph::default();
        for (id, down) in
            [("a", &[][..]), ("b", &["a"]), ("c", &["b"]), ("d", &["b"]), ("m", &["c", "d"])]
        {
            let down = down.iter().map(|d| d.to_string()).collect();
            graph.revisions.insert(id.into(), Revision { id: id.into(), down, file: id.into() });
        }
        graph
    }

    #[test]
    fn steps_follow_single_parents_and_stop_at_a_merge_or_base() {
        let g = graph();
        assert_eq!(steps_down(&g, "c".into(), 1, false).unwrap(), "b");
        assert_eq!(steps_down(&g, "c".into(), 2, false).unwrap(), "a");
        let base = steps_down(&g, "c".into(), 3, false).unwrap_err();
        assert_eq!(kind_of(&base), ExitKind::Unsafe, "{base:#}");
        assert_eq!(steps_down(&g, "c".into(), 3, true).unwrap(), "base");
        let merge = steps_down(&g, "m".into(), 1, false).unwrap_err();
        assert!(format!("{merge:#}").contains("merge of several revisions"), "{merge:#}");
        assert!(steps_down(&g, "x".into(), 1, false).is_err());
    }

    #[test]
    fn flags_that_belong_to_another_scenario_are_refused() {
        let code = |scenario, c: Choices| check_choices(scenario, &c).map_err(|e| kind_of(&e));
        assert_eq!(code(Scenario::Migration, Choices::default()), Ok(()));
        let hard = Choices { hard: true, commit: Some("HEAD".into()), ..Default::default() };
        assert_eq!(
            code(Scenario::Git, hard.clone()),
            Err(ExitKind::Unsafe),
            "--hard without --force"
        );
        assert_eq!(code(Scenario::Git, Choices { force: true, ..hard }), Ok(()));
        let to = Choices { to: Some("x".into()), ..Default::default() };
        assert_eq!(code(Scenario::Database, to.clone()), Err(ExitKind::Usage));
        let both = Choices { steps: Some(1), ..to };
        assert_eq!(code(Scenario::Migration, both), Err(ExitKind::Usage));
        let zero = Choices { steps: Some(0), ..Default::default() };
        assert_eq!(code(Scenario::Migration, zero), Err(ExitKind::Usage));
        let base = Choices { to: Some("base".into()), ..Default::default() };
        assert_eq!(code(Scenario::Migration, base.clone()), Err(ExitKind::Unsafe));
        let allowed = Choices { allow_data_loss: true, ..base };
        assert_eq!(code(Scenario::Migration, allowed), Ok(()));
        let from = Choices { from: Some("HEAD".into()), ..Default::default() };
        assert_eq!(code(Scenario::Git, from), Err(ExitKind::Usage), "--from without --paths");
        let climbs = Choices { paths: vec!["../x".into()], ..Default::default() };
        assert_eq!(code(Scenario::Files, climbs), Err(ExitKind::Usage));
        let paths = Choices { paths: vec!["src/x.py".into()], ..Default::default() };
        assert_eq!(code(Scenario::Database, paths), Err(ExitKind::Usage));
    }
}
