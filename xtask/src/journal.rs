//! The rollback journal: the plan and each step's progress, written before
//! and after every step (staged and renamed), so an interrupted run is seen
//! and can be resumed from where it stopped.
use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::fsutil;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal<S> {
    pub run: String,
    pub scenario: String,
    pub label: String,
    pub started: String,
    /// The forensics bundle of this run, relative to the root.
    pub bundle: PathBuf,
    pub steps: Vec<S>,
    /// `done[i]`: step `i` finished.
    pub done: Vec<bool>,
    /// The step that started and has not finished (an interruption point).
    pub current: Option<usize>,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("journal.json")
}

impl<S: Serialize + DeserializeOwned> Journal<S> {
    pub fn load(state_dir: &Path) -> Result<Option<Journal<S>>> {
        let file = path(state_dir);
        match fs::read_to_string(&file) {
            Ok(text) => Ok(Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("read the journal {}", file.display()))?,
            )),
            Err(err) if fsutil::is_not_found(&err) => Ok(None),
            Err(err) => Err(err).with_context(|| format!("read {}", file.display())),
        }
    }

    pub fn save(&self, state_dir: &Path) -> Result<()> {
        fs::create_dir_all(state_dir)?;
        let text = serde_json::to_string_pretty(self)?;
        fsutil::write_atomic(&path(state_dir), text.as_bytes()).context("write the journal")
    }

    pub fn begin(&mut self, state_dir: &Path, step: usize) -> Result<()> {
        self.current = Some(step);
        self.save(state_dir)
    }

    pub fn end(&mut self, state_dir: &Path, step: usize) -> Result<()> {
        self.done[step] = true;
        self.current = None;
        self.save(state_dir)
    }

    /// The run is over: the journal moves into the run's bundle as a record.
    pub fn close(&self, state_dir: &Path, root: &Path) -> Result<()> {
        let bundle = root.join(&self.bundle);
        let text = serde_json::to_string_pretty(self)?;
        if bundle.is_dir() {
            fs::write(bundle.join("journal.json"), text)?;
        }
        fs::remove_file(path(state_dir)).context("remove the finished journal")
    }
}
