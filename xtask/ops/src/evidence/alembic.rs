//! alembic's view of the failed state in the bundle: `alembic current` and
//! `alembic history` about the preserved database, asked of the Python
//! helper beside the other work, or handed in by a step that asked its own.
use std::path::{Path, PathBuf};

use anyhow::Result;
use xshell::Shell;

use super::Bundle;
use xtask_adapters::{
    process::Output,
    python::{Python, Scope},
};
use xtask_fs::files;
use xtask_model::{migrations::revisions_in, profile::Tree};

/// alembic's answers to `current` and `history`, or why it could not answer.
pub type AlembicAnswers = [Result<Output>; 2];

/// `alembic current` and `alembic history`, being asked in the background.
pub struct AlembicRuns(std::thread::JoinHandle<AlembicAnswers>);

impl Bundle {
    /// The preserved database as one file (made through SQLite from the
    /// bytes kept), when there is one.
    pub fn consolidated(&self) -> Option<PathBuf> {
        let file =
            self.dir.join("database").join(format!("{}.consolidated", super::db_name(&self.tree)));
        self.tree.fs.is_file(&file).then_some(file)
    }

    /// Starts asking alembic about `preserved` (a file of this bundle), read
    /// only: the helper runs in the tree with the profile's URL variable
    /// naming that file, and may write nowhere but its own scratch folder.
    /// `finish_alembic` keeps the answers.
    pub fn start_alembic(&self, python: &Python, tree: &Tree, preserved: &Path) -> AlembicRuns {
        let (python, tree) = (python.clone(), tree.clone());
        let url = format!("sqlite:///file:{}?mode=ro&uri=true", preserved.display());
        AlembicRuns(std::thread::spawn(move || {
            let lost = |err: &anyhow::Error| {
                [Err(anyhow::anyhow!("{err:#}")), Err(anyhow::anyhow!("{err:#}"))]
            };
            let session = Shell::new()
                .map_err(anyhow::Error::from)
                .and_then(|sh| python.session(&sh, &tree, Scope { url, writable: &[] }));
            match session {
                Ok(mut session) => [
                    session.alembic(&["current"]).map(|a| a.output),
                    session.alembic(&["history"]).map(|a| a.output),
                ],
                Err(err) => lost(&err),
            }
        }))
    }

    pub fn finish_alembic(&mut self, runs: AlembicRuns) {
        let answers = runs.0.join().unwrap_or_else(|_| {
            [
                Err(anyhow::anyhow!("alembic could not run")),
                Err(anyhow::anyhow!("alembic could not run")),
            ]
        });
        let held = self.facts.database_revision.clone();
        self.keep_alembic(answers, held);
    }

    /// Keeps alembic's answers about the preserved database; `current` must
    /// name the revisions it `holds`, or the report says so. (A migration
    /// step asks alembic about its copy of the database before the failed
    /// file reaches the bundle: it says what the copy held.)
    pub fn keep_alembic(&mut self, answers: AlembicAnswers, holds: Vec<String>) {
        let [current, history] = answers;
        if let Ok(out) = &current {
            let graph = self.tree.graph().unwrap_or_default();
            let said = revisions_in(if out.success() { &out.stdout } else { "" }, &graph);
            let mut expected = holds;
            expected.sort();
            if said != expected {
                self.facts.problems.push(format!(
                    "alembic current reported {said:?} for the preserved database at {expected:?}: check that the migrations' env.py reads its URL from the profile's database_url_env"
                ));
            }
        }
        for (name, arg, answer) in [
            ("alembic-current.txt", "current", current),
            ("alembic-history.txt", "history", history),
        ] {
            let text = match answer {
                Ok(out) => format!(
                    "$ alembic {arg}\n({})\n{}{}",
                    out.describe_status(),
                    out.stdout,
                    out.stderr
                ),
                Err(err) => format!("alembic {arg} could not run: {err:#}\n"),
            };
            if let Err(err) =
                files::write_atomic(&self.tree.fs, &self.dir.join(name), text.as_bytes())
            {
                self.facts.problems.push(format!("{name}: {err:#}"));
            }
        }
    }
}
