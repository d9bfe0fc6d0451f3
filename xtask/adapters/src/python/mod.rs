//! The Python side: a pinned virtualenv with alembic, pytest and uvicorn,
//! created on first use and reused, and the tree's tools run through it:
//! alembic through one helper process per command (`session`), pytest and
//! the app as programs of their own.
mod session;

pub use session::{Answer, AppFacts, Connection, OnFirstUse, Scope, Scripts, Session};
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result};
use xshell::{Cmd, Shell, cmd};

use crate::process::{self, Confinement};
use xtask_base::exit::usage;
use xtask_fs::{files::sha256_bytes, outside, unconfined};
use xtask_model::profile::Tree;

const REQUIREMENTS: &str = include_str!("../../../python-requirements.txt");

/// The variable that marks a program with the tree it runs for, so that a
/// later run can find what an earlier one, killed, left behind.
pub const ROOT_MARK: &str = "TMWS_XTASK_ROOT";

/// How long one alembic or python call may take before it is stopped.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// A folder of Python executables: `python`, `alembic`, `pytest`, `uvicorn`.
#[derive(Debug, Clone)]
pub struct Python {
    pub bin: PathBuf,
    /// Why this interpreter was chosen, for reports.
    pub why: String,
}

/// The server check's launcher (`python -c SERVE SPEC HOST PORT`): serves
/// an ASGI or WSGI app, or a factory's, in the service's interpreter.
pub const SERVE: &str = include_str!("serve.py");

impl Python {
    /// Chooses the interpreter, never swapping the service's for ours
    /// without saying so: `--python` or `TMWS_PYTHON` (a virtualenv's
    /// interpreter is used as it is, and must have alembic; a base
    /// interpreter builds our pinned virtualenv), then the tree's own
    /// `.venv` when it has alembic (a check that needs pytest or uvicorn it
    /// lacks says so), then our pinned virtualenv built from `python3`.
    pub fn find(sh: &Shell, root: Option<&Path>, choice: Option<&Path>) -> Result<Python> {
        let choice = choice.map(Path::to_path_buf).or_else(|| {
            std::env::var_os("TMWS_PYTHON").filter(|v| !v.is_empty()).map(PathBuf::from)
        });
        if let Some(interpreter) = choice {
            if let Some(found) =
                Python::service_env(&interpreter, "chosen with --python or TMWS_PYTHON")
            {
                return Ok(found);
            }
            if Python::in_a_virtualenv(&interpreter) {
                return Err(usage(format!(
                    "{} (chosen with --python or TMWS_PYTHON) is a virtualenv's interpreter without alembic: the tool runs alembic in the service's own interpreter, so install alembic there, or choose a base interpreter (python3) to build the tool's own virtualenv, which lacks the service's packages",
                    interpreter.display()
                )));
            }
            return Python::bootstrap(
                sh,
                &interpreter,
                "the pinned virtualenv built from the base interpreter chosen with --python or TMWS_PYTHON",
            );
        }
        let own = root.map(|r| r.join(".venv/bin/python"));
        if let Some(found) =
            own.as_deref().and_then(|p| Python::service_env(p, "the checkout's own .venv"))
        {
            return Ok(found);
        }
        let why = match own.filter(|p| outside::is_file(p)) {
            Some(_) => {
                "the tool's pinned virtualenv, WITHOUT the service's own packages: the checkout's .venv has no alembic"
            }
            None => {
                "the tool's pinned virtualenv: no --python, no TMWS_PYTHON, and no .venv in the checkout"
            }
        };
        Python::bootstrap(sh, Path::new("python3"), why)
    }

    /// A virtualenv's interpreter (a `pyvenv.cfg` one folder above it).
    fn in_a_virtualenv(interpreter: &Path) -> bool {
        interpreter
            .parent()
            .and_then(Path::parent)
            .is_some_and(|env| outside::is_file(env.join("pyvenv.cfg")))
    }

    /// An interpreter whose folder has alembic: the service's own, used as
    /// it is. The `why` names the runbook's tools it lacks.
    fn service_env(interpreter: &Path, why: &str) -> Option<Python> {
        let bin = interpreter.parent()?.to_path_buf();
        let usable = outside::is_file(interpreter) && outside::is_file(bin.join("alembic"));
        let python = Python { bin, why: String::new() };
        let lacks: Vec<&str> =
            ["pytest", "uvicorn"].into_iter().filter(|t| python.lacks(t)).collect();
        let why = match lacks.as_slice() {
            [] => format!("{why}, which has alembic, pytest and uvicorn"),
            lacks => format!(
                "{why}, which has alembic but no {}: the checks that need it say so",
                lacks.join(" and no ")
            ),
        };
        usable.then_some(Python { why, ..python })
    }

    /// Whether the interpreter's folder lacks one of the runbook's tools
    /// (`pytest`, `uvicorn`): the check that needs it fails saying so.
    pub fn lacks(&self, tool: &str) -> bool {
        !outside::is_file(self.bin.join(tool))
    }

    /// `path (why)`, for a report.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.exe("python").display(), self.why)
    }

    fn bootstrap(sh: &Shell, interpreter: &Path, why: &str) -> Result<Python> {
        // The tool's virtualenv lives in root's private cache, where the
        // tree's owner, whom its programs run as, cannot reach.
        if let Some((uid, _)) = xtask_fs::programs_owner::programs_owner() {
            let owner = xtask_fs::sys::user_name(uid);
            return Err(xtask_base::exit::refused(format!(
                "the tree's programs run as its owner, {owner}, since root runs the tool on another user's tree, and the tool's own virtualenv is root's and private ({why}): give the checkout a .venv with alembic that {owner} can run, or pass --python with the interpreter of such a virtualenv. Nothing was changed"
            )));
        }
        let venv = virtualenv(sh, interpreter, REQUIREMENTS, "alembic, pytest and uvicorn")?;
        Ok(Python { bin: venv.join("bin"), why: why.into() })
    }

    pub fn exe(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// A command for a tool of this environment, run inside the tree with the
    /// profile's environment. Bytecode is never written into the tree. The
    /// profile's URL variable names this tree's database whatever the
    /// caller's environment holds (an operator may have exported it for
    /// another instance); only the profile's own `[env]` may say otherwise.
    pub fn tool<'a>(&self, sh: &'a Shell, tree: &Tree, program: &str) -> Cmd<'a> {
        self.tool_on(sh, tree, program, &tree.database_url())
    }

    /// `tool`, with the profile's URL variable naming the database `url`
    /// (a copy the migration works on, a preserved file).
    pub fn tool_on<'a>(&self, sh: &'a Shell, tree: &Tree, program: &str, url: &str) -> Cmd<'a> {
        let exe = self.exe(program);
        let mut cmd = sh
            .cmd(exe)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env(ROOT_MARK, tree.live_root().as_os_str());
        if !tree.profile.database_url_env.is_empty() {
            cmd = cmd.env(&tree.profile.database_url_env, url);
        }
        for (key, value) in &tree.profile.env {
            cmd = cmd.env(key, value);
        }
        cmd
    }
}

/// A virtualenv of `requirements` (pip's format, pinned) built from
/// `interpreter` in the user's cache, once: keyed on the interpreter's real
/// file (python3 -> python3.11), found through PATH as the shell would, and
/// on the requirements, so a new Python, a new pin, or a cache restored on
/// another machine gets its own. `what` names the packages for the note.
/// The sandbox builds a variant's service virtualenv with it too.
pub fn virtualenv(
    sh: &Shell,
    interpreter: &Path,
    requirements: &str,
    what: &str,
) -> Result<PathBuf> {
    let found = match interpreter.components().count() {
        1 => outside::on_path(&interpreter.to_string_lossy()),
        _ => Some(interpreter.to_path_buf()),
    };
    let real = found
        .and_then(|path| outside::canonicalize(path).ok())
        .unwrap_or_else(|| interpreter.to_path_buf());
    let key = sha256_bytes(
        format!("{}\n{}\n{requirements}", interpreter.display(), real.display()).as_bytes(),
    );
    let home = venv_home()?;
    unconfined::private_dir(&home)?;
    let venv = home.join(&key[..16]);
    let ready = venv.join(".ready");
    if outside::is_file(&ready) {
        return Ok(venv);
    }
    // Several xtask processes (parallel tests, two terminals) may start at
    // once: one builds the virtualenv while the others wait for it.
    let _lock = FileLock::acquire(&home.join(".lock"))?;
    if outside::is_file(&ready) {
        return Ok(venv);
    }
    xtask_base::events::note(&format!(
        "Creating the Python virtualenv with {what} in {} (once; it is reused)",
        venv.display()
    ));
    let found = cmd!(sh, "{interpreter} --version").quiet().ignore_stdout().ignore_stderr().run();
    if found.is_err() {
        return Err(usage(format!(
            "no Python interpreter at {}: install Python 3.10 or newer (python3), or pass --python PATH / set TMWS_PYTHON",
            interpreter.display()
        )));
    }
    // venv and pip may write only beneath the virtualenvs' folder.
    let confined = Confinement::ours_beneath(&[&home])?;
    let created = process::run_quiet(
        cmd!(sh, "{interpreter} -m venv --clear {venv}"),
        Duration::from_secs(120),
        Some(&confined),
    );
    if !matches!(&created, Ok(out) if out.success()) {
        return Err(usage(format!(
            "{} could not create a virtualenv in {}: install the venv module (Debian: apt-get install python3-venv)",
            interpreter.display(),
            venv.display()
        )));
    }
    let pinned = venv.join("requirements.txt");
    unconfined::write(&pinned, requirements.as_bytes())?;
    let pip = venv.join("bin/pip");
    let installed = process::run(
        cmd!(sh, "{pip} install --disable-pip-version-check --quiet -r {pinned}"),
        Duration::from_secs(600),
        Some(&confined),
    )?;
    if !installed.success() {
        return Err(usage(format!(
            "pip could not install {what} ({}): check the network access to PyPI or pass --python with a virtualenv that has alembic, pytest and uvicorn\n{}",
            installed.describe_status(),
            installed.tail(5)
        )));
    }
    unconfined::write(&ready, key.as_bytes())?;
    Ok(venv)
}

/// The confinement of a program of the tree: it may write beneath the tree
/// and its own scratch folder, nowhere else.
pub fn confined(tree: &Tree) -> Result<Confinement> {
    Confinement::beneath(&[&tree.root])
}

/// Where our virtualenvs live: the user's cache folder (XDG), so that a
/// binary outside the workspace finds them too; never a shared temporary
/// folder, where another user could have put one first.
fn venv_home() -> Result<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .ok_or_else(|| {
            usage("neither XDG_CACHE_HOME nor HOME is set: the tool keeps its virtualenv in the user's cache folder, never in a shared one; set one of them, or pass --python with a virtualenv that has alembic, pytest and uvicorn")
        })?;
    let ours = cache.join("tmws-xtask");
    unconfined::private_dir(&ours)?;
    Ok(ours.join("venv"))
}

/// An exclusive lock on an open file, held until dropped.
struct FileLock(#[allow(dead_code)] std::fs::File);

impl FileLock {
    fn acquire(path: &Path) -> Result<FileLock> {
        let file = unconfined::create(path)?;
        file.lock().context("lock the virtualenv folder")?;
        Ok(FileLock(file))
    }
}
