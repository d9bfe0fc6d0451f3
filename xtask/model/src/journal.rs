//! The rollback journal: the plan and each step's progress, written before
//! and after every step (staged and renamed), so an interrupted run is seen
//! and can be resumed from where it stopped, and a failed run says so.
use std::{
    io::Read,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{advice, label::Label, profile::Tree, scenario::Scenario, sealed};
use xtask_base::exit::{Kind, with_next};
use xtask_fs::files;

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

/// What the state folder holds.
pub enum Peek<S> {
    None,
    Found(Journal<S>),
    /// A journal file that cannot be read, and why.
    Unreadable(String),
}

/// What the journal's seal names it: bound to its tree while the run is
/// unfinished (another tree's plan never runs here); once the run is over,
/// its record in the bundle is not (a tree moved or copied keeps it).
const KIND: &str = "rollback journal";
const FINISHED: &str = "finished rollback journal";

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("journal.json")
}

impl<S: Serialize + DeserializeOwned> Journal<S> {
    /// The journal of an unfinished run, if there is one. One that cannot be
    /// read (a garbled file, a link, a FIFO) is an interrupted run too (exit
    /// 5), whose way out `--abandon` takes.
    pub fn load(tree: &Tree) -> Result<Option<Journal<S>>> {
        match Journal::peek(tree) {
            Peek::None => Ok(None),
            Peek::Found(journal) => Ok(Some(journal)),
            Peek::Unreadable(why) => {
                let abandon = advice::abandon_unreadable(&tree.root);
                Err(with_next(
                    Kind::Interrupted,
                    format!(
                        "{why}. An earlier rollback left it so; `{abandon}` keeps it in forensics/ and closes the run, leaving the tree as it is"
                    ),
                    abandon,
                ))
            }
        }
    }

    /// What the state folder holds: no journal, a journal, or a file that is
    /// not one (and why).
    pub fn peek(tree: &Tree) -> Peek<S> {
        let file = path(&tree.state_dir());
        if tree.fs.kind(&file).unwrap_or(None).is_none() {
            return Peek::None;
        }
        let mut text = String::new();
        let read = tree.fs.open_read(&file).and_then(|mut f| Ok(f.read_to_string(&mut text)?));
        match read.and_then(|_| sealed::open(KIND, &tree.root, &text)) {
            Ok(journal) => Peek::Found(journal),
            Err(err) => Peek::Unreadable(format!(
                "the rollback journal {} cannot be read ({err:#})",
                file.display()
            )),
        }
    }

    pub fn save(&self, tree: &Tree) -> Result<()> {
        tree.fs.create_dir_all(&tree.state_dir())?;
        let text = sealed::seal(KIND, &tree.root, self)?;
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

    /// The scenario of the newest finished run, from the journals sealed
    /// in the forensics bundles; `None` when no run finished here.
    pub fn last_done(tree: &Tree) -> Option<Scenario> {
        Journal::<S>::last_done_run(tree).map(|journal| journal.scenario)
    }

    /// The journal of the last rollback that finished (one whose steps do
    /// not read as this version's steps is none).
    pub fn last_done_run(tree: &Tree) -> Option<Journal<S>> {
        Journal::<S>::last_closed_run(tree, |status| status == RunStatus::Done)
    }

    /// The journal of the last rollback closed (done or abandoned) whose
    /// status `keep` accepts.
    pub fn last_closed_run(tree: &Tree, keep: impl Fn(RunStatus) -> bool) -> Option<Journal<S>> {
        let bundles = tree.fs.list(&tree.forensics_dir()).ok()?;
        bundles
            .into_iter()
            .filter_map(|(name, _)| {
                let file = tree.forensics_dir().join(name).join("journal.json");
                let text = tree.fs.read_to_string(&file).ok()?;
                let journal: Journal<S> = sealed::open(FINISHED, Path::new(""), &text).ok()?;
                keep(journal.status).then_some(journal)
            })
            .max_by(|a, b| a.started.cmp(&b.started))
    }

    /// The run is over (done or abandoned): the journal moves into the run's
    /// bundle as a record.
    pub fn close(&mut self, tree: &Tree, status: RunStatus) -> Result<()> {
        self.status = status;
        let bundle = tree.root.join(&self.bundle);
        let text = sealed::seal(FINISHED, Path::new(""), self)?;
        if tree.fs.expect_dir_or_nothing(&bundle)? {
            files::write_atomic(&tree.fs, &bundle.join("journal.json"), text.as_bytes())?;
        }
        tree.fs.remove_file(&path(&tree.state_dir())).context("remove the finished journal")
    }
}
