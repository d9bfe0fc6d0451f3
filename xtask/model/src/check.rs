//! Checks and their reports, as data: each check's id, title, status and
//! detail, and a command's report of them (`cli::render` draws them as a
//! table, JSON or JUnit XML).
use std::{borrow::Cow, time::Instant};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Serialize;

/// The version of the JSON documents this tool prints. Version 2 added the
/// `not_applicable` status and the `interpreter` of a report.
pub const SCHEMA: u32 = 2;

/// The `schema` field of every document: it serializes as `SCHEMA` and
/// holds nothing else, so no document can claim another version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Version;

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(SCHEMA)
    }
}

impl JsonSchema for Version {
    fn schema_name() -> Cow<'static, str> {
        "Version".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "const": SCHEMA,
            "description": "The version of the document's shape; a change that is not backward compatible raises it."
        })
    }
}

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Only when the user skipped the check by name.
    Skip,
    /// The check has nothing to look at here (no backup to compare with, no
    /// integration test configured); the detail says why. Not a failure.
    #[serde(rename = "not_applicable")]
    NotApplicable,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
            Status::NotApplicable => "n/a",
        }
    }
}

/// Declares every check the tool makes, in one enum: each variant with its
/// id and title. One id means one check, whichever command makes it.
macro_rules! checks {
    ($($(#[$doc:meta])* $variant:ident = $id:literal, $title:literal;)*) => {
        /// Every check of every command: post-check, verify-backup and
        /// diagnose each run those of their list (`POST_CHECK`, `VERIFY`,
        /// `DIAGNOSE` in their modules); a check two commands make is one
        /// variant, made the same way.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CheckId {
            $($(#[$doc])* $variant,)*
        }

        impl CheckId {
            /// Every check, in declaration order.
            pub const ALL: &'static [CheckId] = &[$(CheckId::$variant,)*];

            /// `database.integrity`: the part before the dot is its group.
            pub fn id(self) -> &'static str {
                match self {
                    $(CheckId::$variant => $id,)*
                }
            }

            pub fn title(self) -> &'static str {
                match self {
                    $(CheckId::$variant => $title,)*
                }
            }
        }
    };
}

checks! {
    // Checks of a tree, after a deploy or a rollback, and of a diagnosis.
    RollbackUnfinished = "rollback.unfinished", "no rollback is unfinished";
    DatabaseFile = "database.file", "database file exists";
    DatabaseTables = "database.tables", "tables, columns and indexes equal the backup's";
    DatabaseRevision = "database.revision", "alembic_version is the expected revision";
    DatabaseIntegrity = "database.integrity", "PRAGMA integrity_check is ok";
    MigrationsCurrent = "migrations.current", "alembic current agrees with the database";
    MigrationsHistory = "migrations.history", "alembic history runs";
    MigrationsCount = "migrations.count", "revision files equal the backup's count";
    MigrationRevision = "migration.revision", "the database is at the code's migration head";
    MigrationHalfApplied = "migration.half-applied", "no migration is half-applied";
    Imports = "imports", "critical modules import and compile";
    TestsUnit = "tests.unit", "unit tests pass";
    TestsIntegration = "tests.integration", "integration tests pass";
    ServerStart = "server.start", "server starts without errors";
    ServerHealth = "server.health", "health endpoint responds";
    ServerRestart = "server.restart", "starting the service leaves the database as it is";
    GitClean = "git.clean", "git state is clean";
    GitHead = "git.head", "HEAD is on the rollback branch or the tag";
    GitExpectedCommit = "git.expected-commit", "HEAD is attached and at the expected commit";
    FilesRestored = "files.restored", "config and critical files equal the backup's";
    FilesExternal = "files.external", "files outside the tree equal the backup's";
    FilesChanged = "files.changed", "critical files are as committed";
    Forensics = "forensics", "a forensics bundle exists";
    // Checks of a backup.
    Folder = "folder", "backup folder exists";
    Manifest = "manifest", "manifest is present and parses";
    ManifestPaths = "manifest.paths", "manifest paths stay inside the backup";
    Sums = "sums", "SHA256SUMS agrees with the manifest";
    Hashes = "hashes", "every file's sha256 and size equal the manifest's";
    FilesMissing = "files.missing", "no listed file is missing";
    FilesUnlisted = "files.unlisted", "no unlisted file is present";
    FilesCounts = "files.counts", "file counts per category equal the manifest's";
    Database = "database", "the backup has a database";
    DatabaseSize = "database.size", "database size equals the manifest's";
    DatabaseOpen = "database.open", "database opens as SQLite";
    DatabaseQuery = "database.query", "SELECT COUNT(*) FROM alembic_version works";
    DatabaseRecordedRevision = "database.recorded-revision", "alembic_version holds the manifest's revision";
    DatabaseRowCounts = "database.row-counts", "tables and row counts equal the manifest's";
    DatabaseSchema = "database.schema", "columns and indexes equal the manifest's";
    MigrationsGraph = "migrations.graph", "migrations form a revision graph with the manifest's heads";
    MigrationsRevision = "migrations.revision", "the database's revision is a head of the migrations";
    PythonCompile = "python.compile", "every Python file compiles";
    GitTag = "git.tag", "git tag points at the manifest's commit";
    RepositoryCheck = "repository.check", "the snapshot restores blob by blob and restic check passes";
}

impl Serialize for CheckId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

/// As it serializes: one of the ids.
impl JsonSchema for CheckId {
    fn schema_name() -> Cow<'static, str> {
        "CheckId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let ids: Vec<&str> = CheckId::ALL.iter().map(|c| c.id()).collect();
        json_schema!({
            "type": "string",
            "enum": ids,
            "description": "The check's id: the part before the dot is its group."
        })
    }
}

impl std::fmt::Display for CheckId {
    /// The id, padded as the format asks (a table's column).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.id())
    }
}

/// One check, as a report lists it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Check {
    pub id: CheckId,
    pub title: &'static str,
    /// `skip` only when skipped by name; `not_applicable` says why in the detail.
    pub status: Status,
    /// What the check found; a failure's first line says what is wrong.
    pub detail: String,
    pub duration_ms: u64,
}

impl Check {
    pub fn pass(id: CheckId, detail: impl Into<String>) -> Check {
        Check::new(id, Status::Pass, detail.into())
    }

    pub fn fail(id: CheckId, detail: impl Into<String>) -> Check {
        Check::new(id, Status::Fail, detail.into())
    }

    pub fn skip(id: CheckId) -> Check {
        Check::new(id, Status::Skip, "skipped by --skip".into())
    }

    pub fn not_applicable(id: CheckId, why: impl Into<String>) -> Check {
        Check::new(id, Status::NotApplicable, format!("not applicable: {}", why.into()))
    }

    /// Pass when `ok`, fail otherwise, with the same detail.
    pub fn from(id: CheckId, ok: bool, detail: impl Into<String>) -> Check {
        Check::new(id, if ok { Status::Pass } else { Status::Fail }, detail.into())
    }

    /// Passes with `ok_detail` when there is no problem, else fails with the
    /// problems, one a line.
    pub fn unless(id: CheckId, problems: &[String], ok_detail: impl Into<String>) -> Check {
        if problems.is_empty() {
            Check::pass(id, ok_detail)
        } else {
            Check::fail(id, problems.join("\n"))
        }
    }

    /// The outcome of a check that could run or not: its error is the
    /// failure's detail.
    pub fn of(id: CheckId, outcome: anyhow::Result<Check>) -> Check {
        outcome.unwrap_or_else(|err| Check::fail(id, format!("{err:#}")))
    }

    fn new(id: CheckId, status: Status, detail: String) -> Check {
        Check { id, title: id.title(), status, detail, duration_ms: 0 }
    }

    /// Times a check: its duration is the time since `started`.
    pub fn since(mut self, started: Instant) -> Check {
        self.duration_ms = started.elapsed().as_millis() as u64;
        self
    }
}

/// The command that made a report of checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Checker {
    VerifyBackup,
    PostCheck,
}

impl Checker {
    pub fn name(self) -> &'static str {
        match self {
            Checker::VerifyBackup => "verify-backup",
            Checker::PostCheck => "post-check",
        }
    }
}

/// A report's overall result: it fails when one check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

/// A report of checks: the document of verify-backup and post-check.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Report {
    pub schema: Version,
    pub command: Checker,
    /// The backup folder (or the repository and label) or the TMWS root.
    pub target: String,
    pub result: Verdict,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub not_applicable: usize,
    // An absent field is left out of the document, never null: the
    // schemas say so (`with`).
    /// The Python interpreter the checks ran, and why it was chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub interpreter: Option<String>,
    /// Where the tree's programs ran: a scratch copy (and what it cost), or
    /// the live tree (`--live`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub programs_ran_on: Option<String>,
    /// Post-check: what it judged (a deploy, the last rollback, or the
    /// tree against its backup).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub judged: Option<String>,
    /// Post-check: writes the confinement refused the service's programs
    /// (program and path), which make the run exit 4, not 1.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub confinement_refused: Vec<String>,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(command: Checker, target: String, checks: Vec<Check>) -> Report {
        let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
        let (passed, failed, skipped, not_applicable) = (
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Skip),
            count(Status::NotApplicable),
        );
        let result = if failed == 0 { Verdict::Pass } else { Verdict::Fail };
        Report {
            schema: Version,
            command,
            target,
            result,
            passed,
            failed,
            skipped,
            not_applicable,
            interpreter: None,
            programs_ran_on: None,
            judged: None,
            confinement_refused: Vec::new(),
            checks,
        }
    }

    pub fn ok(&self) -> bool {
        self.result == Verdict::Pass
    }

    /// `id: first line of the detail` for each failed check.
    pub fn failures(&self) -> Vec<String> {
        let failed = self.checks.iter().filter(|c| c.status == Status::Fail);
        failed.map(|c| format!("{}: {}", c.id, c.detail.lines().next().unwrap_or(""))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_id_names_one_check() {
        let mut ids: Vec<&str> = CheckId::ALL.iter().map(|c| c.id()).collect();
        ids.sort();
        let before = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), before, "an id names two checks");
    }
}
