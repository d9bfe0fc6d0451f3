//! Integration tests: the real `xtask` binary on temporary sandboxes, with
#![allow(clippy::disallowed_methods, clippy::disallowed_macros, clippy::disallowed_types)]
//! real SQLite, real git and the real alembic, pytest and uvicorn.
//!
//! One test binary (as in xshell's own tests), a module per area. Sandboxes
//! are built once per stage through the binary itself and copied for each
//! test, so every test owns a fresh tree.
use predicates::str::contains;
mod attacks;
mod backup;
mod backup_paths;
mod bench;
mod breakage;
mod check_copies;
mod checkouts;
mod command_line;
mod confinement;
mod convergence;
mod diagnose;
mod dist;
mod drill;
mod external_files;
mod files_row;
mod flask_migrate;
mod forensics;
mod forgery;
mod git_clean;
mod git_writes;
mod half_applied;
mod identity;
mod init_proof;
mod junit;
mod losses;
mod manual_restore;
mod offsite;
mod offsite_attacks;
mod ownership;
mod post_check;
mod preconditions;
mod profile_keys;
mod progress;
mod python_helper;
mod readme;
mod recovery;
mod rollback;
mod sandbox;
mod schema;
mod schema_facts;
mod scratch;
mod sidecars;
mod signals;
mod tidy;
mod variants;
mod verify_backup;
mod version_locations;
mod wsgi;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use assert_cmd::{assert::AssertResult, prelude::*};
use predicates::Predicate;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// The xtask binary with a clean environment for our variables. Its
/// scratch folders go under cargo's test scratch folder, not /tmp: a run
/// that a test aborts on purpose leaves nothing in the machine's /tmp.
pub fn xtask() -> Command {
    let mut cmd = Command::cargo_bin("xtask").expect("cargo builds xtask for its tests");
    with_test_env(&mut cmd);
    cmd
}

/// The environment every program a test starts gets (the xtask, or a
/// program that starts it: `script`, `setpriv`, `bash`): no variable of
/// ours from the caller, no colour, this process's scratch folder as
/// `TMPDIR`, and the tests' cache folder for the virtualenv.
pub fn with_test_env(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("TMWS_ROOT")
        .env_remove("TMWS_PYTHON")
        .env("NO_COLOR", "1")
        .env("TMPDIR", scratch_of_this_process())
        .env("XDG_CACHE_HOME", test_cache())
        .env("XDG_STATE_HOME", test_cache().with_file_name("test-state"))
}

/// The tests' cache folder (the virtualenvs the xtask bootstraps): one for
/// every test run, in the workspace's target/, never the user's own.
pub fn test_cache() -> PathBuf {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    target.canonicalize().unwrap_or(target).join("test-cache")
}

/// The xtask binary cargo built for the tests, for commands that run it
/// through another program (`timeout`, `setpriv`).
pub fn xtask_path() -> PathBuf {
    assert_cmd::cargo::cargo_bin("xtask")
}

/// A finished run of the binary, with everything a failing test should show.
pub struct Run {
    /// The command line, shown when a test fails.
    pub command: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The tree it ran on (`--root`), listed when a test fails.
    pub root: Option<PathBuf>,
    /// What assert_cmd's assertions are made on.
    output: std::process::Output,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\nexit code {}\n--- stdout\n{}\n--- stderr\n{}",
            self.command, self.code, self.stdout, self.stderr
        )?;
        // As ripgrep's tests do: the tree the command ran in, to see what it did.
        if let Some(root) = &self.root {
            write!(f, "\n--- the tree, without .git\n{}", tree_listing(root))?;
        }
        Ok(())
    }
}

/// Every path below `root` but `.git`, with file sizes, for a failing test.
fn tree_listing(root: &Path) -> String {
    let mut lines = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name() == ".git" {
                continue;
            }
            let name = path.strip_prefix(root).unwrap_or(&path).display().to_string();
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {
                    lines.push(format!("{name}/"));
                    stack.push(path);
                }
                Ok(m) if m.file_type().is_symlink() => lines.push(format!("{name} -> (link)")),
                Ok(m) => lines.push(format!("{name} ({} bytes)", m.len())),
                Err(_) => {}
            }
        }
    }
    lines.sort();
    lines.join("\n")
}

pub fn run(cmd: &mut Command) -> Run {
    let command = format!("{cmd:?}");
    let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    let root =
        args.iter().position(|a| a == "--root").and_then(|i| args.get(i + 1)).map(PathBuf::from);
    Run::of(command, root, cmd.assert().get_output().clone())
}

/// Assertions on a run, made by assert_cmd with predicates; a failure shows
/// assert_cmd's account of it, then the command and a listing of its tree.
impl Run {
    /// A run from a command's output, for commands run another way.
    pub fn of(command: String, root: Option<PathBuf>, output: std::process::Output) -> Run {
        Run {
            command,
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            root,
            output,
        }
    }

    #[track_caller]
    fn holds(&self, result: AssertResult) -> &Run {
        if let Err(err) = result {
            panic!("{err}\n{self:?}");
        }
        self
    }

    /// The exit code; -1 is a run killed by a signal (a crash the test provoked).
    #[track_caller]
    pub fn exits(&self, code: i32) -> &Run {
        if code == -1 {
            let killed = self.output.clone().assert().try_failure().map(|_| ());
            assert!(killed.is_ok() && self.output.status.code().is_none(), "not killed:\n{self:?}");
            return self;
        }
        self.holds(self.output.clone().assert().try_code(code))
    }

    #[track_caller]
    pub fn stdout_has(&self, expected: impl Predicate<str>) -> &Run {
        self.holds(self.output.clone().assert().try_stdout(expected))
    }

    #[track_caller]
    pub fn stderr_has(&self, expected: impl Predicate<str>) -> &Run {
        self.holds(self.output.clone().assert().try_stderr(expected))
    }

    /// The whole run as a person reads it, for a snapshot (as uv's tests
    /// render theirs): success, exit code, stdout, stderr.
    pub fn rendered(&self) -> String {
        format!(
            "success: {}\nexit_code: {}\n----- stdout -----\n{}\n----- stderr -----\n{}",
            self.code == 0,
            self.code,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// A rollback that the test-only fault hook aborts at `fault` (`before:N`,
/// `after:N` or `inside:NAME`), as a crash would.
#[track_caller]
pub fn crash_rollback(root: &Path, scenario: &str, fault: &str) {
    let crashed = run(xtask()
        .args(["rollback", "--scenario", scenario, "--yes", "--root"])
        .arg(root)
        .env("XTASK_ROLLBACK_FAULT", fault));
    crashed.exits(-1);
}

/// `flock` holding the lock file `lock` (for 30 s, or until killed),
/// returned once it holds it: another run in progress, as the tool sees it.
pub fn hold_lock(lock: &Path) -> std::process::Child {
    let holder = Command::new("flock").arg("-o").arg(lock).args(["sleep", "30"]).spawn().unwrap();
    signals::wait_for("flock to hold the lock", || {
        let free = Command::new("flock").args(["-n", "-o"]).arg(lock).arg("true").status();
        !free.unwrap().success()
    });
    holder
}

/// Runs `xtask ARGS --root ROOT` and asserts it was refused: the exit code,
/// the message on stderr, and the tree exactly as it was.
#[track_caller]
pub fn assert_refused(root: &Path, args: &[&str], code: i32, message: &str) {
    let before = digest(root);
    let result = run_in(root, args);
    result.exits(code).stderr_has(contains(message));
    assert_eq!(digest(root), before, "{args:?} changed the tree");
}

/// Runs `ENV xtask ARGS --root ROOT` on a pseudo-terminal (util-linux
/// `script`, which puts stdout and stderr together on its stdout), with
/// `answer` typed in.
pub fn on_a_terminal(root: &Path, args: &str, answer: &str, env: &str) -> Run {
    let command = format!("{env} {} {args} --root {}", xtask_path().display(), root.display());
    let mut child = with_test_env(&mut Command::new("script"))
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
    Run::of(command, Some(root.to_path_buf()), child.wait_with_output().unwrap())
}

/// Runs `xtask ARGS --root ROOT` and returns the result.
pub fn run_in(root: &Path, args: &[&str]) -> Run {
    run(xtask().args(args).arg("--root").arg(root))
}

/// Asserts an exit code and shows the whole run when it is another.
#[track_caller]
pub fn assert_code(run: &Run, code: i32) {
    run.exits(code);
}

/// A fresh copy of a sandbox at `stage`; the template is built once per test
/// process with `xtask sandbox`.
pub fn sandbox(stage: &str) -> TempDir {
    from_template(stage, |template| {
        let result = run(xtask().args(["sandbox", "--stage", stage, "--out"]).arg(template));
        assert_code(&result, 0);
    })
}

/// A fresh copy of a sandbox of a fixture variant (fixtures/variants/) at
/// `stage`, its template built once per test process.
pub fn sandbox_variant(stage: &str, variant: &str) -> TempDir {
    from_template(&format!("{stage}-{variant}"), |template| {
        let mut cmd = xtask();
        cmd.args(["sandbox", "--stage", stage, "--variant", variant, "--out"]).arg(template);
        assert_code(&run(&mut cmd), 0);
    })
}

/// A fresh copy of the tree `build` makes at the path it is given. The
/// tree is built once for every test process of a run (cargo test's
/// threads, nextest's processes) and kept for later runs while the xtask
/// binary, the fixtures and the Python requirements stay the same: a file
/// lock makes the others wait for the one that builds it.
pub fn from_template(name: &str, build: impl FnOnce(&Path)) -> TempDir {
    let template = templates_dir().join(name);
    if !template.is_dir() {
        let lock = fs::File::create(templates_dir().join(format!("{name}.lock"))).unwrap();
        lock.lock().unwrap();
        if !template.is_dir() {
            let building = templates_dir().join(format!("{name}.building-{}", std::process::id()));
            let _ = fs::remove_dir_all(&building);
            build(&building);
            pack_git_objects(&building);
            fs::rename(&building, &template).unwrap();
        }
    }
    let copy = TempDir::new().unwrap();
    copy_tree(&template, &copy.path().join("tmws"));
    copy
}

/// Packs a template's loose git objects into one pack: every copy of it
/// then makes about 60 folders and 70 files fewer, which was a sixth of the
/// suite's time. What git reads from the tree stays the same.
fn pack_git_objects(tree: &Path) {
    if !tree.join(".git").is_dir() {
        return;
    }
    for args in [&["repack", "-a", "-d", "-q"][..], &["prune-packed", "-q"]] {
        let status = Command::new("git").args(args).current_dir(tree).status().unwrap();
        assert!(status.success(), "git {args:?} in {}", tree.display());
    }
}

/// The templates of this build: a folder named after what they are made
/// of (the xtask binary, the fixtures, the Python requirements), under
/// cargo's folder for test scratch. Folders of other builds go once a day
/// has passed since they were made.
pub fn templates_dir() -> &'static Path {
    static TEMPLATES: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = base.join(format!("templates-{}", &template_key()[..16]));
        fs::create_dir_all(&dir).unwrap();
        let day = std::time::Duration::from_secs(24 * 3600);
        for entry in fs::read_dir(base).unwrap().flatten() {
            let old =
                entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
            let other = entry.file_name().to_string_lossy().starts_with("templates-");
            if other && entry.path() != dir && old.is_some_and(|age| age > day) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        dir
    })
}

/// What the templates are made of: the xtask binary (its size and time,
/// which every build changes), every file under fixtures/, and the Python
/// requirements.
fn template_key() -> String {
    let mut hasher = Sha256::new();
    let binary = fs::metadata(xtask_path()).unwrap();
    hasher.update(format!("{} {:?}", binary.len(), binary.modified().unwrap()).as_bytes());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    hasher.update(fs::read(workspace.join("xtask/python-requirements.txt")).unwrap());
    hasher.update(digest(&workspace.join("fixtures")).as_bytes());
    format!("{:x}", hasher.finalize())
}

/// This test process's scratch folder (the xtask's `TMPDIR`), under cargo's
/// folder for test scratch, or the run's folder in memory that `cargo
/// xtask test` names (`XTASK_TEST_SCRATCH`, a folder of that run's own);
/// those of test processes that ended go first.
pub fn scratch_of_this_process() -> &'static Path {
    static SCRATCH: OnceLock<PathBuf> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        let base = std::env::var_os("XTASK_TEST_SCRATCH")
            .map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from);
        let base = base.as_path();
        if let Ok(entries) = fs::read_dir(base) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let stale = name.strip_prefix("scratch-").is_some_and(|pid| {
                    pid.parse::<u32>().is_ok_and(|p| !Path::new(&format!("/proc/{p}")).exists())
                });
                if stale {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(format!("scratch-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// The tree inside a sandbox copy.
pub fn root(dir: &TempDir) -> PathBuf {
    dir.path().join("tmws")
}

pub fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(status.success(), "cp -a {} {}", from.display(), to.display());
}

/// A digest of every file below `dir` (paths, contents and modes), to prove
/// that a command changed nothing.
pub fn digest(dir: &Path) -> String {
    let mut hasher = Sha256::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut files = Vec::new();
    while let Some(next) = stack.pop() {
        let Ok(entries) = fs::read_dir(&next) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    for file in files {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::symlink_metadata(&file).unwrap();
        hasher.update(file.strip_prefix(dir).unwrap().to_string_lossy().as_bytes());
        hasher.update(meta.permissions().mode().to_le_bytes());
        hasher.update(fs::read(&file).unwrap_or_default());
    }
    format!("{:x}", hasher.finalize())
}

/// Every file below `dir`, sorted; with its size unless `hide_size` says so.
pub fn listing(dir: &Path, hide_size: impl Fn(&str) -> bool) -> String {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in fs::read_dir(&next).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
                continue;
            }
            let name = entry.path().strip_prefix(dir).unwrap().display().to_string();
            let size = entry.metadata().unwrap().len().to_string();
            let size = if hide_size(&name) { "[SIZE]".to_string() } else { size };
            files.push(format!("{name} ({size})"));
        }
    }
    files.sort();
    files.join("\n")
}

/// Filters for snapshots: what varies between runs and machines.
pub fn filters(root: &Path) -> Vec<(String, String)> {
    vec![
        (regex_escape(&root.display().to_string()), "[ROOT]".into()),
        (r#"[^\s"]*/tmws-xtask/venv/[0-9a-f]+"#.into(), "[VENV]".into()),
        (r"/tmp/\.tmp[A-Za-z0-9]+".into(), "[TMP]".into()),
        (r"\b[0-9a-f]{64}\b".into(), "[SHA256]".into()),
        (r"\b[0-9a-f]{40}\b".into(), "[COMMIT]".into()),
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z".into(), "[TIME]".into()),
        (r"\d{8}T\d{6}Z-\d+".into(), "[STAMP]-[PID]".into()),
        (r"\d{8}T\d{6}Z".into(), "[STAMP]".into()),
        (r" *\b\d+ms\b".into(), " [MS]".into()),
        (r#""duration_ms": \d+"#.into(), r#""duration_ms": "[MS]""#.into()),
        (r"\b\d+\.\d+s\b".into(), "[S]".into()),
        (r"sqlite-version: [0-9.]+".into(), "sqlite-version: [VERSION]".into()),
        (r"127\.0\.0\.1:\d+".into(), "127.0.0.1:[PORT]".into()),
        (r"\b[0-9a-f]{12}\b(\))".into(), "[HASH]$1".into()),
        // A short commit id before its summary: the sandbox's commits
        // change with the profile they commit.
        (r"\b[0-9a-f]{12}( \([^)]*:)".into(), "[SHORT COMMIT]$1".into()),
        (r"pid \d+".into(), "pid [PID]".into()),
        (r"\d+ files, [0-9.]+ MiB \(\d+ reflinked\), \[S\]".into(), "[COPY COST]".into()),
        // A long `$ command` line is named by its length, which depends on
        // the paths in it.
        (r"\[a line of \d+ characters".into(), "[a line of [N] characters".into()),
    ]
}

pub fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| if "\\.+*?()|[]{}^$".contains(c) { format!("\\{c}") } else { c.to_string() })
        .collect()
}

/// A whole run (exit code, stdout and stderr) as one snapshot, with the
/// shared filters.
#[macro_export]
macro_rules! snapshot_run {
    ($root:expr, $run:expr) => {{
        $crate::snapshot!($root, $run.rendered());
    }};
}

/// `insta::assert_snapshot!` with the shared filters for a sandbox root.
#[macro_export]
macro_rules! snapshot {
    ($root:expr, $value:expr) => {{
        let filters = $crate::filters($root);
        let filters: Vec<(&str, &str)> = filters.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        insta::with_settings!({ filters => filters, prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!($value);
        });
    }};
}
