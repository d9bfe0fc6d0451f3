//! The helper as a command's steps reach it: started by the first
//! question, or lent by the command that runs the step on a tree of its
//! own (init proves its profile on scratch copies with the helper it asked
//! the service with: one Python process for the whole command).
use std::{
    cell::RefCell,
    path::{Path, PathBuf},
    rc::Rc,
};

use anyhow::{Result, anyhow};
use xshell::Shell;

use super::{Python, Scope, Session};
use xtask_model::profile::Tree;

/// A command's helper, lent to the steps it runs on other trees: each
/// question is asked in the step's tree (see `Session::serve`).
#[derive(Clone)]
pub struct Shared(Rc<RefCell<Session>>);

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared(the command's Python helper)")
    }
}

impl Shared {
    pub fn new(session: Session) -> Shared {
        Shared(Rc::new(RefCell::new(session)))
    }

    /// The helper, in the tree it serves now (the one it started in, until
    /// `ask_in` moves it).
    pub fn borrow(&self) -> std::cell::RefMut<'_, Session> {
        self.0.borrow_mut()
    }

    /// Asks the helper in `tree`, its profile's URL variable naming `url`.
    pub fn ask_in<T>(
        &self,
        tree: &Tree,
        url: &str,
        question: impl FnOnce(&mut Session) -> Result<T>,
    ) -> Result<T> {
        let mut session = self.0.borrow_mut();
        session.serve(tree, url)?;
        question(&mut session)
    }
}

/// A helper started by the first question, for a command whose questions
/// may not come at all (checks that were skipped, a tree without Python):
/// a helper that could not start is the answer to every question.
pub struct OnFirstUse<'a> {
    python: Result<&'a Python, String>,
    sh: &'a Shell,
    tree: &'a Tree,
    url: String,
    writable: Vec<PathBuf>,
    session: std::cell::RefCell<Option<Result<Session, String>>>,
    /// A helper the command lent, asked instead of starting one.
    lent: Option<Shared>,
}

impl<'a> OnFirstUse<'a> {
    /// The helper of `tree`'s own programs, writing beneath `tree` only.
    pub fn on(python: Result<&'a Python, String>, sh: &'a Shell, tree: &'a Tree) -> Self {
        OnFirstUse {
            python,
            sh,
            tree,
            url: tree.database_url(),
            writable: vec![tree.root.clone()],
            session: Default::default(),
            lent: None,
        }
    }

    /// Asks `lent`, when there is one, instead of starting a helper.
    pub fn lent(mut self, lent: Option<Shared>) -> Self {
        self.lent = lent;
        self
    }

    /// Asks the helper, starting it first when this is the first question.
    pub fn ask<T>(&self, question: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        if let Some(lent) = &self.lent {
            return lent.ask_in(self.tree, &self.url, question);
        }
        let mut slot = self.session.borrow_mut();
        let session = slot.get_or_insert_with(|| {
            let writable: Vec<&Path> = self.writable.iter().map(PathBuf::as_path).collect();
            let scope = Scope { url: self.url.clone(), writable: &writable };
            let python = self.python.clone().map_err(|why| anyhow!("no Python: {why}"));
            let started = python.and_then(|python| python.session(self.sh, self.tree, scope));
            started.map_err(|e| format!("{e:#}"))
        });
        match session {
            Ok(session) => question(session),
            Err(why) => Err(anyhow!("{why}")),
        }
    }
}
