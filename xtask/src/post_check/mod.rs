//! `cargo xtask post-check`: the runbook's "Verification Tests" and its
//! post-rollback checklist, as checks with exact results for CI and people.
mod pytest;
mod server;

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    thread,
    time::Instant,
};

use anyhow::{Context, Result};
use xshell::Shell;

use crate::{
    backup::DEFAULT_LABEL,
    exit::{failed, usage},
    flags, fsutil, git,
    manifest::{Kind, MANIFEST_FILE, Manifest},
    migrations::{Graph, revision_files},
    process,
    profile::{Tree, check_label},
    python::Python,
    report::{Check, Format, Report, Status},
    sqlite,
    verify_backup::table_differences,
};

pub use server::free_port;

/// Every check id, in report order. `--only`/`--skip` take an id or its
/// group (the part before the dot: `database` selects `database.*`).
pub const CHECK_IDS: [&str; 16] = [
    "database.file",
    "database.tables",
    "database.revision",
    "database.integrity",
    "migrations.current",
    "migrations.history",
    "migrations.count",
    "imports",
    "tests.unit",
    "tests.integration",
    "server.start",
    "server.health",
    "git.clean",
    "git.head",
    "files.restored",
    "forensics",
];

impl flags::PostCheck {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let format = Format::parse(self.format.as_deref())?;
        let tree = Tree::locate(self.root.as_deref())?;
        let options = Options {
            label: self.label.unwrap_or_else(|| DEFAULT_LABEL.into()),
            only: self.only,
            skip: self.skip,
            expect_revision: self.expect_revision,
            port: self.port,
            python: self.python,
        };
        let report = post_check(sh, &tree, &options)?;
        report.emit(format, self.junit.as_deref(), true)?;
        if let Some(path) = &self.checklist {
            fs::write(path, checklist(&tree, &report))
                .with_context(|| format!("write the checklist to {}", path.display()))?;
        }
        if !report.ok() {
            return Err(failed(format!("{} of the post-rollback checks failed", report.failed)));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub label: String,
    pub only: Vec<String>,
    pub skip: Vec<String>,
    pub expect_revision: Option<String>,
    pub port: Option<u16>,
    pub python: Option<PathBuf>,
}

/// What the checks compare against: the backup's manifest, or the code.
struct Expected {
    manifest: Option<(PathBuf, Manifest)>,
    revision: Option<String>,
    /// Why there is no expected revision, when there is none.
    missing: String,
}

pub fn post_check(sh: &Shell, tree: &Tree, o: &Options) -> Result<Report> {
    check_label(&o.label)?;
    for id in o.only.iter().chain(&o.skip) {
        if !CHECK_IDS
            .iter()
            .any(|known| known == id || known.split('.').next() == Some(id.as_str()))
        {
            return Err(usage(format!(
                "unknown check {id:?}; the checks are: {}",
                CHECK_IDS.join(", ")
            )));
        }
    }
    let selected = |id: &str| {
        let group = id.split('.').next().unwrap_or(id);
        let named = |list: &[String]| list.iter().any(|n| n == id || n == group);
        (o.only.is_empty() || named(&o.only)) && !named(&o.skip)
    };
    let expected = expectations(tree, o)?;
    // Outside the tree: pytest's XML report and the server's log.
    let scratch = fsutil::ScratchDir::new("tmws-post-check")?;
    let python = Python::find(sh, Some(&tree.root), o.python.as_deref());

    // The slow checks start first, each in its own thread with its own shell;
    // the quick ones run meanwhile.
    let port = match o.port {
        Some(port) => port,
        None if tree.profile.port != 0 => tree.profile.port,
        None => free_port()?,
    };
    let wants_tests = selected("tests.unit") || selected("tests.integration");
    let wants_server = selected("server.start") || selected("server.health");
    let tests = python.as_ref().ok().filter(|_| wants_tests).map(|py| {
        let (py, tree, scratch) = (py.clone(), tree.clone(), scratch.path().to_path_buf());
        thread::spawn(move || {
            let sh = Shell::new()?;
            let started = Instant::now();
            let checks = pytest::run(&sh, &py, &tree, &scratch)?;
            Ok::<_, anyhow::Error>(checks.into_iter().map(|c| c.since(started)).collect::<Vec<_>>())
        })
    });
    let server = python.as_ref().ok().filter(|_| wants_server).map(|py| {
        let (py, tree, scratch) = (py.clone(), tree.clone(), scratch.path().to_path_buf());
        let revision = expected.revision.clone();
        thread::spawn(move || {
            let sh = Shell::new()?;
            Ok::<_, anyhow::Error>(server::check(
                &sh,
                &py,
                &tree,
                port,
                revision.as_deref(),
                &scratch,
            ))
        })
    });

    let mut checks = Vec::new();
    let mut add = |id: &str, run: &mut dyn FnMut() -> Check| {
        if selected(id) {
            let started = Instant::now();
            checks.push(run().since(started));
        }
    };
    let db = tree.database();
    add("database.file", &mut || database_file(tree));
    add("database.tables", &mut || database_tables(&db, &expected));
    add("database.revision", &mut || database_revision(&db, &expected));
    add("database.integrity", &mut || database_integrity(&db));
    let py = python.as_ref().map_err(|e| format!("{e:#}"));
    add("migrations.current", &mut || alembic_current(sh, py.clone(), tree, &db));
    add("migrations.history", &mut || alembic_history(sh, py.clone(), tree));
    add("migrations.count", &mut || migrations_count(tree, &expected));
    add("imports", &mut || imports(sh, py.clone(), tree));

    let python_missing = |id: &str, title: &str| {
        Check::fail(
            id,
            title,
            format!("no Python to run it: {}", py.clone().err().unwrap_or_default()),
        )
    };
    if wants_tests {
        let results = match tests {
            Some(handle) => {
                handle.join().expect("the pytest thread does not panic").unwrap_or_else(|err| {
                    vec![
                        Check::fail("tests.unit", "unit tests pass", format!("{err:#}")),
                        Check::fail(
                            "tests.integration",
                            "integration tests pass",
                            format!("{err:#}"),
                        ),
                    ]
                })
            }
            None => vec![
                python_missing("tests.unit", "unit tests pass"),
                python_missing("tests.integration", "integration tests pass"),
            ],
        };
        checks.extend(results.into_iter().filter(|c| selected(&c.id)));
    }
    if wants_server {
        let outcome = match server {
            Some(handle) => handle.join().expect("the server thread does not panic"),
            None => Err(anyhow::anyhow!("{}", py.clone().err().unwrap_or_default())),
        };
        match outcome {
            Ok(outcome) => checks
                .extend([outcome.start, outcome.health].into_iter().filter(|c| selected(&c.id))),
            Err(err) => {
                checks.push(Check::fail(
                    "server.start",
                    "server starts without errors",
                    format!("{err:#}"),
                ));
            }
        }
    }
    let mut add = |id: &str, run: &mut dyn FnMut() -> Check| {
        if selected(id) {
            let started = Instant::now();
            checks.push(run().since(started));
        }
    };
    add("git.clean", &mut || git_clean(tree));
    add("git.head", &mut || git_head(tree, &o.label));
    add("files.restored", &mut || files_restored(tree, &expected));
    add("forensics", &mut || forensics(tree));
    for id in CHECK_IDS {
        if !selected(id)
            && !o.skip.is_empty()
            && o.skip.iter().any(|s| s == id || id.starts_with(&format!("{s}.")))
        {
            checks.push(Check::skip(id, title_of(id)));
        }
    }
    checks.sort_by_key(|c| CHECK_IDS.iter().position(|id| *id == c.id).unwrap_or(usize::MAX));
    Ok(Report::new("post-check", tree.root.display().to_string(), checks))
}

fn title_of(id: &str) -> &'static str {
    match id {
        "database.file" => "database file exists",
        "database.tables" => "tables equal the backup's",
        "database.revision" => "alembic_version is the expected revision",
        "database.integrity" => "PRAGMA integrity_check is ok",
        "migrations.current" => "alembic current agrees with the database",
        "migrations.history" => "alembic history runs",
        "migrations.count" => "revision files equal the backup's count",
        "imports" => "critical modules import and compile",
        "tests.unit" => "unit tests pass",
        "tests.integration" => "integration tests pass",
        "server.start" => "server starts without errors",
        "server.health" => "health endpoint responds",
        "git.clean" => "git state is clean",
        "git.head" => "HEAD is on the rollback branch or the tag",
        "files.restored" => "config and critical files equal the backup's",
        "forensics" => "a forensics bundle exists",
        _ => "",
    }
}

fn expectations(tree: &Tree, o: &Options) -> Result<Expected> {
    let dir = tree.backup(&o.label);
    let manifest = match fs::read_to_string(dir.join(MANIFEST_FILE)) {
        Ok(text) => Some((
            dir,
            Manifest::parse(&text).map_err(|e| usage(format!("the backup's manifest: {e:#}")))?,
        )),
        Err(_) => None,
    };
    let (revision, missing) = match (&o.expect_revision, &manifest) {
        (Some(rev), _) if rev == "head" => {
            let heads = Graph::load(&tree.migrations()).map(|g| g.heads()).unwrap_or_default();
            match heads.as_slice() {
                [one] => (Some(one.clone()), String::new()),
                _ => (None, format!("the migrations have {} heads, not one", heads.len())),
            }
        }
        (Some(rev), _) => (Some(rev.clone()), String::new()),
        (None, Some((_, m))) => {
            (m.revision().map(String::from), "the backup records several revisions".into())
        }
        (None, None) => (
            None,
            format!(
                "no backup {} and no --expect-revision: pass --expect-revision head or a revision",
                o.label
            ),
        ),
    };
    Ok(Expected { manifest, revision, missing })
}

fn database_file(tree: &Tree) -> Check {
    let title = title_of("database.file");
    match fs::metadata(tree.database()) {
        Ok(m) => Check::pass(
            "database.file",
            title,
            format!("{} ({} bytes)", tree.profile.database, m.len()),
        ),
        Err(err) => {
            Check::fail("database.file", title, format!("{}: {err}", tree.profile.database))
        }
    }
}

fn open(db: &Path) -> Result<rusqlite::Connection, String> {
    sqlite::open_live_read_only(db).map_err(|e| format!("{e:#}"))
}

fn database_tables(db: &Path, expected: &Expected) -> Check {
    let title = title_of("database.tables");
    let Some((_, manifest)) = &expected.manifest else {
        return Check::fail("database.tables", title, "needs a backup manifest to compare with");
    };
    let names = open(db).and_then(|c| sqlite::table_names(&c).map_err(|e| format!("{e:#}")));
    match names {
        Ok(names) => {
            let actual: Vec<sqlite::TableCount> =
                names.iter().map(|n| sqlite::TableCount { name: n.clone(), rows: 0 }).collect();
            let wanted: Vec<sqlite::TableCount> = manifest
                .tables
                .iter()
                .map(|t| sqlite::TableCount { name: t.name.clone(), rows: 0 })
                .collect();
            let differences = table_differences(&actual, &wanted);
            Check::from(
                "database.tables",
                title,
                differences.is_empty(),
                if differences.is_empty() {
                    format!("{} tables: {}", names.len(), names.join(", "))
                } else {
                    differences.join("\n")
                },
            )
        }
        Err(err) => Check::fail("database.tables", title, err),
    }
}

fn database_revision(db: &Path, expected: &Expected) -> Check {
    let title = title_of("database.revision");
    let Some(revision) = &expected.revision else {
        return Check::fail("database.revision", title, expected.missing.clone());
    };
    match open(db).and_then(|c| sqlite::alembic_revisions(&c).map_err(|e| format!("{e:#}"))) {
        Ok(revs) => Check::from(
            "database.revision",
            title,
            revs == [revision.clone()],
            format!("{}, expected {revision}", revs.join(" ")),
        ),
        Err(err) => Check::fail("database.revision", title, err),
    }
}

fn database_integrity(db: &Path) -> Check {
    let title = title_of("database.integrity");
    match open(db).and_then(|c| sqlite::integrity_check(&c).map_err(|e| format!("{e:#}"))) {
        Ok(rows) if rows == ["ok"] => Check::pass("database.integrity", title, "ok"),
        Ok(rows) => Check::fail(
            "database.integrity",
            title,
            rows.into_iter().take(5).collect::<Vec<_>>().join("\n"),
        ),
        Err(err) => Check::fail("database.integrity", title, err),
    }
}

fn alembic_current(sh: &Shell, python: Result<&Python, String>, tree: &Tree, db: &Path) -> Check {
    let title = title_of("migrations.current");
    let python = match python {
        Ok(p) => p,
        Err(e) => return Check::fail("migrations.current", title, format!("no Python: {e}")),
    };
    let out = match python.alembic(sh, tree, &["current"]) {
        Ok(out) => out,
        Err(err) => return Check::fail("migrations.current", title, format!("{err:#}")),
    };
    if !out.success() {
        return Check::fail(
            "migrations.current",
            title,
            format!("alembic current failed ({}):\n{}", out.describe_status(), out.tail(6)),
        );
    }
    let shown: BTreeSet<String> =
        out.stdout.lines().filter_map(|l| l.split_whitespace().next()).map(String::from).collect();
    let stored: BTreeSet<String> = open(db)
        .and_then(|c| sqlite::alembic_revisions(&c).map_err(|e| format!("{e:#}")))
        .unwrap_or_default()
        .into_iter()
        .collect();
    Check::from(
        "migrations.current",
        title,
        shown == stored && !shown.is_empty(),
        format!("alembic current: {}", out.stdout.trim()),
    )
}

fn alembic_history(sh: &Shell, python: Result<&Python, String>, tree: &Tree) -> Check {
    let title = title_of("migrations.history");
    let python = match python {
        Ok(p) => p,
        Err(e) => return Check::fail("migrations.history", title, format!("no Python: {e}")),
    };
    match python.alembic(sh, tree, &["history"]) {
        Ok(out) if out.success() => Check::pass(
            "migrations.history",
            title,
            format!("{} revisions listed", out.stdout.lines().count()),
        ),
        Ok(out) => Check::fail(
            "migrations.history",
            title,
            format!("alembic history failed ({}):\n{}", out.describe_status(), out.tail(6)),
        ),
        Err(err) => Check::fail("migrations.history", title, format!("{err:#}")),
    }
}

fn migrations_count(tree: &Tree, expected: &Expected) -> Check {
    let title = title_of("migrations.count");
    let Some((_, manifest)) = &expected.manifest else {
        return Check::fail("migrations.count", title, "needs a backup manifest to compare with");
    };
    match revision_files(&tree.migrations()) {
        Ok(files) => Check::from(
            "migrations.count",
            title,
            files.len() == manifest.migration_count,
            format!(
                "{} revision files (not counting __pycache__ or other files), backup {}",
                files.len(),
                manifest.migration_count
            ),
        ),
        Err(err) => Check::fail("migrations.count", title, format!("{err:#}")),
    }
}

/// The import check on its own, for `diagnose`.
pub fn imports_check(sh: &Shell, python: &Python, tree: &Tree) -> Check {
    imports(sh, Ok(python), tree)
}

/// Imports each critical module and compiles the critical files in one
/// interpreter, without writing bytecode into the tree.
fn imports(sh: &Shell, python: Result<&Python, String>, tree: &Tree) -> Check {
    let title = title_of("imports");
    let python = match python {
        Ok(p) => p,
        Err(e) => return Check::fail("imports", title, format!("no Python: {e}")),
    };
    const CODE: &str = "import importlib, sys, traceback\nbad = 0\nmodules, files = sys.argv[1].split(','), sys.argv[2:]\nfor name in filter(None, modules):\n    try:\n        importlib.import_module(name)\n    except BaseException as error:\n        bad += 1\n        print(f'{name}: {error.__class__.__name__}: {error}')\nfor path in files:\n    try:\n        compile(open(path, 'rb').read(), path, 'exec', dont_inherit=True)\n    except SyntaxError as error:\n        bad += 1\n        print(f'{path}:{error.lineno}: SyntaxError: {error.msg}')\nsys.exit(1 if bad else 0)\n";
    let modules = tree.profile.critical_modules.join(",");
    let files: Vec<&String> =
        tree.profile.critical_files.iter().filter(|f| f.ends_with(".py")).collect();
    let _d = sh.push_dir(&tree.root);
    let cmd = python.tool(sh, tree, "python").args(["-c", CODE]).arg(&modules).args(files);
    match process::run(cmd, crate::python::TOOL_TIMEOUT) {
        Ok(out) if out.success() => Check::pass(
            "imports",
            title,
            format!(
                "{} modules import: {}",
                tree.profile.critical_modules.len(),
                tree.profile.critical_modules.join(", ")
            ),
        ),
        Ok(out) => Check::fail("imports", title, out.tail(8)),
        Err(err) => Check::fail("imports", title, format!("{err:#}")),
    }
}

fn git_clean(tree: &Tree) -> Check {
    let title = title_of("git.clean");
    let Some(repo) = git::open(&tree.root) else {
        return Check::fail(
            "git.clean",
            title,
            format!("{} is not a git repository", tree.root.display()),
        );
    };
    match git::dirty_paths(&repo) {
        Ok(paths) if paths.is_empty() => {
            Check::pass("git.clean", title, "git status: nothing to commit, working tree clean")
        }
        Ok(paths) => Check::fail(
            "git.clean",
            title,
            format!("{} changed or untracked: {}", paths.len(), paths.join(", ")),
        ),
        Err(err) => Check::fail("git.clean", title, format!("{err:#}")),
    }
}

fn git_head(tree: &Tree, label: &str) -> Check {
    let title = title_of("git.head");
    let Some(repo) = git::open(&tree.root) else {
        return Check::fail(
            "git.head",
            title,
            format!("{} is not a git repository", tree.root.display()),
        );
    };
    let (commit, branch) = git::head(&repo);
    let rollback_branch = format!("rollback-{label}");
    let tag = git::tag_commit(&repo, label).map(|o| o.to_string());
    let has_rollback_branch = repo.find_branch(&rollback_branch, git2::BranchType::Local).is_ok();
    let at = format!(
        "HEAD {} on {}",
        commit.as_deref().unwrap_or("none"),
        branch.as_deref().unwrap_or("a detached HEAD")
    );
    if !has_rollback_branch {
        return Check::pass(
            "git.head",
            title,
            format!("no rollback branch {rollback_branch}; {at}"),
        );
    }
    let ok =
        branch.as_deref() == Some(rollback_branch.as_str()) || (tag.is_some() && commit == tag);
    Check::from("git.head", title, ok, at)
}

fn files_restored(tree: &Tree, expected: &Expected) -> Check {
    let title = title_of("files.restored");
    let Some((_, manifest)) = &expected.manifest else {
        return Check::fail("files.restored", title, "needs a backup manifest to compare with");
    };
    let mut differ = Vec::new();
    let entries: Vec<_> =
        manifest.files.iter().filter(|f| matches!(f.kind, Kind::Config | Kind::Critical)).collect();
    for entry in &entries {
        match fsutil::sha256_file(&tree.path(&entry.source_path)) {
            Ok((sha, _)) if sha == entry.sha256 => {}
            Ok(_) => differ.push(format!("{} differs from the backup", entry.source_path)),
            Err(_) => differ.push(format!("{} is missing", entry.source_path)),
        }
    }
    Check::from(
        "files.restored",
        title,
        differ.is_empty(),
        if differ.is_empty() {
            format!("{} files equal the backup's hashes", entries.len())
        } else {
            differ.join("\n")
        },
    )
}

fn forensics(tree: &Tree) -> Check {
    let title = title_of("forensics");
    let bundles: Vec<String> = fs::read_dir(tree.forensics_dir())
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("FAILURE_REPORT.md").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if bundles.is_empty() {
        Check::fail(
            "forensics",
            title,
            "no bundle under forensics/ (cargo xtask forensics writes one)",
        )
    } else {
        Check::pass(
            "forensics",
            title,
            format!(
                "{} bundle(s), latest {}",
                bundles.len(),
                bundles.iter().max().cloned().unwrap_or_default()
            ),
        )
    }
}

/// The runbook's post-rollback checklist, ticked from the real results.
pub fn checklist(tree: &Tree, report: &Report) -> String {
    let passed = |ids: &[&str]| {
        ids.iter().all(|id| report.checks.iter().any(|c| c.id == *id && c.status == Status::Pass))
    };
    let postmortem = ["POSTMORTEM.md", "post-mortem.md", "docs/POSTMORTEM.md"]
        .iter()
        .any(|p| tree.path(p).is_file())
        || fs::read_dir(tree.forensics_dir())
            .map(|d| d.flatten().any(|e| e.path().join("POSTMORTEM.md").is_file()))
            .unwrap_or(false);
    let rows = [
        (passed(&["database.integrity"]), "Database integrity verified (`PRAGMA integrity_check`)"),
        (passed(&["database.revision"]), "Alembic revision matches pre-Phase4"),
        (passed(&["files.restored"]), "All critical files restored"),
        (passed(&["tests.unit"]), "Unit tests pass (100%)"),
        (passed(&["tests.integration"]), "Integration tests pass"),
        (passed(&["server.start"]), "Server starts without errors"),
        (passed(&["server.health"]), "Health endpoint responds"),
        (passed(&["git.clean"]), "Git state is clean (`git status`)"),
        (passed(&["forensics"]), "Backup forensics performed (analyze failure)"),
        (postmortem, "Post-mortem document created"),
    ];
    let mut out = String::from("# Post-Rollback Checklist\n\n");
    let _ = writeln!(
        out,
        "Tree: {}  \nChecked: {}\n",
        tree.root.display(),
        crate::clock::now_rfc3339()
    );
    for (ok, text) in rows {
        let _ = writeln!(out, "- [{}] {text}", if ok { "x" } else { " " });
    }
    out
}
