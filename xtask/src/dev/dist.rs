//! `cargo xtask dist`: the product's commands as a binary that runs where
//! there is no cargo and no workspace: a release build, packed with README,
//! the documents and the Python requirements into
//! `tmws-xtask-VERSION-linux-ARCH.tar.gz`. The binary embeds what it needs
//! (the requirements; its virtualenv goes to the user's cache folder); the
//! developer tools (sandbox, drill, bench) need the workspace and say so.
use std::path::{Path, PathBuf};

use anyhow::Result;
use xshell::{Shell, cmd};

use super::workspace;
use crate::cli::{
    flags::{self, Format},
    ui,
};
use xtask_base::exit::usage;
use xtask_fs::unconfined;

/// The released binary's name: what its messages call it.
pub const BINARY: &str = "tmws-xtask";

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
            None => {
                let _dir = sh.push_dir(&workspace);
                cmd!(sh, "cargo build --release --package xtask --bin xtask").run()?;
                workspace.join("target/release/xtask")
            }
        };
        let name =
            format!("{BINARY}-{}-linux-{}", env!("CARGO_PKG_VERSION"), std::env::consts::ARCH);
        let tarball = pack(sh, &workspace, &binary, &out, &name)?;
        let size = xtask_fs::files::Identity::of(&tarball).map_or(0, |id| id.size);
        match self.format.unwrap_or_default() {
            Format::Json => ui::document(&serde_json::json!({
                "schema": xtask_model::check::SCHEMA,
                "command": "dist",
                "result": "done",
                "tarball": tarball,
                "binary": format!("{name}/{BINARY}"),
                "size": size,
            }))?,
            Format::Human => ui::line(&format!(
                "wrote {} ({}): unpack it anywhere and run {name}/{BINARY} COMMAND as README says cargo xtask COMMAND",
                tarball.display(),
                xtask_base::units::size(size)
            )),
        }
        Ok(())
    }
}

/// Lays out `name/` (the binary, README, docs, requirements) in a scratch
/// folder and packs it into `out/name.tar.gz`.
fn pack(sh: &Shell, workspace: &Path, binary: &Path, out: &Path, name: &str) -> Result<PathBuf> {
    let scratch = xtask_fs::files::scratch_dir("tmws-dist")?;
    let top = scratch.path().join(name);
    let copy = |from: &Path, to: &Path| -> Result<()> {
        unconfined::create_dir_all(to.parent().expect("a file in the layout"))?;
        unconfined::copy(from, to)
    };
    copy(binary, &top.join(BINARY))?;
    copy(&workspace.join("README.md"), &top.join("README.md"))?;
    copy(&workspace.join("xtask/python-requirements.txt"), &top.join("python-requirements.txt"))?;
    for doc in ["runbook.md", "backup-format.md"] {
        copy(&workspace.join("docs").join(doc), &top.join("docs").join(doc))?;
    }
    let schemas = workspace.join("docs/schema");
    for name in xtask_fs::outside::names(&schemas)? {
        copy(&schemas.join(&name), &top.join("docs/schema").join(&name))?;
    }
    unconfined::create_dir_all(out)?;
    let tarball = out.join(format!("{name}.tar.gz"));
    let from = scratch.path();
    cmd!(sh, "tar --create --gzip --file {tarball} --directory {from} {name}").quiet().run()?;
    Ok(tarball)
}
