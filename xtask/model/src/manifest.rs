//! `BACKUP_MANIFEST.txt`: readable by a person, exact for a program, and
//! `SHA256SUMS` beside it so anyone can check a backup with coreutils.
use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use super::{label::Label, schema::Schema};

mod read;

use read::Sections;
pub use read::parse_sums;

use anyhow::{Context, Result, bail};
use schemars::JsonSchema;
use serde::Serialize;

/// The format written. Version 2 added `absent:` and `worktree:` lines,
/// version 3 `schema:` lines; version 4 keeps config files under their
/// path relative to the root (`config/deploy/alembic.ini`), where older
/// versions kept them under their name; version 5 adds files outside the
/// tree (`external`, under their absolute path). Older manifests are still
/// read: every file line says where its file is in the backup.
pub const FORMAT: &str = "tmws-backup/5";
const READABLE: [&str; 5] =
    ["tmws-backup/1", "tmws-backup/2", "tmws-backup/3", "tmws-backup/4", FORMAT];
pub const MANIFEST_FILE: &str = "BACKUP_MANIFEST.txt";
pub const SUMS_FILE: &str = "SHA256SUMS";
/// The line of a backup tag's message that records the manifest's hash.
pub const TAG_MANIFEST_FIELD: &str = "manifest-sha256:";

/// A table and its row count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TableCount {
    pub name: String,
    pub rows: u64,
}

/// How SQLite journals a database: in the file's header, WAL or one of the
/// rollback-journal modes (the manifest writes those `delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JournalMode {
    Wal,
    Delete,
}

impl JournalMode {
    pub fn word(self) -> &'static str {
        match self {
            JournalMode::Wal => "wal",
            JournalMode::Delete => "delete",
        }
    }
}

impl std::fmt::Display for JournalMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

impl std::str::FromStr for JournalMode {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<JournalMode> {
        match text {
            "wal" => Ok(JournalMode::Wal),
            "delete" => Ok(JournalMode::Delete),
            other => bail!("unknown journal mode {other:?} (wal or delete)"),
        }
    }
}

/// What a backed-up file is; each kind has its folder in the backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Database,
    Config,
    Migration,
    Critical,
    /// A file outside the tree (`external_files`): its original path is absolute.
    External,
}

impl Kind {
    pub const ALL: [Kind; 5] =
        [Kind::Database, Kind::Config, Kind::Migration, Kind::Critical, Kind::External];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Database => "database",
            Kind::Config => "config",
            Kind::Migration => "migration",
            Kind::Critical => "critical",
            Kind::External => "external",
        }
    }

    /// The folder of the runbook's Appendix A layout.
    pub fn folder(self) -> &'static str {
        match self {
            Kind::Database => "database",
            Kind::Config => "config",
            Kind::Migration => "migrations/alembic_versions",
            Kind::Critical => "critical_files",
            Kind::External => "external",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == text)
            .with_context(|| format!("unknown kind {text:?}"))
    }
}

/// One file of the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FileEntry {
    pub kind: Kind,
    pub sha256: String,
    pub size: u64,
    pub mode: u32,
    /// Where it is inside the backup folder.
    pub backup_path: String,
    /// Where it belongs in the TMWS tree.
    pub source_path: String,
}

impl FileEntry {
    /// The mode a restore gives the file: the manifest's permission bits,
    /// never setuid, setgid or sticky (a manifest that asks for them is
    /// not believed that far).
    pub fn restored_mode(&self) -> u32 {
        self.mode & 0o777
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Manifest {
    pub format: String,
    pub label: Label,
    pub created: String,
    pub tool: String,
    pub git_commit: Option<String>,
    pub git_branch: Option<String>,
    /// The tag taken with the backup (none with `--no-tag` or without git).
    pub git_tag: Option<String>,
    /// The database's `alembic_version` rows (one, or several on unmerged heads).
    pub database_revision: Vec<String>,
    pub migration_heads: Vec<String>,
    pub migration_count: usize,
    pub sqlite_version: String,
    pub journal_mode: JournalMode,
    pub tables: Vec<TableCount>,
    /// Each table's columns and indexes (empty in manifests before version 3).
    pub schema: Schema,
    pub files: Vec<FileEntry>,
    /// Files of the profile that did not exist when the backup was taken (a
    /// test file the deploy adds): a rollback removes them into the bundle.
    pub absent: Vec<Absent>,
    /// Tracked files whose working-tree content differed from the commit
    /// when the backup was taken: their sha256 (null: deleted).
    pub worktree: Vec<WorktreeChange>,
}

/// A file of the profile that was absent at backup time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Absent {
    pub kind: Kind,
    pub source_path: String,
}

/// An uncommitted change to a tracked file at backup time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct WorktreeChange {
    pub sha256: Option<String>,
    pub path: String,
}

impl Manifest {
    /// Whether `path`'s uncommitted state now (its sha256, `None` when
    /// deleted) is the one the backup recorded: a change the backup explains.
    pub fn records_change(&self, path: &str, now: Option<&str>) -> bool {
        self.worktree.iter().any(|w| w.path == path && w.sha256.as_deref() == now)
    }

    pub fn files_of(&self, kind: Kind) -> impl Iterator<Item = &FileEntry> {
        self.files.iter().filter(move |f| f.kind == kind)
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.files_of(kind).count()
    }

    /// Original paths of `kind` that did not exist at backup time.
    pub fn absent_of(&self, kind: Kind) -> impl Iterator<Item = &str> {
        self.absent.iter().filter(move |a| a.kind == kind).map(|a| a.source_path.as_str())
    }

    pub fn database(&self) -> Option<&FileEntry> {
        self.files_of(Kind::Database).next()
    }

    /// The revision a rollback returns to (the single database revision).
    pub fn revision(&self) -> Option<&str> {
        match self.database_revision.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let none = || "-".to_string();
        let _ = writeln!(out, "# TMWS backup manifest. Check the files without any tool:");
        let _ = writeln!(out, "#   cd <this folder> && sha256sum -c {SUMS_FILE}");
        let _ = writeln!(out, "format: {}", self.format);
        let _ = writeln!(out, "label: {}", self.label);
        let _ = writeln!(out, "created: {}", self.created);
        let _ = writeln!(out, "tool: {}", self.tool);
        let _ = writeln!(out, "git-commit: {}", self.git_commit.clone().unwrap_or_else(none));
        let _ = writeln!(out, "git-branch: {}", self.git_branch.clone().unwrap_or_else(none));
        let _ = writeln!(out, "git-tag: {}", self.git_tag.clone().unwrap_or_else(none));
        let _ = writeln!(out, "database-revision: {}", self.database_revision.join(" "));
        let _ = writeln!(out, "migration-heads: {}", self.migration_heads.join(" "));
        let _ = writeln!(out, "migration-count: {}", self.migration_count);
        let _ = writeln!(out, "sqlite-version: {}", self.sqlite_version);
        let _ = writeln!(out, "journal-mode: {}", self.journal_mode);
        let _ = writeln!(out, "\n# table: name rows");
        for table in &self.tables {
            let _ = writeln!(out, "table: {} {}", table.name, table.rows);
        }
        if !self.schema.is_empty() {
            let _ = writeln!(
                out,
                "\n# schema: table columns (name TYPE, NOT NULL, PK n) and indexes (tab-separated)"
            );
            for line in self.schema.lines() {
                let _ = writeln!(out, "{line}");
            }
        }
        let _ = writeln!(
            out,
            "\n# file: kind sha256 size mode backup-path original-path (tab-separated)"
        );
        for f in &self.files {
            let _ = writeln!(
                out,
                "file:\t{}\t{}\t{}\t{:04o}\t{}\t{}",
                f.kind.name(),
                f.sha256,
                f.size,
                f.mode,
                f.backup_path,
                f.source_path
            );
        }
        if !self.absent.is_empty() {
            let _ = writeln!(out, "\n# absent: kind original-path (did not exist at backup time)");
            for a in &self.absent {
                let _ = writeln!(out, "absent:\t{}\t{}", a.kind.name(), a.source_path);
            }
        }
        if !self.worktree.is_empty() {
            let _ = writeln!(
                out,
                "\n# worktree: sha256 path (uncommitted changes to tracked files at backup time; - deleted)"
            );
            for w in &self.worktree {
                let _ =
                    writeln!(out, "worktree:\t{}\t{}", w.sha256.as_deref().unwrap_or("-"), w.path);
            }
        }
        out
    }

    pub fn parse(text: &str) -> Result<Manifest> {
        let Sections { mut fields, tables, schema, files, absent, worktree } =
            Sections::read(text)?;
        let mut take = |key: &str| fields.remove(key).with_context(|| format!("missing `{key}:`"));
        let format = take("format")?;
        if !READABLE.contains(&format.as_str()) {
            bail!("unknown manifest format {format:?} (this tool reads {})", READABLE.join(", "));
        }
        let optional = |value: String| (value != "-").then_some(value);
        let words = |value: String| value.split_whitespace().map(String::from).collect();
        let manifest = Manifest {
            format,
            label: take("label")?.parse().map_err(|e: String| anyhow::anyhow!(e))?,
            created: take("created")?,
            tool: take("tool")?,
            git_commit: optional(take("git-commit")?),
            git_branch: optional(take("git-branch")?),
            git_tag: optional(take("git-tag")?),
            database_revision: words(take("database-revision")?),
            migration_heads: words(take("migration-heads")?),
            migration_count: take("migration-count")?.parse().context("migration-count")?,
            sqlite_version: take("sqlite-version")?,
            journal_mode: take("journal-mode")?.parse()?,
            tables,
            schema,
            files,
            absent,
            worktree,
        };
        if let Some(key) = fields.keys().next() {
            bail!("unknown field `{key}:`");
        }
        let before_5 = READABLE[..4].contains(&manifest.format.as_str());
        if before_5 && manifest.count(Kind::External) > 0 {
            bail!(
                "{} has no files outside the tree: an `external` file line needs {FORMAT}",
                manifest.format
            );
        }
        Ok(manifest)
    }

    /// What is wrong with the paths a restore reads and writes: each file's
    /// place in the backup and in the tree, and each absent file's in the
    /// tree, must be relative and stay inside its folder; a file outside
    /// the tree is in `external/` of the backup, and its original path is
    /// absolute and plain (no `..`). One line a path; verify-backup and a
    /// plan from a snapshot's manifest judge them here.
    pub fn path_problems(&self) -> Vec<String> {
        use xtask_fs::files::check_relative;
        let files = self.files.iter().flat_map(|f| {
            let backup = check_relative(&f.backup_path).err();
            let context = format!("the original path of {}", f.backup_path);
            let original = match f.kind {
                Kind::External => external_problem(f),
                _ => check_relative(&f.source_path).err(),
            };
            backup.into_iter().chain(original.map(|e| e.context(context)))
        });
        let absent = self.absent.iter().filter_map(|a| {
            check_relative(&a.source_path).err().map(|e| e.context("an absent file's path"))
        });
        files.chain(absent).map(|e| format!("{e:#}")).collect()
    }

    /// `SHA256SUMS` in coreutils' format, for every file including the manifest.
    pub fn sums(&self, manifest_sha: &str) -> String {
        let mut out = String::new();
        for f in &self.files {
            let _ = writeln!(out, "{}  {}", f.sha256, f.backup_path);
        }
        let _ = writeln!(out, "{manifest_sha}  {MANIFEST_FILE}");
        out
    }
}

/// What is wrong with a file outside the tree's two paths, if anything.
fn external_problem(f: &FileEntry) -> Option<anyhow::Error> {
    if let Some(why) = xtask_fs::external::not_plain(&f.source_path) {
        return Some(anyhow::anyhow!("path {:?}: {why}", f.source_path));
    }
    let folder = Path::new(Kind::External.folder());
    let inside = Path::new(&f.backup_path).strip_prefix(folder).ok();
    (inside != Path::new(&f.source_path).strip_prefix("/").ok()).then(|| {
        anyhow::anyhow!(
            "it is kept at {}, not under {}/ at its own path",
            f.backup_path,
            folder.display()
        )
    })
}

/// Lines that say how two lists of tables differ; empty when they agree.
pub fn table_differences(actual: &[TableCount], expected: &[TableCount]) -> Vec<String> {
    let actual: BTreeMap<&str, u64> = actual.iter().map(|t| (t.name.as_str(), t.rows)).collect();
    let expected: BTreeMap<&str, u64> =
        expected.iter().map(|t| (t.name.as_str(), t.rows)).collect();
    let mut out = Vec::new();
    for (name, rows) in &expected {
        match actual.get(name) {
            None => out.push(format!("table {name} is missing")),
            Some(found) if found != rows => {
                out.push(format!("table {name} has {found} rows, expected {rows}"))
            }
            Some(_) => {}
        }
    }
    for name in actual.keys().filter(|n| !expected.contains_key(*n)) {
        out.push(format!("table {name} is not expected"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small generator: the same manifests every run, each different.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (self.0 >> 33) % n
        }

        fn word(&mut self) -> String {
            let letters = b"abcdefghij_-.0123456789";
            let len = 1 + self.below(12) as usize;
            (0..len).map(|_| letters[self.below(letters.len() as u64) as usize] as char).collect()
        }

        fn sha(&mut self) -> String {
            (0..64).map(|_| char::from_digit(self.below(16) as u32, 16).unwrap()).collect()
        }

        fn path(&mut self) -> String {
            (0..1 + self.below(3))
                .map(|_| format!("d{}", self.word()))
                .collect::<Vec<_>>()
                .join("/")
        }
    }

    fn manifest(g: &mut Lcg, version: usize) -> Manifest {
        let optional = |g: &mut Lcg| (g.below(3) > 0).then(|| g.sha()[..40].to_string());
        let mut files: Vec<FileEntry> = (0..g.below(6))
            .map(|_| FileEntry {
                kind: Kind::ALL[g.below(4) as usize],
                sha256: g.sha(),
                size: g.below(1 << 40),
                mode: 0o600 + g.below(0o200) as u32,
                backup_path: g.path(),
                source_path: g.path(),
            })
            .collect();
        for _ in 0..g.below(3) * u64::from(version >= 5) {
            let path = g.path();
            let (sha256, size) = (g.sha(), g.below(1 << 20));
            let (backup_path, source_path) = (format!("external/{path}"), format!("/{path}"));
            let kind = Kind::External;
            files.push(FileEntry { kind, sha256, size, mode: 0o640, backup_path, source_path });
        }
        let v2 = version >= 2;
        Manifest {
            format: READABLE[version - 1].to_string(),
            label: format!("l{}", g.word())
                .replace("..", "_")
                .trim_end_matches('.')
                .parse()
                .unwrap(),
            created: "2026-11-30T03:00:00Z".into(),
            tool: "xtask 0.1.0".into(),
            git_commit: optional(g),
            // A word may be "-", which the manifest writes for "none".
            git_branch: (g.below(2) == 0).then(|| format!("b{}", g.word())),
            git_tag: (g.below(2) == 0).then(|| format!("t{}", g.word())),
            database_revision: (0..g.below(3)).map(|_| g.word()).collect(),
            migration_heads: (0..1 + g.below(2)).map(|_| g.word()).collect(),
            migration_count: g.below(40) as usize,
            sqlite_version: "3.50.2".into(),
            journal_mode: if g.below(2) == 0 { JournalMode::Wal } else { JournalMode::Delete },
            tables: (0..g.below(5))
                .map(|_| TableCount { name: g.word(), rows: g.below(1 << 30) })
                .collect(),
            schema: Schema(
                (0..g.below(4) * u64::from(version >= 3))
                    .map(|_| {
                        let columns: Vec<String> =
                            (0..1 + g.below(3)).map(|_| format!("{} TEXT", g.word())).collect();
                        let index = format!("index ix_{} UNIQUE (a, b)", g.word());
                        let table = crate::schema::Table { columns, indexes: vec![index] };
                        (g.word(), table)
                    })
                    .collect(),
            ),
            files,
            absent: (0..g.below(3) * u64::from(v2))
                .map(|_| Absent { kind: Kind::Critical, source_path: g.path() })
                .collect(),
            worktree: (0..g.below(3) * u64::from(v2))
                .map(|_| WorktreeChange { sha256: optional(g).map(|_| g.sha()), path: g.path() })
                .collect(),
        }
    }

    #[test]
    fn a_manifest_reads_back_as_it_was_written_in_every_format() {
        let mut g = Lcg(7);
        for round in 0..300 {
            let version = 1 + round % READABLE.len();
            let written = manifest(&mut g, version);
            let text = written.render();
            let read = Manifest::parse(&text).unwrap_or_else(|e| panic!("{e:#}\n{text}"));
            assert_eq!(read, written, "round {round}:\n{text}");
            let sums = parse_sums(&written.sums(&"0".repeat(64))).unwrap();
            assert_eq!(sums.len(), written.files.len() + 1);
        }
    }

    #[test]
    fn a_damaged_manifest_says_what_and_where() {
        let text = manifest(&mut Lcg(3), READABLE.len()).render();
        let cases = [
            (
                text.replace(&format!("format: {FORMAT}"), "format: tmws-backup/9"),
                "unknown manifest format",
            ),
            (text.replace("journal-mode: ", "journal-mode: x"), "journal mode"),
            (text.replace("label: ", "label: a,"), "invalid label"),
            (text.replace("tool: ", "created: again\ntool: "), "appears twice"),
            (text.replace("sqlite-version: ", "sqlite-versio: "), "sqlite-version"),
            (format!("{text}file:\tdatabase\tnothex\t1\t0644\ta\tb\n"), "is not a sha256"),
            (format!("{text}bogus line\n"), "expected `key: value`"),
            (
                text.replace(&format!("format: {FORMAT}"), "format: tmws-backup/4")
                    + &format!("file:\texternal\t{}\t1\t0644\texternal/x\t/x\n", "0".repeat(64)),
                "needs tmws-backup/5",
            ),
        ];
        for (damaged, says) in cases {
            let err = format!("{:#}", Manifest::parse(&damaged).unwrap_err());
            assert!(err.contains(says), "{says:?} not in {err:?}");
        }
    }

    #[test]
    fn every_path_that_climbs_out_or_starts_at_the_root_is_named() {
        let mut manifest = manifest(&mut Lcg(5), 3);
        assert!(manifest.path_problems().is_empty(), "{:?}", manifest.path_problems());
        let file = |backup: &str, source: &str| FileEntry {
            kind: Kind::Critical,
            sha256: "0".repeat(64),
            size: 1,
            mode: 0o644,
            backup_path: backup.into(),
            source_path: source.into(),
        };
        manifest.files.push(file("critical_files/a.py", "../../../../etc/cron.d/a"));
        manifest.files.push(file("../elsewhere/b.py", "src/b.py"));
        manifest.absent.push(Absent { kind: Kind::Config, source_path: "/etc/cron.d/c".into() });
        let external =
            |backup: &str, source: &str| FileEntry { kind: Kind::External, ..file(backup, source) };
        manifest.files.push(external("external/etc/svc/svc.cfg", "/etc/svc/svc.cfg"));
        manifest.files.push(external("external/etc/x", "/etc/../etc/x"));
        manifest.files.push(external("external/etc/cron.d/y", "/etc/svc/y"));
        let mut problems = manifest.path_problems();
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems[2].contains("\"/etc/../etc/x\": the path must be plain"), "{problems:?}");
        assert!(problems[3].contains("not under external/ at its own path"), "{problems:?}");
        problems.swap(2, 4);
        assert!(problems[0].starts_with("the original path of critical_files/a.py: path \"../../../../etc/cron.d/a\" must be relative"));
        assert!(problems[1].starts_with("path \"../elsewhere/b.py\" must be relative"));
        assert!(problems[2].starts_with("an absent file's path: path \"/etc/cron.d/c\""));
    }

    #[test]
    fn tables_differ_by_name_and_by_rows() {
        let t = |name: &str, rows| TableCount { name: name.into(), rows };
        let lines = table_differences(&[t("a", 1), t("c", 3)], &[t("a", 2), t("b", 0)]);
        assert_eq!(
            lines,
            ["table a has 1 rows, expected 2", "table b is missing", "table c is not expected"]
        );
        assert!(table_differences(&[t("a", 1)], &[t("a", 1)]).is_empty());
    }
}
