//! `cargo xtask push` and `pull`: a backup to and from a restic repository.
use anyhow::Result;
use serde::Serialize;
use xshell::Shell;
use xtask_ops::offsite::{pull, push, resolve};

use super::{
    flags::{self, Format},
    ui,
};

impl flags::Push {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let (tree, label, repo) =
            resolve(self.root.as_deref(), self.label.clone(), self.repo.as_deref())?;
        let pushed = push(sh, &tree, &label, &repo, self.python.as_deref())?;
        show(self.format.unwrap_or_default(), "push", &pushed, &pushed.summary())
    }
}

impl flags::Pull {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let (tree, label, repo) =
            resolve(self.root.as_deref(), self.label.clone(), self.repo.as_deref())?;
        let pulled = pull(sh, &tree, &label, &repo, self.python.as_deref())?;
        show(self.format.unwrap_or_default(), "pull", &pulled, &pulled.summary())
    }
}

/// The summary line, or the document: the result's fields beside the
/// schema, the command and `result: done`.
fn show(format: Format, command: &str, result: &impl Serialize, summary: &str) -> Result<()> {
    match format {
        Format::Human => ui::line(summary),
        Format::Json => {
            let mut document = serde_json::json!({
                "schema": xtask_model::check::SCHEMA,
                "command": command,
                "result": "done",
            });
            if let (Some(all), serde_json::Value::Object(fields)) =
                (document.as_object_mut(), serde_json::to_value(result)?)
            {
                all.extend(fields);
            }
            ui::document(&document)?;
        }
    }
    Ok(())
}
