//! `cargo xtask dist`: the product's commands as a binary that runs where
//! there is no cargo and no workspace: a release build, packed with README,
//! the documents and the Python requirements into
//! `tmws-xtask-VERSION-linux-ARCH.tar.gz`. The binary embeds what it needs
//! (the requirements; its virtualenv goes to the user's cache folder); the
//! developer tools (sandbox, drill, bench) need the workspace and say so.
use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Result;
use xshell::{Shell, cmd};
use xtask_adapters::process::{self, Stream};
use xtask_base::events::Progress;

use super::workspace;
use crate::cli::{
    flags::{self, Format},
    ui,
};
use xtask_base::exit::{failed, usage};
use xtask_fs::unconfined;

/// The released binary's name: what its messages call it.
pub const BINARY: &str = "tmws-xtask";

/// `dist --format json`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct DistDocument {
    pub schema: xtask_model::check::Version,
    #[schemars(extend("const" = "dist"))]
    pub command: &'static str,
    #[schemars(extend("const" = "done"))]
    pub result: &'static str,
    /// The tarball's path.
    pub tarball: PathBuf,
    /// The binary's path inside the tarball.
    pub binary: String,
    /// Bytes of the tarball.
    pub size: u64,
}

impl flags::Dist {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let workspace = workspace("dist")?;
        let out = self.out.clone().unwrap_or_else(|| workspace.join("target/dist"));
        if xtask_fs::outside::exists(&out) && !xtask_fs::outside::is_dir(&out) {
            return Err(usage(format!("--out {}: not a folder", out.display())));
        }
        let binary = match &self.binary {
            Some(binary) if xtask_fs::outside::is_file(binary) => binary.clone(),
            Some(binary) => {
                return Err(usage(format!("--binary {}: not a file", binary.display())));
            }
            None => release_build(sh, &workspace)?,
        };
        let name =
            format!("{BINARY}-{}-linux-{}", env!("CARGO_PKG_VERSION"), std::env::consts::ARCH);
        let tarball = pack(sh, &workspace, &binary, &out, &name)?;
        let size = xtask_fs::files::Identity::of(&tarball).map_or(0, |id| id.size);
        match self.format.unwrap_or_default() {
            Format::Json => ui::document(&DistDocument {
                schema: xtask_model::check::Version,
                command: "dist",
                result: "done",
                tarball,
                binary: format!("{name}/{BINARY}"),
                size,
            })?,
            Format::Human => ui::line(&format!(
                "wrote {} ({}): unpack it anywhere and run {name}/{BINARY} COMMAND as README says cargo xtask COMMAND",
                tarball.display(),
                xtask_base::units::size(size)
            )),
        }
        Ok(())
    }
}

/// A release build that is stuck would still end within this.
const BUILD_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// `cargo build --release`, said to take minutes before it starts, with
/// what it compiles and for how long on the progress line while it runs
/// (cargo's own lines would draw over it: they are read, not shown), and
/// how long it took at the end. Returns the binary it built.
fn release_build(sh: &Shell, workspace: &Path) -> Result<PathBuf> {
    ui::note(
        "building the release binary (cargo build --release): a release build takes minutes, longest the first time, when SQLite and libgit2 are compiled from source",
    );
    let _dir = sh.push_dir(workspace);
    let state = Arc::new(Mutex::new((Build::default(), Some(Progress::timer("release build")))));
    let watch = {
        let state = Arc::clone(&state);
        Box::new(move |line: &str| {
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            let (build, progress) = &mut *state;
            if build.take(line)
                && let Some(progress) = progress
            {
                progress.rename(&build.describe());
                progress.update(0);
            }
        })
    };
    // The clock moves while cargo sits on one crate for a minute.
    let building = Arc::new(AtomicBool::new(true));
    let ticker = std::thread::spawn({
        let (state, building) = (Arc::clone(&state), Arc::clone(&building));
        move || {
            while building.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                if let Some(progress) = &mut state.lock().unwrap_or_else(|e| e.into_inner()).1 {
                    progress.update(0);
                }
            }
        }
    });
    let started = Instant::now();
    let cmd = cmd!(sh, "cargo build --release --package xtask --bin xtask")
        .env("CARGO_TERM_PROGRESS_WHEN", "never")
        .env("CARGO_TERM_COLOR", "never");
    let out = process::run_watching(cmd, BUILD_TIMEOUT, Stream::Stderr, watch);
    building.store(false, Ordering::Relaxed);
    let _ticked = ticker.join();
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(progress) = state.1.take() {
        progress.finish();
    }
    let out = out?;
    if !out.success() {
        return Err(failed(format!(
            "cargo build --release failed ({}):\n{}",
            out.describe_status(),
            out.tail(20)
        )));
    }
    ui::note(&format!(
        "release build done in {:.0} s ({} crates compiled)",
        started.elapsed().as_secs_f64(),
        state.0.compiled
    ));
    Ok(workspace.join("target/release/xtask"))
}

/// What cargo is doing, from the status lines it writes to stderr
/// (`   Compiling libgit2-sys v0.18.0+1.9.0`, right-aligned to 12 columns).
#[derive(Debug, Default)]
struct Build {
    /// Crates whose compiling started.
    compiled: usize,
    /// The latest status: `compiling libgit2-sys`.
    now: Option<String>,
}

impl Build {
    /// Takes one line of cargo's stderr; whether it was a status line.
    /// Anything else (a warning, a compiler's diagnostic) is left alone.
    fn take(&mut self, line: &str) -> bool {
        let status = line.trim_start();
        let Some((verb, rest)) = status.split_once(' ') else { return false };
        let aligned = line.len() - status.len() + verb.len() == 12;
        let word = verb.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && verb.chars().all(|c| c.is_ascii_alphabetic());
        if !(aligned && word) {
            return false;
        }
        if verb == "Compiling" {
            self.compiled += 1;
        }
        let subject = rest.split_whitespace().next().unwrap_or("");
        self.now = Some(format!("{} {subject}", verb.to_lowercase()));
        true
    }

    /// `release build, 31 crates: compiling libgit2-sys`, for the progress line.
    fn describe(&self) -> String {
        match &self.now {
            Some(now) => format!("release build, {} crates: {now}", self.compiled),
            None => "release build".to_string(),
        }
    }
}

/// Lays out `name/` (the binary, README, docs, requirements) in a scratch
/// folder and packs it into `out/name.tar.gz`. Every entry belongs to uid 0
/// and gid 0 with a fixed mode (folders and the binary 0755, the rest 0644):
/// root unpacks a tarball with the owners it records, and must not end up
/// running a binary that the builder's account may rewrite, nor inherit
/// the builder's umask (a 0775 folder).
fn pack(sh: &Shell, workspace: &Path, binary: &Path, out: &Path, name: &str) -> Result<PathBuf> {
    let scratch = xtask_fs::files::scratch_dir("tmws-dist")?;
    let top = scratch.path().join(name);
    let folder = |dir: &Path| -> Result<()> {
        unconfined::create_dir_all(dir)?;
        unconfined::set_mode(dir, 0o755)
    };
    let copy = |from: &Path, to: &Path, mode: u32| -> Result<()> {
        folder(to.parent().expect("a file in the layout"))?;
        unconfined::copy(from, to)?;
        unconfined::set_mode(to, mode)
    };
    copy(binary, &top.join(BINARY), 0o755)?;
    copy(&workspace.join("README.md"), &top.join("README.md"), 0o644)?;
    let requirements = workspace.join("xtask/python-requirements.txt");
    copy(&requirements, &top.join("python-requirements.txt"), 0o644)?;
    for doc in ["runbook.md", "backup-format.md"] {
        copy(&workspace.join("docs").join(doc), &top.join("docs").join(doc), 0o644)?;
    }
    let schemas = workspace.join("docs/schema");
    for name in xtask_fs::outside::names(&schemas)? {
        copy(&schemas.join(&name), &top.join("docs/schema").join(&name), 0o644)?;
    }
    unconfined::create_dir_all(out)?;
    let tarball = out.join(format!("{name}.tar.gz"));
    let from = scratch.path();
    let owned_by_root = ["--owner=0", "--group=0", "--numeric-owner"];
    cmd!(sh, "tar --create --gzip {owned_by_root...} --file {tarball} --directory {from} {name}")
        .quiet()
        .run()?;
    Ok(tarball)
}

#[cfg(test)]
mod tests {
    use super::Build;

    #[test]
    fn cargo_status_lines_become_the_progress_line_and_nothing_else_does() {
        let mut build = Build::default();
        assert_eq!(build.describe(), "release build");
        for line in [
            "warning: unused variable: `x`",
            "  --> xtask/src/main.rs:3:9",
            "error[E0425]: cannot find value `y` in this scope",
            "Compiling without its alignment",
            "",
        ] {
            assert!(!build.take(line), "{line:?} is no status line");
        }
        assert!(build.take("    Updating crates.io index"));
        assert_eq!(build.describe(), "release build, 0 crates: updating crates.io");
        assert!(build.take("   Compiling libc v0.2.177"));
        assert!(build.take("   Compiling libgit2-sys v0.18.2+1.9.1"));
        assert_eq!(build.describe(), "release build, 2 crates: compiling libgit2-sys");
        assert!(build.take("    Finished `release` profile [optimized] target(s) in 2m 41s"));
        assert_eq!(build.compiled, 2);
        assert_eq!(build.describe(), "release build, 2 crates: finished `release`");
    }
}
