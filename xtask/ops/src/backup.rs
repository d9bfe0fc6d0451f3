//! `cargo xtask backup`: the runbook's Appendix A backup, taken through
//! SQLite, hashed, described by a manifest, built aside and renamed into place.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Component, Path, PathBuf},
};

use anyhow::{Context, Result};
use xshell::Shell;

use xtask_adapters::{git, sqlite};
use xtask_base::exit::{refused, usage};
use xtask_fs::{files, sys::Rename};
use xtask_model::{
    database,
    label::Label,
    lock::Lock,
    manifest::{
        Absent, FORMAT, FileEntry, Kind, MANIFEST_FILE, Manifest, SUMS_FILE, TAG_MANIFEST_FIELD,
        WorktreeChange,
    },
    migrations::Graph,
    profile::Tree,
};

pub struct BackupOptions {
    pub label: Label,
    pub dry_run: bool,
    pub tag: bool,
}

impl BackupOptions {
    pub fn new(label: Label) -> BackupOptions {
        BackupOptions { label, dry_run: false, tag: true }
    }
}

/// One action of a backup's plan, as a dry run shows it.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct PlanItem {
    pub action: Action,
    /// The file of the tree it reads (empty when it reads none).
    pub source: String,
    /// What it writes: a path in the backup, or the tag and its commit.
    pub target: String,
}

/// What an action of a backup's plan does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// The database, through SQLite's online backup API.
    SqliteOnlineBackup,
    Copy,
    /// The manifest or SHA256SUMS.
    Write,
    GitTag,
}

/// A file to back up: where it is in the tree and where it goes in the backup.
struct Planned {
    kind: Kind,
    source: String,
    backup: String,
}

/// Takes the backup (or, with `dry_run`, only plans it) and returns its
/// manifest and its plan.
pub fn take(
    _sh: &Shell,
    tree: &Tree,
    options: &BackupOptions,
) -> Result<(Manifest, Vec<PlanItem>)> {
    let target = tree.backup(&options.label);
    if tree.fs.kind(&target).ok().flatten().is_some() || xtask_fs::outside::exists(&target) {
        return Err(usage(format!(
            "backup {} already exists: a backup is never overwritten; choose another --label",
            target.display()
        )));
    }
    let (plan, absent) = plan(tree)?;
    let repo = git::open(&tree.root)?;
    let (commit, branch) = match &repo {
        Some(repo) => git::head_checked(repo)?,
        None => (None, None),
    };
    if options.tag
        && let (Some(repo), Some(head)) = (&repo, &commit)
        && let Some(existing) = git::tag_commit(repo, &options.label)
        && existing.to_string() != *head
    {
        return Err(usage(format!(
            "git tag {} already points at {existing}, not at HEAD {head}: choose another --label or pass --no-tag",
            options.label
        )));
    }
    let items = plan_items(tree, &plan, options, commit.as_deref());
    if options.dry_run {
        return Ok((empty_manifest(tree, options, commit, branch)?, items));
    }

    let backups = tree.backups();
    if tree.fs.kind(&backups)? == Some(xtask_fs::sys::FileType::RegularFile) {
        return Err(usage(format!(
            "{} is not a folder: cannot write backups there",
            backups.display()
        )));
    }
    tree.fs.expect_dir_or_nothing(&backups)?;
    // The same lock as a rollback: never a backup of a tree being rolled back.
    let _lock = Lock::acquire(tree)?;
    tree.fs.create_dir_all(&backups)?;
    // Built beside its final place and renamed: a half-written backup is never
    // visible under the label.
    let stage = backups.join(format!(".{}.partial-{}", options.label, std::process::id()));
    tree.fs.create_dir(&stage, 0o755).with_context(|| format!("create {}", stage.display()))?;
    let tag = (options.tag && commit.is_some()).then(|| options.label.to_string());
    let changes = Changes { absent, worktree: worktree_changes(tree, repo.as_ref())? };
    let result = build(tree, &plan, changes, &stage, options, [commit.clone(), branch, tag]);
    let (manifest, manifest_sha) = match result {
        Ok(built) => built,
        Err(err) => return Err(tree.fs.discard(&stage, err)),
    };
    tree.fs
        .rename(&stage, &target, Rename::NoReplace)
        .with_context(|| format!("move the backup into {}", target.display()))?;
    if options.tag
        && let Some(repo) = &repo
    {
        // The manifest's hash in the tag: a manifest rewritten together with
        // SHA256SUMS still differs from what the tag recorded.
        let message = format!(
            "{} backup {} ({})\n\n{TAG_MANIFEST_FIELD} {manifest_sha}\n",
            tree.profile.service, options.label, manifest.created
        );
        git::tag_head(repo, &options.label, &message)?;
    }
    if let Some(repo) = &repo {
        git::exclude_tool_dirs(repo, &tree.fs)?;
    }
    Ok((manifest, items))
}

/// What goes where, checked before anything is written, and the critical
/// files that do not exist (yet): recorded as absent, not refused, since a
/// deploy may add them.
fn plan(tree: &Tree) -> Result<(Vec<Planned>, Vec<Absent>)> {
    let mut absent = Vec::new();
    let profile = &tree.profile;
    let db = tree.database();
    let named_db = || tree.named("database", &profile.database);
    if !tree.fs.expect_file_or_nothing(&db)? {
        return Err(usage(format!("{}: the database is missing", named_db())));
    }
    if !sqlite::has_sqlite_header(tree.fs.open_read(&db)?) {
        return Err(usage(format!("{}: it is not an SQLite database", named_db())));
    }
    // Its sidecars are part of it: never a link, and never a hot journal,
    // which the copy through SQLite would roll back in the live file.
    database::check_files(&tree.fs, &db)?;
    if database::hot_journal(&tree.fs, &db) {
        return Err(database::hot_journal_refusal(&profile.database));
    }
    check_revision_known(tree)?;
    let db_name = Path::new(&profile.database).file_name().unwrap_or_default().to_string_lossy();
    let mut plan = vec![Planned {
        kind: Kind::Database,
        source: profile.database.clone(),
        backup: format!("{}/{db_name}.backup", Kind::Database.folder()),
    }];
    for file in tree.revision_files()? {
        let source = file.strip_prefix(&tree.root).unwrap_or(&file).to_string_lossy().into_owned();
        let backup =
            format!("{}/{}", Kind::Migration.folder(), profile.migrations.kept_as(&source));
        plan.push(Planned { kind: Kind::Migration, source, backup });
    }
    let mut seen = BTreeMap::new();
    let groups = [
        (Kind::Config, "config_files", &profile.config_files),
        (Kind::Critical, "critical_files", &profile.critical_files),
    ];
    for (kind, key, files) in groups {
        for (i, source) in files.iter().enumerate() {
            let key = format!("{key}[{i}]");
            let path = tree.path(source);
            // A link out of the root (a secret elsewhere) is refused here.
            if tree.fs.kind(&path)?.is_some() {
                tree.fs.open_read(&path)?;
            }
            if kind == Kind::Critical && tree.fs.kind(&path)?.is_none() {
                absent.push(Absent { kind, source_path: source.clone() });
                continue;
            }
            if !tree.fs.is_file(&path) {
                let what = if kind == Kind::Critical { "critical file" } else { "config file" };
                let how =
                    if tree.fs.exists(&path) { "is not a regular file" } else { "is missing" };
                return Err(usage(format!("{}: the {what} {how}", tree.named(&key, source))));
            }
            let backup = format!("{}/{}", kind.folder(), in_folder(kind, source));
            if let Some(other) = seen.insert(backup.clone(), key.clone()) {
                return Err(usage(format!(
                    "{other} and {} would both be backed up as {backup}: name one of them only",
                    tree.named(&key, source)
                )));
            }
            plan.push(Planned { kind, source: source.clone(), backup });
        }
    }
    for (i, source) in profile.external_files.iter().enumerate() {
        // Missing, not a regular file, or a link: refused before anything
        // is written.
        crate::external::open_for_backup(tree, &format!("external_files[{i}]"), source)?;
        let backup = crate::external::backup_path(source);
        plan.push(Planned { kind: Kind::External, source: source.clone(), backup });
    }
    Ok((plan, absent))
}

/// Where a file of `kind` goes inside its folder of the backup: a config
/// file under its path relative to the root (two `alembic.ini` in two
/// folders never collide), a critical file under its name, as the
/// runbook's Appendix A lays them out.
fn in_folder(kind: Kind, source: &str) -> String {
    let path = Path::new(source);
    let kept: PathBuf = match kind {
        Kind::Config => path.components().filter(|c| *c != Component::CurDir).collect(),
        _ => path.file_name().map(PathBuf::from).unwrap_or_default(),
    };
    kept.to_string_lossy().into_owned()
}

/// Uncommitted changes to tracked files, with the sha256 of what is on disk.
fn worktree_changes(tree: &Tree, repo: Option<&git2::Repository>) -> Result<Vec<WorktreeChange>> {
    let Some(repo) = repo else { return Ok(Vec::new()) };
    Ok(git::modified_tracked(repo)?
        .into_iter()
        .map(|path| {
            let sha256 = tree.fs.sha256(&tree.path(&path)).ok().map(|(s, _)| s);
            WorktreeChange { sha256, path }
        })
        .collect())
}

/// A backup whose database is at a revision its migrations do not define
/// could never verify: refuse it before anything is written.
fn check_revision_known(tree: &Tree) -> Result<()> {
    let revisions = sqlite::open_tree_database(tree)
        .and_then(|conn| sqlite::alembic_revisions(&conn))
        .map_err(|err| {
            usage(format!(
                "{} has no readable alembic_version table: {err:#}",
                tree.profile.database
            ))
        })?;
    let graph = tree.graph().context("read the migrations' revision graph")?;
    let unknown: Vec<&String> = revisions.iter().filter(|r| !graph.contains(r)).collect();
    if !unknown.is_empty() {
        return Err(refused(format!(
            "the database is at revision {} which no file of {} defines: a backup of it could never be verified or restored with these migrations; nothing was written",
            unknown.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" "),
            tree.profile.migrations
        )));
    }
    Ok(())
}

/// What the manifest records beyond the files: absent files and uncommitted changes.
struct Changes {
    absent: Vec<Absent>,
    worktree: Vec<WorktreeChange>,
}

fn build(
    tree: &Tree,
    plan: &[Planned],
    Changes { absent, worktree }: Changes,
    stage: &Path,
    options: &BackupOptions,
    [git_commit, git_branch, git_tag]: [Option<String>; 3],
) -> Result<(Manifest, String)> {
    let (entries, facts) = copy_files(tree, plan, stage)?;
    let DatabaseFacts { revisions, tables, schema } = facts.context("no database in the plan")?;
    let journal_mode = sqlite::journal_mode_of(tree.fs.open_read(&tree.database())?)?;
    let migration_files: Vec<PathBuf> = entries
        .iter()
        .filter(|f| f.kind == Kind::Migration)
        .map(|f| stage.join(&f.backup_path))
        .collect();
    let graph = Graph::from_files(&tree.fs, &migration_files)
        .context("read the migrations' revision graph")?;

    let manifest = Manifest {
        format: FORMAT.into(),
        label: options.label.clone(),
        created: xtask_base::clock::now_rfc3339(),
        tool: format!("xtask {}", env!("CARGO_PKG_VERSION")),
        git_commit,
        git_branch,
        git_tag,
        database_revision: revisions,
        migration_heads: graph.heads(),
        migration_count: graph.len(),
        sqlite_version: sqlite::sqlite_version().into(),
        journal_mode,
        tables,
        schema,
        files: entries,
        absent,
        worktree,
    };
    let manifest_sha = write_manifest(tree, stage, &manifest)?;
    Ok((manifest, manifest_sha))
}

/// Writes the manifest and `SHA256SUMS` into the staged backup, read-only,
/// and makes every name in it durable; returns the manifest's sha256.
fn write_manifest(tree: &Tree, stage: &Path, manifest: &Manifest) -> Result<String> {
    let text = manifest.render();
    let manifest_sha = files::sha256_bytes(text.as_bytes());
    let manifest_path = stage.join(MANIFEST_FILE);
    files::write_atomic(&tree.fs, &manifest_path, text.as_bytes())?;
    let sums_path = stage.join(SUMS_FILE);
    files::write_atomic(&tree.fs, &sums_path, manifest.sums(&manifest_sha).as_bytes())?;
    for path in [&manifest_path, &sums_path] {
        tree.fs.set_mode(path, 0o444)?;
    }
    // Every folder of the backup, nested ones too (a config file keeps its
    // folders), holds its names durably.
    let folders = manifest.files.iter().flat_map(|f| Path::new(&f.backup_path).ancestors().skip(1));
    let folders: BTreeSet<&Path> = Kind::ALL
        .iter()
        .filter(|k| **k != Kind::External || manifest.count(Kind::External) > 0)
        .map(|k| Path::new(k.folder()))
        .chain(folders)
        .collect();
    for folder in folders.into_iter().filter(|f| !f.as_os_str().is_empty()) {
        files::fsync_parent(&stage.join(folder).join("x"))?;
    }
    files::fsync_parent(&manifest_path)?;
    Ok(manifest_sha)
}

/// What the manifest records of the database, read from the backup's copy.
struct DatabaseFacts {
    revisions: Vec<String>,
    tables: Vec<sqlite::TableCount>,
    schema: xtask_model::schema::Schema,
}

impl DatabaseFacts {
    fn of(copy: &Path, tree: &Tree) -> Result<DatabaseFacts> {
        let conn = sqlite::open_snapshot(copy)?;
        let revisions = sqlite::alembic_revisions(&conn).map_err(|err| {
            usage(format!(
                "{} has no readable alembic_version table: {err:#}",
                tree.profile.database
            ))
        })?;
        Ok(DatabaseFacts {
            revisions,
            tables: sqlite::table_counts(&conn)?,
            schema: sqlite::schema(&conn)?,
        })
    }
}

/// Copies every planned file into the staged backup (the database through
/// SQLite), read-only, and describes each; with the database's facts.
fn copy_files(
    tree: &Tree,
    plan: &[Planned],
    stage: &Path,
) -> Result<(Vec<FileEntry>, Option<DatabaseFacts>)> {
    // The runbook's folders, empty ones too; `external/` only when the
    // profile names files outside the tree.
    let external = plan.iter().any(|item| item.kind == Kind::External);
    for kind in Kind::ALL.into_iter().filter(|k| *k != Kind::External || external) {
        tree.fs.create_dir_all(&stage.join(kind.folder()))?;
    }
    let mut entries = Vec::new();
    let mut facts = None;
    for item in plan {
        let source = tree.path(&item.source);
        let dest = stage.join(&item.backup);
        if let Some(folder) = dest.parent() {
            tree.fs.create_dir_all(folder)?;
        }
        if item.kind == Kind::External {
            entries.push(copy_external(tree, item, &dest)?);
            continue;
        }
        let (sha256, size) = if item.kind == Kind::Database {
            sqlite::online_backup((&tree.fs, &source), (&tree.fs, &dest))?;
            // The fsync (disk), the hash (CPU) and the facts (a scan of every
            // table) of the copy overlap: all of it is in the page cache.
            let syncing = {
                let copy = tree.fs.open_read(&dest)?;
                std::thread::spawn(move || copy.sync_all())
            };
            let reading = {
                let (dest, tree) = (dest.clone(), tree.clone());
                std::thread::spawn(move || DatabaseFacts::of(&dest, &tree))
            };
            let hashed = tree.fs.sha256(&dest);
            let read = reading.join().map_err(|_| anyhow::anyhow!("the facts thread panicked"))?;
            facts = Some(read?);
            syncing.join().map_err(|_| anyhow::anyhow!("the fsync thread panicked"))??;
            hashed?
        } else {
            files::copy_new(&tree.fs, &source, &tree.fs, &dest)?
        };
        let mode = files::mode(&source)?;
        // The backup is read-only on disk too: nothing should ever write to it.
        tree.fs.set_mode(&dest, 0o444)?;
        entries.push(FileEntry {
            kind: item.kind,
            sha256,
            size,
            mode,
            backup_path: item.backup.clone(),
            source_path: item.source.clone(),
        });
    }
    Ok((entries, facts))
}

/// Copies a file outside the tree into the staged backup, read through
/// its folder's handle (no link on the way or at it). The copy keeps no
/// more than the file's own read bits: a settings file only its owner may
/// read stays so in the backup.
fn copy_external(tree: &Tree, item: &Planned, dest: &Path) -> Result<FileEntry> {
    let key = "external_files";
    let (input, mode) = crate::external::open_for_backup(tree, key, &item.source)?;
    let output = tree.fs.create_new(dest, 0o400)?;
    let (sha256, size) =
        files::copy_hashed(&input, &output).with_context(|| format!("copy {}", item.source))?;
    tree.fs.set_mode(dest, 0o444 & mode)?;
    Ok(FileEntry {
        kind: Kind::External,
        sha256,
        size,
        mode,
        backup_path: item.backup.clone(),
        source_path: item.source.clone(),
    })
}

fn plan_items(
    tree: &Tree,
    plan: &[Planned],
    options: &BackupOptions,
    commit: Option<&str>,
) -> Vec<PlanItem> {
    let mut items: Vec<PlanItem> = plan
        .iter()
        .map(|item| PlanItem {
            action: if item.kind == Kind::Database {
                Action::SqliteOnlineBackup
            } else {
                Action::Copy
            },
            source: item.source.clone(),
            target: item.backup.clone(),
        })
        .collect();
    for file in [MANIFEST_FILE, SUMS_FILE] {
        items.push(PlanItem { action: Action::Write, source: String::new(), target: file.into() });
    }
    let tag = match (options.tag, commit) {
        (true, Some(commit)) => Some(format!("{} at {commit}", options.label)),
        (true, None) => Some(format!("none: {} is not a git repository", tree.root.display())),
        (false, _) => None,
    };
    if let Some(tag) = tag {
        items.push(PlanItem { action: Action::GitTag, source: String::new(), target: tag });
    }
    items
}

/// What a dry run knows of the manifest before anything is copied: the
/// label, git, and the live database's journal mode (from its header).
fn empty_manifest(
    tree: &Tree,
    options: &BackupOptions,
    git_commit: Option<String>,
    git_branch: Option<String>,
) -> Result<Manifest> {
    Ok(Manifest {
        format: FORMAT.into(),
        label: options.label.clone(),
        created: String::new(),
        tool: format!("xtask {}", env!("CARGO_PKG_VERSION")),
        git_commit,
        git_branch,
        git_tag: None,
        database_revision: Vec::new(),
        migration_heads: Vec::new(),
        migration_count: 0,
        sqlite_version: sqlite::sqlite_version().into(),
        journal_mode: sqlite::journal_mode_of(tree.fs.open_read(&tree.database())?)?,
        tables: Vec::new(),
        schema: Default::default(),
        files: Vec::new(),
        absent: Vec::new(),
        worktree: Vec::new(),
    })
}
