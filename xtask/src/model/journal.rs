//! The rollback journal: the plan and each step's progress, written before
//! and after every step (staged and renamed), so an interrupted run is seen
//! and can be resumed from where it stopped, and a failed run says so.
use std::{
    io::Read,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{
    fs::files,
    model::{label::Label, profile::Tree, scenario::Scenario},
};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Running, or interrupted while running (a crash, a kill).
    #[default]
    Running,
    /// A step failed and the run stopped; the journal says which and why.
    Failed,
    /// Closed on purpose with `--abandon` (only in the bundle's copy).
    Abandoned,
    /// Finished (only in the bundle's copy).
    Done,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal<S> {
    pub run: String,
    pub scenario: Scenario,
    pub label: Label,
    pub started: String,
    /// The forensics bundle of this run, relative to the root.
    pub bundle: PathBuf,
    pub steps: Vec<S>,
    /// `done[i]`: step `i` finished.
    pub done: Vec<bool>,
    /// The step that started and has not finished (an interruption point).
    pub current: Option<usize>,
    #[serde(default)]
    pub status: RunStatus,
    /// Why the run failed, when it did.
    #[serde(default)]
    pub failure: Option<String>,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("journal.json")
}

impl<S: Serialize + DeserializeOwned> Journal<S> {
    pub fn load(tree: &Tree) -> Result<Option<Journal<S>>> {
        let file = path(&tree.state_dir());
        if tree.fs.kind(&file).unwrap_or(None).is_none() {
            return Ok(None);
        }
        let mut text = String::new();
        tree.fs.open_read(&file)?.read_to_string(&mut text)?;
        Ok(Some(
            serde_json::from_str(&text)
                .with_context(|| format!("read the journal {}", file.display()))?,
        ))
    }

    pub fn save(&self, tree: &Tree) -> Result<()> {
        tree.fs.create_dir_all(&tree.state_dir())?;
        let text = serde_json::to_string_pretty(self)?;
        files::write_atomic(&tree.fs, &path(&tree.state_dir()), text.as_bytes())
            .context("write the journal")
    }

    pub fn begin(&mut self, tree: &Tree, step: usize) -> Result<()> {
        self.current = Some(step);
        self.save(tree)
    }

    pub fn end(&mut self, tree: &Tree, step: usize) -> Result<()> {
        self.done[step] = true;
        self.current = None;
        self.save(tree)
    }

    /// The first step that has not finished.
    pub fn stopped_at(&self) -> usize {
        self.current.or_else(|| self.done.iter().position(|d| !d)).unwrap_or(0)
    }

    /// The run is over (done or abandoned): the journal moves into the run's
    /// bundle as a record.
    pub fn close(&mut self, tree: &Tree, status: RunStatus) -> Result<()> {
        self.status = status;
        let bundle = tree.root.join(&self.bundle);
        let text = serde_json::to_string_pretty(self)?;
        if tree.fs.expect_dir_or_nothing(&bundle)? {
            files::write_atomic(&tree.fs, &bundle.join("journal.json"), text.as_bytes())?;
        }
        tree.fs.remove_file(&path(&tree.state_dir())).context("remove the finished journal")
    }
}
