//! `--live`: the tree's programs run on the tree itself. Its database files
//! are copied and hashed before, hashed again after; a change fails the
//! checks loudly and the copy from before is kept. Without `--live`, a
//! profile that sends the app to the live tree bars the server check.
use std::path::PathBuf;

use anyhow::Result;

use super::checks::RUN_PROGRAMS;
use xtask_base::clock;
use xtask_fs::files;
use xtask_model::{
    check::{Check, Status},
    database,
    profile::Tree,
};

/// The database's files as they were before the checks, and where their
/// copy is.
pub struct Watch {
    before: Vec<(String, Option<String>)>,
    copy: PathBuf,
}

/// The hashes of what holds the database's content: the file, its `-wal`
/// and its `-journal`. A `-shm` is an index every reader rewrites, and an
/// empty `-wal` (a reader opens one) holds nothing: neither is a change.
fn hashes(tree: &Tree) -> Result<Vec<(String, Option<String>)>> {
    database::check_files(&tree.fs, &tree.database())?;
    database::files(&tree.database())
        .into_iter()
        .filter(|(name, _)| !name.ends_with("-shm"))
        .map(|(name, path)| {
            let hash = match tree.fs.kind(&path)? {
                Some(_) => Some(tree.fs.sha256(&path)?).filter(|(_, size)| *size > 0),
                None => None,
            };
            Ok((name, hash.map(|(sha, _)| sha)))
        })
        .collect()
}

impl Watch {
    pub fn start(tree: &Tree) -> Result<Watch> {
        let copy = tree.forensics_dir().join(format!(
            "live-check-{}-{}",
            clock::now_compact(),
            std::process::id()
        ));
        tree.fs.create_dir_all(&copy)?;
        for (name, path) in database::files(&tree.database()) {
            if tree.fs.kind(&path)?.is_some() {
                files::copy_new(&tree.fs, &path, &tree.fs, &copy.join(&name))?;
            }
        }
        Ok(Watch { before: hashes(tree)?, copy })
    }

    /// Fails the first program check with what changed, keeping the copy;
    /// when nothing changed, the copy goes.
    pub fn judge(self, tree: &Tree, checks: &mut [Check]) -> Result<()> {
        let after = hashes(tree)?;
        let changed: Vec<&str> = self
            .before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b.1 != a.1)
            .map(|(b, _)| b.0.as_str())
            .collect();
        if changed.is_empty() {
            return tree.fs.remove_dir_all(&self.copy);
        }
        let shown = self.copy.strip_prefix(&tree.root).unwrap_or(&self.copy).display();
        let why = format!(
            "the live database changed while the tree's programs ran (--live): {} differ from before; the files as they were are kept in {shown}",
            changed.join(", ")
        );
        let program = |c: &&mut Check| RUN_PROGRAMS.contains(&c.id);
        if let Some(check) = checks.iter_mut().find(program) {
            check.status = Status::Fail;
            check.detail = format!("{why}\n{}", check.detail);
        }
        Ok(())
    }
}

/// Why the server check cannot run on the scratch copy: the profile's
/// `[env]` sends the app to a path in the live tree. `None` when it can,
/// or with `--live`.
pub fn server_barred(tree: &Tree, live: bool) -> Option<String> {
    let root = tree.root.to_str()?;
    let (variable, _) = tree.profile.env.iter().find(|(_, value)| {
        // `sqlite:////srv/tmws/data/x.db` names `/srv/tmws/data/x.db`.
        value.split([':', '=', ';', ',', ' ']).filter(|part| part.starts_with('/')).any(|part| {
            let path = format!("/{}", part.trim_start_matches('/'));
            path.strip_prefix(root).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    })?;
    (!live).then(|| {
        format!(
            "the profile's [env] sets {variable} to a path in the live tree, so the app would not run on the scratch copy the checks use: pass --live to check the live service, its database hashed before and after"
        )
    })
}
