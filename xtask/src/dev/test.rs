//! `cargo xtask test`: the suite as a newcomer and CI run it. The system
//! programs the tests use (the runbook's own shell tools for the bench's
//! baseline, util-linux's `script` for a terminal, restic and rclone for
//! the off-site tests, Python's venv module for the tool's virtualenv) are
//! installed when they are missing, as root with apt-get, or else named
//! with the command that installs them. Then cargo-nextest runs the tests
//! with the profile asked (`.config/nextest.toml`), and `cargo test --doc`
//! the `compile_fail` examples of the crates, which nextest does not run.
//!
//! The everyday run keeps the trees its tests make in memory, in a folder
//! of its own in /dev/shm when that is a tmpfs with room: on a disk, the
//! journal's work for the trees' fsyncs and small files was about a third
//! of the suite's time, none of it what the tests check. CI's profile keeps
//! them on the disk, where users' trees are.
use anyhow::Result;
use xshell::{Shell, cmd};

use crate::cli::{flags, ui};
use xtask_base::exit::{failed, usage};
use xtask_fs::outside;

/// Each program the tests run, and the Debian package that has it.
const PROGRAMS: [(&str, &str); 10] = [
    ("sqlite3", "sqlite3"),
    ("curl", "curl"),
    ("script", "bsdutils"),
    ("flock", "util-linux"),
    ("setsid", "util-linux"),
    ("setpriv", "util-linux"),
    ("mkfifo", "coreutils"),
    ("mount", "mount"),
    ("restic", "restic"),
    ("rclone", "rclone"),
];

impl flags::Test {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let workspace = crate::dev::workspace("test")?;
        let _d = sh.push_dir(&workspace);
        install_what_is_missing(sh)?;
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let profile = self.profile.as_deref().unwrap_or("default");
        if !["default", "ci"].contains(&profile) {
            return Err(usage(format!("--profile {profile}: use default or ci")));
        }
        let filters = &self.filters;
        let in_memory = if profile == "default" { trees_in_memory() } else { None };
        let _env = in_memory.as_ref().map(|folder| {
            ui::note(&format!("the tests' trees are in memory, in {}", folder.path().display()));
            (sh.push_env("TMPDIR", folder.path()), sh.push_env("XTASK_TEST_SCRATCH", folder.path()))
        });
        let ran = if outside::on_path("cargo-nextest").is_some() {
            cmd!(sh, "{cargo} nextest run --workspace --profile {profile} {filters...}").run()
        } else {
            ui::note(
                "cargo-nextest is not installed: cargo test runs every test instead (`cargo install cargo-nextest --locked` runs them side by side, as CI does)",
            );
            cmd!(sh, "{cargo} test --workspace --tests {filters...} -- --test-threads 4").run()
        };
        ran.map_err(|err| failed(format!("the tests failed: {err}")))?;
        if filters.is_empty() {
            cmd!(sh, "{cargo} test --workspace --doc --quiet")
                .run()
                .map_err(|err| failed(format!("the examples in the docs failed: {err}")))?;
        }
        Ok(())
    }
}

/// Room the everyday run asks of /dev/shm before it keeps its trees there:
/// the largest test makes a database of about 200 MiB and copies of it,
/// and eight tests run at once.
const ROOM_IN_MEMORY: u64 = 4 << 30;

/// A folder of this run's in /dev/shm (0711: the tests that run a program
/// as another user give it a folder inside), when /dev/shm is a tmpfs with
/// room; removed when the run ends (or by the next run, after a kill).
fn trees_in_memory() -> Option<xtask_fs::scratch::Scratch> {
    let shm = std::path::Path::new("/dev/shm");
    if outside::tmpfs_free(shm)? < ROOM_IN_MEMORY {
        return None;
    }
    xtask_fs::leftovers::sweep_in(shm);
    xtask_fs::scratch::Scratch::new_in(shm, "tmws-tests", 0o711).ok()
}

/// Installs the Debian packages of the programs that are missing, when this
/// runs as root where apt-get is; else stops (exit 2) naming them.
fn install_what_is_missing(sh: &Shell) -> Result<()> {
    let mut packages: Vec<&str> = PROGRAMS
        .iter()
        .filter(|(program, _)| outside::on_path(program).is_none())
        .map(|(_, package)| *package)
        .collect();
    let venv = cmd!(sh, "python3 -c 'import venv'").quiet().ignore_stderr().run().is_ok();
    if !venv {
        packages.push("python3-venv");
    }
    packages.sort();
    packages.dedup();
    if packages.is_empty() {
        return Ok(());
    }
    let root = xtask_fs::sys::running_as_root();
    if !root || outside::on_path("apt-get").is_none() {
        return Err(usage(format!(
            "the tests need programs this machine lacks; install them first: sudo apt-get install {}",
            packages.join(" ")
        )));
    }
    ui::note(&format!("installing what the tests need: {}", packages.join(" ")));
    let _e = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
    cmd!(sh, "apt-get update -qq").run()?;
    cmd!(sh, "apt-get install -y -qq {packages...}").run()?;
    Ok(())
}
