//! The JSON documents that only the command line assembles (`--format
//! json`), each a type, so that its schema in `docs/schema/` is generated
//! from it. The documents that are an operation's own result (`Report`,
//! `Outcome`, `Diagnosis`, `Listing`) live beside that operation, and the
//! developer tools' beside each tool.
use std::path::PathBuf;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Serialize;
use xtask_base::exit::Kind;
use xtask_model::{check::Version, manifest::Manifest};
use xtask_ops::{
    backup::PlanItem,
    evidence::Facts,
    offsite::{Pulled, Pushed},
    prune::Pruned,
};

/// What a command that writes did: wrote, or only planned (`--dry-run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Planned,
    Done,
}

impl Effect {
    pub fn of(dry_run: bool) -> Effect {
        if dry_run { Effect::Planned } else { Effect::Done }
    }
}

/// `backup --format json` (a plan with `--dry-run`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct BackupDocument {
    pub schema: Version,
    #[schemars(extend("const" = "backup"))]
    pub command: &'static str,
    pub result: Effect,
    pub dry_run: bool,
    /// The backup's folder.
    pub backup: PathBuf,
    pub plan: Vec<PlanItem>,
    /// The manifest written; in a dry run, what is known of it before
    /// anything is copied.
    pub manifest: Manifest,
    /// With a repository: the push (as `push` reports it), else null.
    pub offsite: Option<Pushed>,
}

/// `forensics --format json`: the bundle written, or with `--dry-run` the
/// bundle it would write.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ForensicsDocument {
    pub schema: Version,
    #[schemars(extend("const" = "forensics"))]
    pub command: &'static str,
    pub result: Effect,
    pub dry_run: bool,
    /// The bundle's folder.
    pub bundle: PathBuf,
    /// With `--dry-run`: what the bundle would hold, a line each.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Vec<String>")]
    pub plan: Option<Vec<String>>,
    /// What the bundle records (its `failure.json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Facts")]
    pub facts: Option<Facts>,
}

/// What `init` did with the profile it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Profiled {
    /// Not written: a dry run.
    Planned,
    Written,
    /// A profile exists and agrees with what init found; it is left as it is.
    Agrees,
}

/// `init --format json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct InitDocument {
    pub schema: Version,
    #[schemars(extend("const" = "init"))]
    pub command: &'static str,
    pub result: Profiled,
    pub dry_run: bool,
    /// The profile's path.
    pub profile: PathBuf,
    /// The profile init found, as it writes it.
    pub text: String,
}

/// `push --format json`: the push's fields beside the document's own.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PushDocument {
    pub schema: Version,
    #[schemars(extend("const" = "push"))]
    pub command: &'static str,
    #[schemars(extend("const" = "done"))]
    pub result: &'static str,
    #[serde(flatten)]
    pub pushed: Pushed,
}

/// `pull --format json`: the pull's fields beside the document's own.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PullDocument {
    pub schema: Version,
    #[schemars(extend("const" = "pull"))]
    pub command: &'static str,
    #[schemars(extend("const" = "done"))]
    pub result: &'static str,
    #[serde(flatten)]
    pub pulled: Pulled,
}

/// What `prune` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Pruning {
    /// Nothing was beyond `--keep`.
    Nothing,
    /// A dry run: the plan, nothing removed.
    Planned,
    Done,
}

/// `prune --format json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PruneDocument {
    pub schema: Version,
    #[schemars(extend("const" = "prune"))]
    pub command: &'static str,
    pub result: Pruning,
    pub dry_run: bool,
    /// How many of the newest backups each holder keeps.
    pub keep: usize,
    /// `--bundles`: the holder is forensics/, its entries bundles (their
    /// snapshot and label are the folder's name).
    pub bundles: bool,
    /// Each holder, in the order pruned.
    pub holders: Vec<Pruned>,
}

/// Any command's document when it stopped before its result (exit 1 to
/// 5): `--format json` always puts one document on stdout.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorDocument {
    pub schema: Version,
    /// The command named on the line; null when none was.
    pub command: Option<String>,
    #[schemars(extend("const" = "error"))]
    pub result: &'static str,
    /// The exit code.
    #[schemars(schema_with = "exit_codes")]
    pub exit: u8,
    /// What stderr said, without its `error: ` prefix.
    pub message: String,
    /// The command or step to take next, when the error names one.
    pub next: Option<String>,
}

/// The exit codes an error has: one per kind, and 128 + the signal when a
/// termination signal stopped the run (SIGHUP, SIGINT, SIGTERM).
fn exit_codes(_: &mut SchemaGenerator) -> Schema {
    let mut codes: Vec<u8> = Kind::ALL.map(|kind| kind as u8).to_vec();
    codes.extend([129, 130, 143]);
    json_schema!({ "type": "integer", "enum": codes })
}
