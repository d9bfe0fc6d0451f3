//! Fixture variants: the fake TMWS tree with one property of a real
//! service it lacks (an app that migrates when it starts, alembic at the
//! repository's root, a settings class, a strict pytest configuration...).
//! Each is a folder under `fixtures/variants/`: `variant.toml` says which
//! property it reproduces and which paths of the base tree move, `tree/`
//! holds the files laid over the base tree and `phase4/` those laid over
//! the Phase 4 deploy; `untracked` names those of `tree/` never committed,
//! and `requirements` the service's own packages, for its own `.venv`.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;
use xtask_base::exit::usage;
use xtask_fs::files;
use xtask_fs::unconfined;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    #[serde(skip)]
    pub name: String,
    #[serde(skip)]
    dir: PathBuf,
    /// The property of a real service this variant reproduces.
    pub about: String,
    /// Paths of the base tree (and of the Phase 4 deploy) that move, as
    /// `[from, to]`: a folder moves with everything in it. A path only the
    /// deploy has moves when the deploy is laid over the tree.
    #[serde(default)]
    rename: Vec<[String; 2]>,
    /// Paths of the base tree this variant removes.
    #[serde(default)]
    remove: Vec<String>,
    /// Files of `tree/` the service keeps beside its code but never
    /// commits (its settings), without ignoring them: left out of every
    /// commit of the sandbox's history.
    #[serde(default)]
    untracked: Vec<String>,
    /// A file of the variant's folder (pip's format, pinned) naming the
    /// service's own packages: the sandbox gives the tree a `.venv` of them.
    requirements: Option<String>,
}

impl Variant {
    pub fn load(fixtures: &Path, name: &str) -> Result<Variant> {
        let dir = fixtures.join("variants").join(name);
        let file = dir.join("variant.toml");
        let Ok(text) = xtask_fs::outside::read_to_string(&file) else {
            return Err(usage(format!(
                "no fixture variant {name:?}; the variants are: {}",
                Variant::names(fixtures).join(", ")
            )));
        };
        let mut variant: Variant =
            toml::from_str(&text).with_context(|| format!("read {}", file.display()))?;
        variant.name = name.to_string();
        variant.dir = dir;
        Ok(variant)
    }

    /// Every variant's name, sorted.
    pub fn names(fixtures: &Path) -> Vec<String> {
        let mut names: Vec<String> = xtask_fs::outside::names(fixtures.join("variants"))
            .map(|names| names.into_iter().filter_map(|n| n.to_str().map(String::from)).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Where a path of the base tree or the deploy lives in this variant.
    pub fn moved(&self, relative: &Path) -> PathBuf {
        for [from, to] in &self.rename {
            match relative.strip_prefix(from) {
                Ok(rest) if rest.as_os_str().is_empty() => return PathBuf::from(to),
                Ok(rest) => return Path::new(to).join(rest),
                Err(_) => {}
            }
        }
        relative.to_path_buf()
    }

    /// The files this variant keeps out of every commit.
    pub fn untracked(&self) -> impl Iterator<Item = &Path> {
        self.untracked.iter().map(Path::new)
    }

    /// The service's own packages, pinned, when the variant has a
    /// virtualenv of its own.
    pub fn requirements(&self) -> Result<Option<String>> {
        let Some(file) = &self.requirements else { return Ok(None) };
        let path = self.dir.join(file);
        let text = xtask_fs::outside::read_to_string(&path)
            .with_context(|| format!("read {}", path.display()))?;
        Ok(Some(text))
    }

    /// This variant's own files of the Phase 4 deploy, if it has any.
    pub fn deploy_overlay(&self) -> Option<PathBuf> {
        Some(self.dir.join("phase4")).filter(|dir| xtask_fs::outside::is_dir(dir))
    }

    /// Turns the copied base tree at `root` into this variant.
    pub fn apply(&self, root: &Path) -> Result<()> {
        for [from, to] in &self.rename {
            // fixtures/variants/NAME: the base deploy is fixtures/phase4.
            let fixtures = self.dir.parent().and_then(Path::parent).unwrap_or(&self.dir);
            let deployed = fixtures.join("phase4").join(from);
            if xtask_fs::outside::exists(deployed) && !xtask_fs::outside::exists(root.join(from)) {
                continue;
            }
            let target = root.join(to);
            if let Some(parent) = target.parent() {
                unconfined::create_dir_all(parent)?;
            }
            unconfined::rename(root.join(from), &target)?;
        }
        for path in &self.remove {
            unconfined::remove_file(root.join(path))?;
        }
        let overlay = self.dir.join("tree");
        if xtask_fs::outside::is_dir(&overlay) {
            files::copy_tree(&overlay, root)
                .with_context(|| format!("lay variant {} over the tree", self.name))?;
        }
        Ok(())
    }
}
