//! `cargo xtask test`: the suite as a newcomer and CI run it. The system
//! programs the tests use (the runbook's own shell tools for the bench's
//! baseline, util-linux's `script` for a terminal, restic and rclone for
//! the off-site tests, Python's venv module for the tool's virtualenv) are
//! installed when they are missing, as root with apt-get, or else named
//! with the command that installs them. Then cargo-nextest runs the tests
//! with the profile asked (`.config/nextest.toml`), and `cargo test --doc`
//! the `compile_fail` examples of the crates, which nextest does not run.
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
