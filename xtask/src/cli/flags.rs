//! The command line of `cargo xtask`: the only place where flags are declared.
#![allow(unreachable_pub)]

use std::path::PathBuf;

use xtask_model::{label::Label, scenario::Scenario};
use xtask_ops::post_check::After;

xflags::xflags! {
    src "./src/cli/flags.rs"

    /// Safe, checked commands for the TMWS Phase 4 rollback runbook.
    cmd xtask {
        /// Materialize the fake TMWS tree with git history and a real database.
        cmd sandbox {
            /// Quiet: no `$ command` lines and no progress on stderr.
            optional -q, --quiet
            /// Verbose: each external command with its full arguments.
            optional -v, --verbose
            /// Empty or missing folder to create the tree in.
            required --out dir: PathBuf
            /// pre-phase4 (default), backed-up (also runs backup) or phase4 (also deploys Phase 4).
            optional --stage stage: Stage
            /// A fixture variant from fixtures/variants/ (a real service's property).
            optional --variant name: String
            /// Python interpreter for the tools' virtualenv (or TMWS_PYTHON).
            optional --python python: PathBuf
            /// Print what would be built; write nothing.
            optional --dry-run
            /// Output format: human (default) or json (one document on stdout).
            optional --format format: Format
        }

        /// Take the pre-deploy backup with its manifest, and tag git HEAD.
        cmd backup {
            /// Quiet: no `$ command` lines and no progress on stderr.
            optional -q, --quiet
            /// Verbose: each external command with its full arguments.
            optional -v, --verbose
            /// TMWS root (or TMWS_ROOT; default: the current folder or the nearest above it with a profile or alembic.ini).
            optional --root dir: PathBuf
            /// Backup label, the folder under backups/ and the git tag (default pre-phase4).
            optional --label label: Label
            /// Print what would be copied and tagged; write nothing.
            optional --dry-run
            /// Do not tag git HEAD.
            optional --no-tag
            /// Also store the backup, verified, in this restic repository (restic's syntax; password from RESTIC_PASSWORD_FILE, RESTIC_PASSWORD_COMMAND or RESTIC_PASSWORD).
            optional --repo repo: String
            /// Output format: human (default) or json.
            optional --format format: Format
        }

        /// Prove a backup complete, intact and restorable.
        cmd verify-backup {
            /// Quiet: no `$ command` lines and no progress on stderr.
            optional -q, --quiet
            /// Verbose: each external command with its full arguments.
            optional -v, --verbose
            /// TMWS root (or TMWS_ROOT; default: the current folder or the nearest above it with a profile or alembic.ini).
            optional --root dir: PathBuf
            /// Backup label: the folder under backups/ and the git tag (default pre-phase4).
            optional --label label: Label
            /// A backup folder to verify on its own, without a TMWS root.
            optional --backup dir: PathBuf
            /// Verify the newest snapshot of the label in this restic repository instead (restored to a scratch folder, every blob checked), and restic check on the repository.
            optional --repo repo: String
            /// Output format: human (default) or json (one document on stdout).
            optional --format format: Format
            /// Write the checks as JUnit XML to this file.
            optional --junit file: PathBuf
            /// Python interpreter for alembic, pytest and uvicorn (or TMWS_PYTHON).
            optional --python python: PathBuf
        }

        /// Roll back along the runbook's decision matrix, safely and resumably.
        cmd rollback {
            /// Quiet: no `$ command` lines and no progress on stderr.
            optional -q, --quiet
            /// Verbose: each external command with its full arguments.
            optional -v, --verbose
            /// database, migration, files, complete or git (with --resume or --abandon: the unfinished run's).
            optional --scenario scenario: Scenario
            /// TMWS root (or TMWS_ROOT; default: the current folder or the nearest above it with a profile or alembic.ini).
            optional --root dir: PathBuf
            /// Backup label: the folder under backups/ and the git tag (default pre-phase4).
            optional --label label: Label
            /// Print the exact plan; change nothing.
            optional --dry-run
            /// Confirm without a terminal.
            optional --yes
            /// Complete an interrupted run from its journal.
            optional --resume
            /// Say whose record an earlier run left in the lock file (it never blocks: the lock is the kernel's, released when its holder ends).
            optional --break-lock
            /// Close a failed or interrupted run on purpose, keeping its bundle.
            optional --abandon
            /// Do not verify the backup first (emergencies only).
            optional --skip-verify
            /// Pull the backup from this restic repository first when it is not in backups/.
            optional --repo repo: String
            /// migration: go to this revision instead of the backup's (head: the code's, upgrading).
            optional --to rev: String
            /// migration: downgrade this many steps.
            optional --steps n: Count
            /// migration: allow a downgrade to base, which destroys data.
            optional --allow-data-loss
            /// files and git: only these paths or pathspecs.
            repeated --paths path: String
            /// files: also the critical files the deploy's commits changed (by default they stay).
            optional --all
            /// git: soft reset to this commit.
            optional --commit rev: String
            /// git: hard reset (needs --force).
            optional --hard
            /// git: with --hard, discard commits; otherwise move only the code even when the database is ahead of it.
            optional --force
            /// git: restore --paths from this commit.
            optional --from rev: String
            /// complete: also restore the profile's files outside the tree (external_files), each current one kept in the bundle first.
            optional --external
            /// Seconds to wait for the service to stop before SIGKILL (default 10).
            optional --grace seconds: u64
            /// Output format: human (default) or json (one document on stdout).
            optional --format format: Format
            /// Python interpreter for alembic, pytest and uvicorn (or TMWS_PYTHON).
            optional --python python: PathBuf
        }

        /// Run the runbook's post-rollback verification tests and checklist.
        cmd post-check {
            /// Quiet: no `$ command` lines and no progress on stderr.
            optional -q, --quiet
            /// Verbose: each external command with its full arguments.
            optional -v, --verbose
            /// TMWS root (or TMWS_ROOT; default: the current folder or the nearest above it with a profile or alembic.ini).
            optional --root dir: PathBuf
            /// Backup label: the folder under backups/ and the git tag (default pre-phase4).
            optional --label label: Label
            /// Output format: human (default) or json (one document on stdout).
            optional --format format: Format
            /// Write the checks as JUnit XML to this file (its folder must exist).
            optional --junit file: PathBuf
            /// Write the runbook's post-rollback checklist as Markdown.
            optional --checklist file: PathBuf
            /// Run only these checks (ids).
            repeated --only id: String
            /// Skip these checks (ids).
            repeated --skip id: String
            /// Expected revision without a backup: a revision id or `head`.
            optional --expect-revision rev: String
            /// Port for the server check (default: a free loopback port).
            optional --port port: u16
            /// Fail the checks that compare with a backup when there is none
            /// (default: they are not applicable).
            optional --require-backup
            /// Run the app, pytest and alembic on the live tree instead of a
            /// scratch copy; the database is hashed before and after.
            optional --live
            /// What is judged: deploy (the migrations' head, no backup
            /// comparison) or rollback (what the last rollback restored;
            /// the default once one finished).
            optional --after when: After
            /// Python interpreter for alembic, pytest and uvicorn (or TMWS_PYTHON).
            optional --python python: PathBuf
        }

        /// Write a forensics bundle of the current (failed) state.
        cmd forensics {
            /// Quiet: no `$ command` lines and no progress on stderr.
            optional -q, --quiet
            /// Verbose: each external command with its full arguments.
            optional -v, --verbose
            /// TMWS root (or TMWS_ROOT; default: the current folder or the nearest above it with a profile or alembic.ini).
            optional --root dir: PathBuf
            /// Backup label: the folder under backups/ and the git tag (default pre-phase4).
            optional --label label: Label
            /// Print where the bundle would go and what it would hold; write nothing.
            optional --dry-run
            /// Output format: human (default) or json (one document on stdout).
            optional --format format: Format
            /// Python interpreter for alembic, pytest and uvicorn (or TMWS_PYTHON).
            optional --python python: PathBuf
        }

        /// Recommend a row of the decision matrix, with evidence.
        cmd diagnose {
            /// Quiet: no `$ command` lines and no progress on stderr.
            optional -q, --quiet
            /// Verbose: each external command with its full arguments.
            optional -v, --verbose
            /// TMWS root (or TMWS_ROOT; default: the current folder or the nearest above it with a profile or alembic.ini).
            optional --root dir: PathBuf
            /// Backup label: the folder under backups/ and the git tag (default pre-phase4).
            optional --label label: Label
            /// The commit HEAD should be at (default: any descendant of the backup's tag).
            optional --expect-commit rev: String
            /// Output format: human (default) or json (one document on stdout).
            optional --format format: Format
            /// Python interpreter for alembic, pytest and uvicorn (or TMWS_PYTHON).
            optional --python python: PathBuf
        }

        /// Rehearse break, diagnose, rollback and post-check in sandboxes.
        cmd drill {
            /// Quiet: no `$ command` lines and no progress on stderr.
            optional -q, --quiet
            /// Verbose: each external command with its full arguments.
            optional -v, --verbose
            /// database, migration, files, git, complete or all (default).
            optional --scenario scenario: Rows
            /// Keep the sandboxes in this folder for inspection.
            optional --keep dir: PathBuf
            /// Output format: human (default) or json (one document on stdout).
            optional --format format: Format
            /// Python interpreter for alembic, pytest and uvicorn (or TMWS_PYTHON).
            optional --python python: PathBuf
        }

        /// List the backups of a tree and their state, the lock and any unfinished rollback.
        cmd list {
            /// Quiet: no `$ command` lines and no progress on stderr.
            optional -q, --quiet
            /// Verbose: each external command with its full arguments.
            optional -v, --verbose
            /// TMWS root (or TMWS_ROOT; default: the current folder or the nearest above it with a profile or alembic.ini).
            optional --root dir: PathBuf
            /// Also list the backups held in this restic repository.
            optional --repo repo: String
            /// Output format: human (default) or json (one document on stdout).
            optional --format format: Format
        }

        /// Remove backups beyond the newest N from backups/ or a restic repository (never the pre-deploy one without --force).
        cmd prune {
            /// Quiet: no `$ command` lines and no progress on stderr.
            optional -q, --quiet
            /// Verbose: each external command with its full arguments.
            optional -v, --verbose
            /// How many of the newest backups stay.
            required --keep n: Count
            /// TMWS root (or TMWS_ROOT; default: the current folder or the nearest above it with a profile or alembic.ini).
            optional --root dir: PathBuf
            /// Also remove this protected backup (pre-deploy, or used by an unfinished rollback).
            repeated --force label: Label
            /// Prune this restic repository (restic forget, then prune) and not backups/; a configured one (TMWS_BACKUP_REPO, backup_repo) only when named here.
            optional --repo repo: String
            /// Prune backups/ (the default without --repo; with --repo, both).
            optional --local
            /// Prune the forensics bundles under forensics/ instead of the backups (not with --repo or --local).
            optional --bundles
            /// Print what would be removed; remove nothing.
            optional --dry-run
            /// Confirm without a terminal.
            optional --yes
            /// Output format: human (default) or json (one document on stdout).
            optional --format format: Format
        }

        /// Store a verified local backup in a restic repository, and check what it holds.
        cmd push {
            /// Quiet: no `$ command` lines and no progress on stderr.
            optional -q, --quiet
            /// Verbose: each external command with its full arguments.
            optional -v, --verbose
            /// TMWS root (or TMWS_ROOT; default: the current folder or the nearest above it with a profile or alembic.ini).
            optional --root dir: PathBuf
            /// Backup label: the folder under backups/ (default pre-phase4).
            optional --label label: Label
            /// The restic repository, in restic's syntax (or TMWS_BACKUP_REPO, or backup_repo); the password comes from RESTIC_PASSWORD_FILE, RESTIC_PASSWORD_COMMAND or RESTIC_PASSWORD.
            optional --repo repo: String
            /// Python interpreter for alembic, pytest and uvicorn (or TMWS_PYTHON).
            optional --python python: PathBuf
            /// Output format: human (default) or json (one document on stdout).
            optional --format format: Format
        }

        /// Restore a backup from a restic repository into backups/, verified, never over one.
        cmd pull {
            /// Quiet: no `$ command` lines and no progress on stderr.
            optional -q, --quiet
            /// Verbose: each external command with its full arguments.
            optional -v, --verbose
            /// TMWS root (or TMWS_ROOT; default: the current folder or the nearest above it with a profile or alembic.ini).
            optional --root dir: PathBuf
            /// Backup label: the folder under backups/ (default pre-phase4).
            optional --label label: Label
            /// The restic repository, in restic's syntax (or TMWS_BACKUP_REPO, or backup_repo); the password comes from RESTIC_PASSWORD_FILE, RESTIC_PASSWORD_COMMAND or RESTIC_PASSWORD.
            optional --repo repo: String
            /// Python interpreter for alembic, pytest and uvicorn (or TMWS_PYTHON).
            optional --python python: PathBuf
            /// Output format: human (default) or json (one document on stdout).
            optional --format format: Format
        }

        /// Inspect a checkout and write a commented tmws-rollback.toml for it.
        cmd init {
            /// Quiet: no `$ command` lines and no progress on stderr.
            optional -q, --quiet
            /// Verbose: each external command with its full arguments.
            optional -v, --verbose
            /// The checkout (or TMWS_ROOT; default: the current directory).
            optional --root dir: PathBuf
            /// Print the profile it would write; write nothing.
            optional --dry-run
            /// Output format: human (default) or json (one document on stdout).
            optional --format format: Format
        }

        /// Build the release binary and a tarball (binary, README, docs, Python requirements) that runs without cargo.
        cmd dist {
            /// Quiet: no `$ command` lines and no progress on stderr.
            optional -q, --quiet
            /// Verbose: each external command with its full arguments.
            optional -v, --verbose
            /// Folder for the tarball (default target/dist).
            optional --out dir: PathBuf
            /// Package this binary instead of building one with cargo build --release.
            optional --binary file: PathBuf
            /// Output format: human (default) or json (one document on stdout).
            optional --format format: Format
        }

        /// Measure the commands against the runbook's shell baseline.
        cmd bench {
            /// Quiet: no `$ command` lines and no progress on stderr.
            optional -q, --quiet
            /// Verbose: each external command with its full arguments.
            optional -v, --verbose
            /// Database sizes, e.g. 1MiB,64MiB,1GiB.
            optional --sizes sizes: String
            /// Runs of each measurement (default 3).
            optional --runs n: Count
            /// Report folder (default target/bench).
            optional --out dir: PathBuf
            /// Skip the flush of every file system before each run: for a
            /// quick look at the report, not for figures.
            optional --no-sync
            /// Only these rows, a comma list of backup, verify-backup,
            /// rollback, migration, post-check, push, pull (default: all of
            /// them; push and pull need restic).
            optional --only rows: Measures
            /// Python interpreter for alembic, pytest and uvicorn (or TMWS_PYTHON).
            optional --python python: PathBuf
        }

        /// Run the test suite: installs the system programs the tests use when they are missing (as root, with apt-get), then every test.
        cmd test {
            /// Quiet: no `$ command` lines and no progress on stderr.
            optional -q, --quiet
            /// Verbose: each external command with its full arguments.
            optional -v, --verbose
            /// The nextest profile: default (every day: all but the tests that re-run README and the bench) or ci (everything).
            optional --profile name: String
            /// Only the tests whose names contain one of these.
            repeated filters: String
        }
    }
}
// generated start
// The following code is generated by `xflags` macro.
// Run `env UPDATE_XFLAGS=1 cargo build` to regenerate.
#[derive(Debug)]
pub struct Xtask {
    pub subcommand: XtaskCmd,
}

#[derive(Debug)]
pub enum XtaskCmd {
    Sandbox(Sandbox),
    Backup(Backup),
    VerifyBackup(VerifyBackup),
    Rollback(Rollback),
    PostCheck(PostCheck),
    Forensics(Forensics),
    Diagnose(Diagnose),
    Drill(Drill),
    List(List),
    Prune(Prune),
    Push(Push),
    Pull(Pull),
    Init(Init),
    Dist(Dist),
    Bench(Bench),
    Test(Test),
}

#[derive(Debug)]
pub struct Sandbox {
    pub quiet: bool,
    pub verbose: bool,
    pub out: PathBuf,
    pub stage: Option<Stage>,
    pub variant: Option<String>,
    pub python: Option<PathBuf>,
    pub dry_run: bool,
    pub format: Option<Format>,
}

#[derive(Debug)]
pub struct Backup {
    pub quiet: bool,
    pub verbose: bool,
    pub root: Option<PathBuf>,
    pub label: Option<Label>,
    pub dry_run: bool,
    pub no_tag: bool,
    pub repo: Option<String>,
    pub format: Option<Format>,
}

#[derive(Debug)]
pub struct VerifyBackup {
    pub quiet: bool,
    pub verbose: bool,
    pub root: Option<PathBuf>,
    pub label: Option<Label>,
    pub backup: Option<PathBuf>,
    pub repo: Option<String>,
    pub format: Option<Format>,
    pub junit: Option<PathBuf>,
    pub python: Option<PathBuf>,
}

#[derive(Debug)]
pub struct Rollback {
    pub quiet: bool,
    pub verbose: bool,
    pub scenario: Option<Scenario>,
    pub root: Option<PathBuf>,
    pub label: Option<Label>,
    pub dry_run: bool,
    pub yes: bool,
    pub resume: bool,
    pub break_lock: bool,
    pub abandon: bool,
    pub skip_verify: bool,
    pub repo: Option<String>,
    pub to: Option<String>,
    pub steps: Option<Count>,
    pub allow_data_loss: bool,
    pub paths: Vec<String>,
    pub all: bool,
    pub commit: Option<String>,
    pub hard: bool,
    pub force: bool,
    pub from: Option<String>,
    pub external: bool,
    pub grace: Option<u64>,
    pub format: Option<Format>,
    pub python: Option<PathBuf>,
}

#[derive(Debug)]
pub struct PostCheck {
    pub quiet: bool,
    pub verbose: bool,
    pub root: Option<PathBuf>,
    pub label: Option<Label>,
    pub format: Option<Format>,
    pub junit: Option<PathBuf>,
    pub checklist: Option<PathBuf>,
    pub only: Vec<String>,
    pub skip: Vec<String>,
    pub expect_revision: Option<String>,
    pub port: Option<u16>,
    pub require_backup: bool,
    pub live: bool,
    pub after: Option<After>,
    pub python: Option<PathBuf>,
}

#[derive(Debug)]
pub struct Forensics {
    pub quiet: bool,
    pub verbose: bool,
    pub root: Option<PathBuf>,
    pub label: Option<Label>,
    pub dry_run: bool,
    pub format: Option<Format>,
    pub python: Option<PathBuf>,
}

#[derive(Debug)]
pub struct Diagnose {
    pub quiet: bool,
    pub verbose: bool,
    pub root: Option<PathBuf>,
    pub label: Option<Label>,
    pub expect_commit: Option<String>,
    pub format: Option<Format>,
    pub python: Option<PathBuf>,
}

#[derive(Debug)]
pub struct Drill {
    pub quiet: bool,
    pub verbose: bool,
    pub scenario: Option<Rows>,
    pub keep: Option<PathBuf>,
    pub format: Option<Format>,
    pub python: Option<PathBuf>,
}

#[derive(Debug)]
pub struct List {
    pub quiet: bool,
    pub verbose: bool,
    pub root: Option<PathBuf>,
    pub repo: Option<String>,
    pub format: Option<Format>,
}

#[derive(Debug)]
pub struct Prune {
    pub quiet: bool,
    pub verbose: bool,
    pub keep: Count,
    pub root: Option<PathBuf>,
    pub force: Vec<Label>,
    pub repo: Option<String>,
    pub local: bool,
    pub bundles: bool,
    pub dry_run: bool,
    pub yes: bool,
    pub format: Option<Format>,
}

#[derive(Debug)]
pub struct Push {
    pub quiet: bool,
    pub verbose: bool,
    pub root: Option<PathBuf>,
    pub label: Option<Label>,
    pub repo: Option<String>,
    pub python: Option<PathBuf>,
    pub format: Option<Format>,
}

#[derive(Debug)]
pub struct Pull {
    pub quiet: bool,
    pub verbose: bool,
    pub root: Option<PathBuf>,
    pub label: Option<Label>,
    pub repo: Option<String>,
    pub python: Option<PathBuf>,
    pub format: Option<Format>,
}

#[derive(Debug)]
pub struct Init {
    pub quiet: bool,
    pub verbose: bool,
    pub root: Option<PathBuf>,
    pub dry_run: bool,
    pub format: Option<Format>,
}

#[derive(Debug)]
pub struct Dist {
    pub quiet: bool,
    pub verbose: bool,
    pub out: Option<PathBuf>,
    pub binary: Option<PathBuf>,
    pub format: Option<Format>,
}

#[derive(Debug)]
pub struct Bench {
    pub quiet: bool,
    pub verbose: bool,
    pub sizes: Option<String>,
    pub runs: Option<Count>,
    pub out: Option<PathBuf>,
    pub no_sync: bool,
    pub only: Option<Measures>,
    pub python: Option<PathBuf>,
}

#[derive(Debug)]
pub struct Test {
    pub filters: Vec<String>,

    pub quiet: bool,
    pub verbose: bool,
    pub profile: Option<String>,
}

impl Xtask {
    #[allow(dead_code)]
    pub fn from_env_or_exit() -> Self {
        Self::from_env_or_exit_()
    }

    #[allow(dead_code)]
    pub fn from_env() -> xflags::Result<Self> {
        Self::from_env_()
    }

    #[allow(dead_code)]
    pub fn from_vec(args: Vec<std::ffi::OsString>) -> xflags::Result<Self> {
        Self::from_vec_(args)
    }
}
// generated end

// The values of the flags, each parsed once, beside the flags.

/// `--format`: a table for people, or one JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Human,
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Format, String> {
        match text {
            "human" => Ok(Format::Human),
            "json" => Ok(Format::Json),
            other => Err(format!("unknown --format {other:?}: use human or json")),
        }
    }
}

/// A number of things that must be at least one (`--keep`, `--steps`, `--runs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub u32);

impl std::str::FromStr for Count {
    type Err = String;

    fn from_str(text: &str) -> Result<Count, String> {
        match text.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(Count(n)),
            _ => Err(format!("expected a count of at least 1, not {text:?}")),
        }
    }
}

/// `sandbox --stage`: how far the sandbox is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    PrePhase4,
    BackedUp,
    Phase4,
}

impl std::str::FromStr for Stage {
    type Err = String;

    fn from_str(text: &str) -> Result<Stage, String> {
        match text {
            "pre-phase4" => Ok(Stage::PrePhase4),
            "backed-up" => Ok(Stage::BackedUp),
            "phase4" => Ok(Stage::Phase4),
            other => Err(format!("unknown --stage {other:?}: use pre-phase4, backed-up or phase4")),
        }
    }
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::PrePhase4, Stage::BackedUp, Stage::Phase4];

    pub fn name(self) -> &'static str {
        match self {
            Stage::PrePhase4 => "pre-phase4",
            Stage::BackedUp => "backed-up",
            Stage::Phase4 => "phase4",
        }
    }
}

/// In the sandbox's document, by its name.
impl serde::Serialize for Stage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl schemars::JsonSchema for Stage {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Stage".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names = Stage::ALL.map(Stage::name);
        schemars::json_schema!({ "type": "string", "enum": names })
    }
}

/// `drill --scenario`: every row of the matrix, or one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    All,
    One(Scenario),
}

impl std::str::FromStr for Rows {
    type Err = String;

    fn from_str(text: &str) -> Result<Rows, String> {
        match text {
            "all" => Ok(Rows::All),
            one => one.parse().map(Rows::One).map_err(|e| format!("{e}, or all")),
        }
    }
}

/// The rows `--only` selects; every row when it is not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measures(Vec<String>);

/// The names `--only` knows, in the order the rows are measured.
pub const MEASURES: [&str; 7] =
    ["post-check", "backup", "verify-backup", "rollback", "migration", "push", "pull"];

impl std::str::FromStr for Measures {
    type Err = String;

    fn from_str(text: &str) -> Result<Measures, String> {
        let names: Vec<String> = text.split(',').map(|n| n.trim().to_string()).collect();
        match names.iter().find(|n| !MEASURES.contains(&n.as_str())) {
            Some(unknown) => Err(format!("unknown row {unknown:?}: use {}", MEASURES.join(", "))),
            None => Ok(Measures(names)),
        }
    }
}

impl Measures {
    /// Every row.
    pub fn all() -> Measures {
        Measures(MEASURES.map(String::from).into())
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|n| n == name)
    }
}
