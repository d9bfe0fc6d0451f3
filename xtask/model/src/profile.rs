//! Where things live in a TMWS tree: the runbook's layout, overridable per tree.
//!
//! The built-in defaults are the runbook's paths. A real checkout differs, so
//! an optional `tmws-rollback.toml` at the root may override any field.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::{
    label::Label,
    migrations::{Graph, revision_files},
};
use xtask_base::exit::{refused, usage};
use xtask_fs::{outside, root_dir::RootDir};

mod folders;
mod keys;

pub use folders::MigrationFolders;

/// The name of the optional per-tree profile file.
pub const PROFILE_FILE: &str = "tmws-rollback.toml";

/// Paths and commands of one TMWS tree, all relative to its root.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    /// The service's name, in reports, bundles and tags.
    pub service: String,
    /// The label of the pre-deploy backup: what a command works on when
    /// `--label` is not given, and what prune keeps while its tag exists.
    pub label: Label,
    /// The SQLite database the service and Alembic use.
    pub database: String,
    /// The environment variable the tree's `migrations/env.py` takes its
    /// database URL from ("" when it has none). With it, a rollback asks
    /// `alembic current` about the preserved database while it restores.
    pub database_url_env: String,
    pub alembic_ini: String,
    /// The folders of revision files (one, or several as alembic.ini's
    /// `version_locations` names them).
    pub migrations: MigrationFolders,
    /// Configuration files, backed up under `config/` at their path.
    pub config_files: Vec<String>,
    /// Files outside the tree, by their absolute path (a settings file
    /// under `/etc`): backed up under `external/` at that path, preserved
    /// before a rollback, and restored only with `--external`.
    pub external_files: Vec<String>,
    /// The runbook's critical files, backed up under `critical_files/`.
    pub critical_files: Vec<String>,
    /// Modules that must import after a rollback.
    pub critical_modules: Vec<String>,
    /// The pytest files the runbook runs after a rollback.
    pub test_files: Vec<String>,
    /// The application the server check serves: `module:attr` (an ASGI or
    /// a WSGI app) or `module:factory()` (a factory called once).
    pub app: String,
    /// The port the runbook's server check uses when `--port` is not given
    /// (0: any free loopback port).
    pub port: u16,
    pub health_path: String,
    /// The HTTP status a healthy service answers with.
    pub health_status: u16,
    /// What a healthy answer holds: JSON pointers (RFC 6901, `/status`)
    /// and the text each must have. Empty: the status alone decides.
    pub health_json: BTreeMap<String, String>,
    /// Where the answer names the database's revision (a JSON pointer),
    /// compared with the expected one; "" when the service does not say.
    pub health_revision: String,
    /// Seconds the server check waits at most for `/health` to answer (it
    /// stops waiting when it answers or the server exits): an app that
    /// migrates when it starts takes twenty seconds and more on a busy machine.
    pub server_timeout: u64,
    /// The service's log, whose last lines a bundle keeps (`""`: none).
    pub log_file: String,
    /// A pid file the service writes, if any (`""`: none).
    #[serde(deserialize_with = "keys::empty_is_none")]
    pub pid_file: Option<String>,
    /// Programs that run the service (the start of argv[0]'s file name). A
    /// process is stopped only if it is one of these *and* belongs to the root.
    pub service_programs: Vec<String>,
    /// Environment for alembic, pytest and the server in this tree.
    pub env: BTreeMap<String, String>,
    pub alembic_args: Vec<String>,
    pub pytest_args: Vec<String>,
    pub server_args: Vec<String>,
    /// A restic repository for `push` and `pull`, in restic's own syntax
    /// (`--repo` and `TMWS_BACKUP_REPO` come first; `""`: none).
    #[serde(deserialize_with = "keys::empty_is_none")]
    pub backup_repo: Option<String>,
}

impl Default for Profile {
    fn default() -> Self {
        let strings = |items: &[&str]| items.iter().map(|it| it.to_string()).collect();
        Profile {
            service: "TMWS".into(),
            label: Label::pre_deploy(),
            database: "data/tmws.db".into(),
            database_url_env: "TMWS_DATABASE_URL".into(),
            alembic_ini: "alembic.ini".into(),
            migrations: MigrationFolders::from("migrations/versions"),
            config_files: strings(&["pyproject.toml", ".env.example", "alembic.ini"]),
            external_files: Vec::new(),
            critical_files: strings(&[
                "src/domain/value_objects/tool_category.py",
                "src/services/verification_service.py",
                "src/services/learning_trust_integration.py",
                "tests/integration/test_go_python_category_sync.py",
                "tests/unit/services/test_verification_learning_integration.py",
            ]),
            critical_modules: strings(&[
                "src.domain.value_objects.tool_category",
                "src.services.verification_service",
                "src.services.learning_trust_integration",
            ]),
            test_files: strings(&[
                "tests/unit/services/test_verification_service.py",
                "tests/unit/services/test_verification_learning_integration.py",
                "tests/integration/test_go_python_category_sync.py",
            ]),
            app: "src.main:app".into(),
            port: 0,
            health_path: "/health".into(),
            health_status: 200,
            health_json: BTreeMap::new(),
            health_revision: String::new(),
            server_timeout: 120,
            log_file: "logs/tmws.log".into(),
            pid_file: None,
            service_programs: strings(&["python", "uvicorn", "gunicorn"]),
            env: BTreeMap::new(),
            alembic_args: Vec::new(),
            pytest_args: Vec::new(),
            server_args: Vec::new(),
            backup_repo: None,
        }
    }
}

/// The nearest folder, from `here` up, that holds a profile or an
/// alembic.ini (a checkout without a profile yet): as with git, the nearest
/// wins, so a command never acts on a tree above the one it was run in.
/// It never climbs into a folder another user owns or others may write (a
/// profile planted in a shared folder above is never found).
fn discover(here: &Path) -> Option<PathBuf> {
    let mut climbed = here.ancestors().enumerate();
    climbed
        .find(|(up, dir)| {
            let marked = outside::is_file(dir.join(PROFILE_FILE))
                || outside::is_file(dir.join("alembic.ini"));
            marked || (*up > 0 && !crate::ownership::may_climb_into(dir))
        })
        .filter(|(up, dir)| *up == 0 || crate::ownership::may_climb_into(dir))
        .map(|(_, dir)| dir.to_path_buf())
}

/// A TMWS tree: its canonical root, its profile, and the file-access layer
/// every write below the root goes through.
#[derive(Debug, Clone)]
pub struct Tree {
    pub root: PathBuf,
    pub profile: Profile,
    pub fs: Arc<RootDir>,
    /// The live tree, when this one is a scratch copy of it that checks run
    /// the tree's programs on.
    pub copy_of: Option<PathBuf>,
}

impl Tree {
    /// Finds the tree as git finds its repository: `--root`, then
    /// `TMWS_ROOT`, then the current directory or the nearest of its parents
    /// that holds a profile or an alembic.ini.
    pub fn locate(flag: Option<&Path>) -> Result<Tree> {
        let given = match (flag, std::env::var_os("TMWS_ROOT")) {
            (Some(path), _) => path.to_path_buf(),
            (None, Some(path)) if !path.is_empty() => PathBuf::from(path),
            (None, Some(_)) => {
                return Err(usage(
                    "TMWS_ROOT is set but empty: set it to the tree's folder, or pass --root",
                ));
            }
            (None, None) => {
                let here = std::env::current_dir().context("read the current directory")?;
                discover(&here).ok_or_else(|| {
                    usage(format!(
                        "no TMWS tree here: neither {} nor a folder above it holds {PROFILE_FILE} or alembic.ini; pass --root DIR or set TMWS_ROOT=DIR (cargo xtask sandbox --out DIR, in this tool's workspace, makes one to try)",
                        here.display()
                    ))
                })?
            }
        };
        if !outside::is_dir(&given) {
            return Err(usage(format!(
                "TMWS root {} does not exist or is not a directory",
                given.display()
            )));
        }
        let root = outside::canonicalize(&given)?;
        crate::ownership::check(&root)?;
        // Root on another user's tree (named safe) runs its programs as
        // that user.
        if let Some(meta) = outside::entry(&root) {
            use std::os::unix::fs::MetadataExt;
            xtask_fs::programs_owner::run_programs_as(meta.uid(), meta.gid());
        }
        if root.to_str().is_none() {
            return Err(usage(format!(
                "TMWS root {} is not valid UTF-8: the tool names every path it writes in its reports and commands, so it needs a root whose path is text; rename the folder",
                root.display()
            )));
        }
        let fs = Arc::new(RootDir::open(&root)?);
        let profile = Profile::load(&fs, &root)?;
        let tree = Tree { root, profile, fs, copy_of: None };
        let ini = tree.path(&tree.profile.alembic_ini);
        let kind = |path: &Path| tree.fs.kind(path).ok().flatten();
        let is_dir = |folder: &str| kind(&tree.path(folder)).is_some_and(|k| k.is_dir());
        if !kind(&ini).is_some_and(|k| k.is_file()) || !tree.profile.migrations.iter().all(is_dir) {
            let (ini, versions) = (&tree.profile.alembic_ini, &tree.profile.migrations);
            let setting = format!("alembic_ini = {ini:?} and migrations = {}", versions.to_toml());
            let said = match tree.fs.kind(&tree.root.join(PROFILE_FILE)).ok().flatten() {
                Some(_) => format!("{setting} in {}", tree.root.join(PROFILE_FILE).display()),
                None => format!("the defaults {setting} (no {PROFILE_FILE})"),
            };
            let folders: Vec<String> = versions.iter().map(|f| format!("{f}/")).collect();
            return Err(usage(format!(
                "{} is not a TMWS tree: it needs {ini} and {}, from {said} (pass --root, or describe the tree in {PROFILE_FILE})",
                tree.root.display(),
                folders.join(" and "),
            )));
        }
        Ok(tree)
    }

    /// The tree (see `locate`) and the label a command works on: the one
    /// given, else the pre-deploy backup's.
    pub fn with_label(root: Option<&Path>, label: Option<Label>) -> Result<(Tree, Label)> {
        let tree = Tree::locate(root)?;
        let label = label.unwrap_or_else(|| tree.profile.label.clone());
        Ok((tree, label))
    }

    /// The live tree's root: this root, or the one this tree is a copy of.
    pub fn live_root(&self) -> &Path {
        self.copy_of.as_deref().unwrap_or(&self.root)
    }

    /// A path of the tree, from a profile-relative path.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    pub fn database(&self) -> PathBuf {
        self.path(&self.profile.database)
    }

    /// The SQLAlchemy URL of the tree's database, for the profile's URL variable.
    pub fn database_url(&self) -> String {
        format!("sqlite:///{}", self.database().display())
    }

    /// The folders of revision files, in the profile's order.
    pub fn migration_folders(&self) -> Vec<PathBuf> {
        self.profile.migrations.iter().map(|folder| self.path(folder)).collect()
    }

    /// The revision graph of the tree's migrations (every folder's, as one
    /// history), read through its root.
    pub fn graph(&self) -> Result<Graph> {
        Graph::from_files(&self.fs, &self.revision_files()?)
    }

    /// The tree's revision files, folder by folder (see
    /// `migrations::revision_files`). A `*.py` entry that is not a regular
    /// file (a link, a FIFO) is refused: alembic would load it (following
    /// the link, or waiting on the FIFO) while the tool could neither back
    /// it up nor restore it.
    pub fn revision_files(&self) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for (key, folder) in self.profile.migrations.keyed() {
            let dir = self.path(folder);
            for (name, kind) in self.fs.list(&dir)? {
                let name = name.to_string_lossy();
                let loaded = name.ends_with(".py") && !name.starts_with("__");
                if loaded && kind != xtask_fs::sys::FileType::RegularFile {
                    return Err(refused(format!(
                        "{folder}/{name} is a {} where alembic loads a revision file ({}): the tool backs up and restores regular files only; put the file itself there, or remove it. Nothing was changed",
                        xtask_fs::root_dir::describe(kind),
                        self.named(&key, folder),
                    )));
                }
            }
            files.extend(revision_files(&self.fs, &dir)?);
        }
        Ok(files)
    }

    /// A key of the profile with its value and where it was set, for a
    /// message about it: `database = "data/tmws.db" (ROOT/tmws-rollback.toml)`.
    pub fn named(&self, key: &str, value: &str) -> String {
        let file = self.root.join(PROFILE_FILE);
        match self.fs.kind(&file).ok().flatten() {
            Some(_) => format!("{key} = {value:?} ({})", file.display()),
            None => format!("{key} = {value:?} (the default: there is no {PROFILE_FILE})"),
        }
    }

    pub fn backups(&self) -> PathBuf {
        self.root.join("backups")
    }

    pub fn backup(&self, label: &Label) -> PathBuf {
        self.backups().join(label.as_str())
    }

    /// Where the tool keeps its lock and journal inside the tree.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".tmws-rollback")
    }

    pub fn forensics_dir(&self) -> PathBuf {
        self.root.join("forensics")
    }

    /// Where the tree's programs (the app, pytest) may write: everything
    /// beneath the root but the tool's own folders (its journal and lock,
    /// the backups, the forensics bundles). Landlock grants whole
    /// hierarchies, so the root itself is not granted: its other folders
    /// and files are, one by one. Links are never granted (the kernel would
    /// grant where they point).
    pub fn writable_by_programs(&self) -> Result<Vec<PathBuf>> {
        let kept = [self.state_dir(), self.backups(), self.forensics_dir()];
        let mut writable = Vec::new();
        self.grant_beside(&self.root, &kept, &mut writable)?;
        Ok(writable)
    }

    fn grant_beside(
        &self,
        dir: &Path,
        kept: &[PathBuf],
        writable: &mut Vec<PathBuf>,
    ) -> Result<()> {
        use xtask_fs::sys::FileType;
        for (name, kind) in self.fs.list(dir)? {
            let path = dir.join(name);
            match kind {
                _ if kept.contains(&path) => {}
                FileType::Directory if kept.iter().any(|k| k.starts_with(&path)) => {
                    self.grant_beside(&path, kept, writable)?
                }
                FileType::Directory | FileType::RegularFile => writable.push(path),
                _ => {}
            }
        }
        Ok(())
    }
}

impl Profile {
    /// The profile file of the root, read through the file-access layer (a
    /// link out of the root or a FIFO is refused, never followed or waited
    /// on); the built-in defaults when there is none.
    fn load(fs: &RootDir, root: &Path) -> Result<Profile> {
        let file = root.join(PROFILE_FILE);
        if fs.kind(&file)?.is_none() {
            return Ok(Profile::default());
        }
        let text = String::from_utf8(fs.read(&file)?).map_err(|_| {
            usage(format!("{} is not a valid profile: it is not UTF-8 text", file.display()))
        })?;
        let profile = Profile::from_text(&text, &file)?;
        keys::check_external(&profile, root)
            .map_err(|err| usage(format!("{}: {err}", file.display())))?;
        Ok(profile)
    }

    /// A profile's text, as `file` would hold it (init proves the profile
    /// it proposes before it writes it).
    pub fn from_text(text: &str, file: &Path) -> Result<Profile> {
        let table: toml::Table = toml::from_str(text)
            .map_err(|err| usage(format!("{} is not a valid profile: {err}", file.display())))?;
        if let Some(key) = control_character_in(&toml::Value::Table(table.clone()), "") {
            return Err(usage(format!(
                "{}: {key} holds a control character (a newline, a bell, NUL...): no path, name or value of a profile does",
                file.display()
            )));
        }
        let profile: Profile = table
            .try_into()
            .map_err(|err| usage(format!("{}: {}", file.display(), keys::key_first(&err))))?;
        keys::check(&profile).map_err(|err| usage(format!("{}: {err}", file.display())))?;
        Ok(profile)
    }

    /// The service's log, when the profile names one.
    pub fn log_file(&self) -> Option<&str> {
        Some(self.log_file.as_str()).filter(|path| !path.is_empty())
    }
}

/// The key (`env.DATABASE_URL`, `test_files[2]`) of the first string that
/// holds a control character, if one does.
fn control_character_in(value: &toml::Value, key: &str) -> Option<String> {
    let at = |sub: &str| if key.is_empty() { sub.to_string() } else { format!("{key}.{sub}") };
    match value {
        toml::Value::String(s) => s.chars().any(char::is_control).then(|| key.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| control_character_in(item, &format!("{key}[{i}]"))),
        toml::Value::Table(table) => table.iter().find_map(|(name, item)| {
            if name.chars().any(char::is_control) {
                return Some(at(&format!("{name:?}")));
            }
            control_character_in(item, &at(name))
        }),
        _ => None,
    }
}

/// The labels of the backups this tree holds (folders under `backups/`
/// with a manifest), sorted.
pub fn labels(tree: &Tree) -> Vec<Label> {
    let folders = tree.fs.list(&tree.backups()).unwrap_or_default();
    let mut labels: Vec<Label> = folders
        .into_iter()
        .filter(|(name, kind)| {
            let manifest = tree.backups().join(name).join(crate::manifest::MANIFEST_FILE);
            kind.is_dir() && tree.fs.is_file(&manifest)
        })
        .filter_map(|(name, _)| name.to_str()?.parse().ok())
        .collect();
    labels.sort();
    labels
}
