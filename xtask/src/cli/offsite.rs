//! `cargo xtask push` and `pull`: a backup to and from a restic repository.
use anyhow::Result;
use serde::Serialize;
use xshell::Shell;
use xtask_model::check::Version;
use xtask_ops::offsite::{pull, push, resolve};

use super::{
    documents::{PullDocument, PushDocument},
    flags::{self, Format},
    ui,
};

impl flags::Push {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let (tree, label, repo) =
            resolve(self.root.as_deref(), self.label.clone(), self.repo.as_deref())?;
        let pushed = push(sh, &tree, &label, &repo, self.python.as_deref())?;
        let summary = pushed.summary();
        let document = PushDocument { schema: Version, command: "push", result: "done", pushed };
        show(self.format.unwrap_or_default(), &document, &summary)
    }
}

impl flags::Pull {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let (tree, label, repo) =
            resolve(self.root.as_deref(), self.label.clone(), self.repo.as_deref())?;
        let pulled = pull(sh, &tree, &label, &repo, self.python.as_deref())?;
        let summary = pulled.summary();
        let document = PullDocument { schema: Version, command: "pull", result: "done", pulled };
        show(self.format.unwrap_or_default(), &document, &summary)
    }
}

/// The summary line, or the document.
fn show(format: Format, document: &impl Serialize, summary: &str) -> Result<()> {
    match format {
        Format::Human => ui::line(summary),
        Format::Json => ui::document(document)?,
    }
    Ok(())
}
