//! A restic repository as a remote: each backup a snapshot tagged `tmws`,
//! `label=…`, `commit=…` and `revision=…`.
use std::path::Path;

use anyhow::Result;
use xshell::Shell;

use super::{Holder, Remote};
use xtask_adapters::restic;
use xtask_base::exit::{refused, usage};
use xtask_model::{
    backup::{MANIFEST_LIMIT, manifest_too_large},
    label::Label,
    manifest::{MANIFEST_FILE, Manifest},
    repository::{Entry, Stored, redacted},
};

pub struct Restic(pub String);

impl Holder for Restic {
    fn name(&self) -> String {
        redacted(&self.0)
    }

    fn entries(&self, sh: &Shell) -> Result<Vec<Entry>> {
        restic::snapshots(sh, &self.0)
    }

    fn forget(&self, sh: &Shell, entries: &[&Entry]) -> Result<()> {
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        restic::forget(sh, &self.0, &ids)
    }
}

impl Remote for Restic {
    fn store(&self, sh: &Shell, dir: &Path, manifest: &Manifest) -> Result<Stored> {
        restic::push(sh, &self.0, dir, manifest)
    }

    fn fetch(&self, sh: &Shell, label: &Label, target: &Path) -> Result<String> {
        restic::restore_latest(sh, &self.0, label, target)
    }

    fn manifest(&self, sh: &Shell, label: &Label) -> Result<(String, String)> {
        let newest = restic::snapshots(sh, &self.0)?
            .into_iter()
            .rev()
            .find(|entry| entry.label == label.as_str())
            .ok_or_else(|| {
                usage(format!("the repository {} holds no snapshot of backup {label}", self.name()))
            })?;
        let text = restic::dump(sh, &self.0, &newest.id, MANIFEST_FILE, MANIFEST_LIMIT)?
            .ok_or_else(|| {
                refused(format!(
                    "snapshot {} in {}: {}",
                    newest.id,
                    self.name(),
                    manifest_too_large()
                ))
            })?;
        Ok((newest.id, text))
    }

    fn check(&self, sh: &Shell) -> Result<()> {
        restic::check_structure(sh, &self.0)
    }
}
