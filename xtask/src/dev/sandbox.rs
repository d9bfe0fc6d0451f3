//! `cargo xtask sandbox`: a real TMWS-shaped tree from `fixtures/`, with git
//! history, a database built by the real `alembic upgrade`, and seed data.
use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use git2::{IndexAddOption, Repository, RepositoryInitOptions, Signature, Time};
use xshell::Shell;

use xtask_adapters::python::{Python, Scope, Session};
use xtask_base::exit::usage;
use xtask_fs::files;
use xtask_fs::unconfined;
use xtask_model::{
    label::Label,
    profile::{PROFILE_FILE, Tree},
};
use xtask_ops::backup::{self, BackupOptions};

use crate::{
    cli::documents::Effect,
    cli::flags::{self, Format, Stage},
    cli::ui,
    dev::{seed, variant::Variant},
};

/// `sandbox --format json`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct SandboxDocument {
    pub schema: xtask_model::check::Version,
    #[schemars(extend("const" = "sandbox"))]
    pub command: &'static str,
    pub result: Effect,
    pub dry_run: bool,
    /// The sandbox's folder.
    pub root: PathBuf,
    pub stage: Stage,
    /// The fixture variant it was built as, if any.
    pub variant: Option<String>,
    /// The label of the backup the sandbox holds.
    pub backup: Option<Label>,
}

impl flags::Sandbox {
    pub fn run(self, sh: &Shell) -> Result<()> {
        crate::dev::workspace("sandbox")?;
        let stage = self.stage.unwrap_or(Stage::PrePhase4);
        let json = self.format.unwrap_or_default() == Format::Json;
        // With --format json the lines for people go to stderr.
        let say = |line: &str| if json { ui::note(line) } else { ui::line(line) };
        let variant =
            self.variant.as_deref().map(|v| Variant::load(&fixtures_dir(), v)).transpose()?;
        let result = if self.dry_run {
            check_out_dir(&self.out)?;
            say(&format!(
                "dry run: nothing is written. The sandbox would be {}:",
                self.out.display()
            ));
            say(&format!(
                "  copy      {} and a profile, with a git history of 3 commits",
                fixtures_dir().join("tmws").display()
            ));
            say("  $ alembic upgrade heads, then seed data/tmws.db (WAL mode)");
            if stage != Stage::PrePhase4 {
                say("  backup    backups/pre-phase4 and git tag pre-phase4");
            }
            if stage == Stage::Phase4 {
                say(&format!(
                    "  deploy    {} as a commit, then $ alembic upgrade heads",
                    fixtures_dir().join("phase4").display()
                ));
            }
            Effect::Planned
        } else {
            let started = Instant::now();
            let tree = build(sh, &self.out, stage, self.python.as_deref(), variant.as_ref())?;
            say(&format!(
                "sandbox ready at {} ({}, {:.1}s)",
                tree.root.display(),
                stage.name(),
                started.elapsed().as_secs_f64()
            ));
            if let Some(variant) = &variant {
                say(&format!("variant {}: {}", variant.name, variant.about));
            }
            Effect::Done
        };
        if json {
            let root =
                xtask_fs::outside::canonicalize(&self.out).unwrap_or_else(|_| self.out.clone());
            ui::document(&SandboxDocument {
                schema: xtask_model::check::Version,
                command: "sandbox",
                result,
                dry_run: self.dry_run,
                root,
                stage,
                variant: variant.as_ref().map(|v| v.name.clone()),
                backup: (stage != Stage::PrePhase4).then(Label::pre_deploy),
            })?;
        }
        Ok(())
    }
}

/// What healthy means for the fixture's app: `/health` answers 200 with
/// `"status": "healthy"` and the database's revision.
const FIXTURE_HEALTH: &str = "# What healthy means for this service's /health answer.\nhealth_json = { \"/status\" = \"healthy\" }\nhealth_revision = \"/revision\"\n";

/// The bundled fixtures: the fake TMWS tree and the Phase 4 deployment.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// A sandbox is only built in a new or empty folder.
fn check_out_dir(out: &Path) -> Result<()> {
    if xtask_fs::outside::exists(out) {
        let empty = xtask_fs::outside::names(out).is_ok_and(|names| names.is_empty());
        if !xtask_fs::outside::is_dir(out) || !empty {
            return Err(usage(format!(
                "{} is not an empty folder: the sandbox is only built in a new or empty one",
                out.display()
            )));
        }
    }
    Ok(())
}

/// Builds a sandbox at `out` (missing or empty) up to `stage`.
pub fn build(
    sh: &Shell,
    out: &Path,
    stage: Stage,
    python: Option<&Path>,
    variant: Option<&Variant>,
) -> Result<Tree> {
    check_out_dir(out)?;
    unconfined::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    files::copy_tree(&fixtures_dir().join("tmws"), out).context("copy the fake TMWS tree")?;
    if let Some(variant) = variant {
        variant.apply(out)?;
        service_virtualenv(sh, out, variant, python)?;
    }
    // What `cargo xtask init` writes, and what healthy means here: committed
    // with the service, as README advises.
    // Asked of the service's own alembic environment, as init asks it.
    let interpreter = Python::find(sh, Some(out), python)?.exe("python");
    let ask = xtask_ops::init::Ask { sh, python: Some(&interpreter) };
    let found = xtask_ops::init::propose(Some(out), Some(&ask))?.text;
    // The fixture's own /health; a variant with another route keeps init's.
    let health = if found.contains("health_path = \"/health\"") { FIXTURE_HEALTH } else { "" };
    unconfined::write(out.join(PROFILE_FILE), format!("{found}{health}"))?;
    let tree = Tree::locate(Some(out))?;
    let untracked: Vec<&Path> = variant.into_iter().flat_map(Variant::untracked).collect();
    let repo = init_history(&tree, &untracked).context("create the git history")?;
    let python = Python::find(sh, Some(&tree.root), python)?;
    // One helper for both upgrades (the deploy's too), confined to the tree.
    let writable = [tree.root.as_path()];
    let mut alembic = python.session(sh, &tree, Scope::tree(&tree, &writable))?;

    unconfined::create_dir_all(tree.database().parent().unwrap_or(&tree.root))?;
    upgrade(&mut alembic)?;
    let mut conn = rusqlite::Connection::open(tree.database())?;
    // The service runs its database in WAL mode; so does the sandbox, so the
    // runbook's WAL hazards are real here.
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
    seed::fixture(&mut conn).context("seed the database")?;
    drop(conn);
    if let Some(log) = tree.profile.log_file() {
        let line = "2025-11-21T09:00:00+00:00 startup environment=production\n";
        unconfined::write(tree.path(log), line)?;
    }

    if stage == Stage::PrePhase4 {
        return Ok(tree);
    }
    backup::take(sh, &tree, &BackupOptions::new(Label::pre_deploy()))?;
    if stage == Stage::Phase4 {
        deploy_phase4(&repo, &tree, variant)?;
        upgrade(&mut alembic)?;
    }
    Ok(tree)
}

/// A variant with packages of its own (Flask...) gets a `.venv` as a
/// service keeps one: a link to a virtualenv of them built once in the
/// user's cache, which the tool then runs as the service's interpreter.
fn service_virtualenv(
    sh: &Shell,
    out: &Path,
    variant: &Variant,
    python: Option<&Path>,
) -> Result<()> {
    let Some(requirements) = variant.requirements()? else { return Ok(()) };
    let interpreter = python.unwrap_or(Path::new("python3"));
    let what = format!("the packages of the {} variant", variant.name);
    let venv = xtask_adapters::python::virtualenv(sh, interpreter, &requirements, &what)?;
    unconfined::symlink(venv, out.join(".venv"))
}

fn upgrade(alembic: &mut Session) -> Result<()> {
    let output = alembic.alembic(&["upgrade", "heads"])?.output;
    if !output.success() {
        bail!("alembic upgrade heads failed ({}):\n{}", output.describe_status(), output.tail(10));
    }
    Ok(())
}

/// A short, realistic history with a fixed author and fixed times, so that
/// every sandbox has the same commits. The `untracked` files (a variant's
/// settings) stay out of every commit, as a service keeps them.
fn init_history(tree: &Tree, untracked: &[&Path]) -> Result<Repository> {
    let root = &tree.root;
    let repo = Repository::init_opts(root, RepositoryInitOptions::new().initial_head("main"))?;
    // In the order they were written, whichever folder holds them.
    let mut migrations = tree.revision_files()?;
    migrations.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    let relative = |p: &PathBuf| p.strip_prefix(root).map(Path::to_path_buf);
    let later: Vec<PathBuf> = migrations.iter().map(relative).collect::<Result<_, _>>()?;
    let (_, rest) = later.split_at(later.len().min(4));
    let (second, third) = rest.split_at(rest.len().min(5));
    // Stage everything, then take the later migrations out of the first commit.
    let mut index = repo.index()?;
    index.add_all(["*"], IndexAddOption::DEFAULT, None)?;
    for path in untracked {
        index.remove_path(path)?;
    }
    for path in second.iter().chain(third) {
        index.remove_path(path)?;
    }
    commit(&repo, &mut index, "Service skeleton: tools, categories, verifications", 0)?;
    for path in second {
        index.add_path(path)?;
    }
    commit(&repo, &mut index, "Trust scores and audit log on two branches, merged", 1)?;
    for path in third {
        index.add_path(path)?;
    }
    commit(&repo, &mut index, "Agents, verification confidence and memory entries", 2)?;
    Ok(repo)
}

fn commit(
    repo: &Repository,
    index: &mut git2::Index,
    message: &str,
    day: i64,
) -> Result<git2::Oid> {
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let when = Time::new(1_763_200_000 + day * 86_400, 0);
    let author = Signature::new("TMWS Developer", "dev@tmws.example", &when)?;
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    Ok(repo.commit(Some("HEAD"), &author, &author, message, &tree, &parents)?)
}

/// Applies `fixtures/phase4/` over the tree (where the variant moved its
/// paths) and commits it.
fn deploy_phase4(repo: &Repository, tree: &Tree, variant: Option<&Variant>) -> Result<()> {
    // Only what the deploy brings is committed; a variant's own deploy
    // files come after the base deploy's, over them.
    let mut index = repo.index()?;
    let deploys = [Some(fixtures_dir().join("phase4")), variant.and_then(Variant::deploy_overlay)];
    for deploy in deploys.into_iter().flatten() {
        for relative in files::list_files(&deploy)? {
            let moved = variant.map_or(relative.clone(), |v| v.moved(&relative));
            let to = tree.root.join(&moved);
            unconfined::create_dir_all(to.parent().context("a deployed file has a folder")?)?;
            unconfined::write(&to, xtask_fs::outside::read(deploy.join(&relative))?)?;
            index.add_path(&moved)?;
        }
    }
    commit(repo, &mut index, "Phase 4: tool usage stats, learning feedback, orchestration", 7)?;
    Ok(())
}
