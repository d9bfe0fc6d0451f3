//! The files outside the tree that the service reads as it starts (a
//! Flask service's `/etc/<service>/<service>.cfg`), asked of the service
//! itself: the Python helper records every regular file the app's import
//! and its factory open for reading (an audit hook on `open`), outside the
//! scratch copy, the interpreter and the system's own files. init names
//! those it proves (a regular file, reached through no link, readable) in
//! `external_files`; the others are left out, each with why.
use std::path::{Component, Path};

use xtask_adapters::python::AppFacts;
use xtask_fs::sys::FileType;

/// What init found outside the tree.
#[derive(Debug, Default)]
pub(super) struct Outside {
    /// The files proven, for `external_files`.
    pub named: Vec<String>,
    /// Where they came from, for the profile's comment.
    pub from: String,
    /// Files the app read that init does not name, each with why.
    pub left_out: Vec<(String, String)>,
}

/// The files `facts` says the app `spec` read as it started, outside the
/// checkout at `root`: each proven, or left out with why. A file under
/// the home folder of the user the app runs as is left out: it is a
/// person's file (a dotfile, a credential), not the deploy's, and a
/// backup would copy it and a rollback overwrite it; naming it is that
/// person's decision.
pub(super) fn read_by(root: &Path, spec: &str, facts: &AppFacts) -> Outside {
    let mut found = Outside {
        from: format!(
            "Read by {spec} as it started (asked of the app, imported on a scratch copy)"
        ),
        ..Outside::default()
    };
    for path in facts.read.iter().filter(|p| !ours_or_the_trees(root, p)) {
        match proven(path) {
            Ok(()) => found.named.push(path.clone()),
            Err(why) => found.left_out.push((path.clone(), why)),
        }
    }
    for path in facts.read_in_home.iter().filter(|p| !ours_or_the_trees(root, p)) {
        let why = "it lies under the home folder of the user the app runs as: a person's file, not the deploy's (name it by hand if the service's settings live there)";
        found.left_out.push((path.clone(), why.into()));
    }
    found
}

/// A file of the tree (a file inside the tree is a config file, never an
/// external one), or of the tool's own scratch folders.
fn ours_or_the_trees(root: &Path, path: &str) -> bool {
    let path = Path::new(path);
    let real = xtask_fs::outside::canonicalize(path).ok();
    let in_tree = |p: &Path| p.starts_with(root);
    let temp = std::env::temp_dir();
    let temp_real = xtask_fs::outside::canonicalize(&temp).unwrap_or_else(|_| temp.clone());
    let scratch = |p: &Path| {
        [&temp, &temp_real].iter().any(|t| {
            let first = p.strip_prefix(t).ok().and_then(|rest| rest.components().next());
            matches!(first, Some(Component::Normal(name)) if name.to_string_lossy().starts_with("tmws-"))
        })
    };
    [Some(path), real.as_deref()].into_iter().flatten().any(|p| in_tree(p) || scratch(p))
}

/// The proof of one file: a plain absolute path, a regular file reached
/// through no link (as backup and rollback reach it), that opens for
/// reading. Else why not.
fn proven(path: &str) -> Result<(), String> {
    if path.chars().any(char::is_control) {
        return Err("its path holds a control character".into());
    }
    if let Some(why) = xtask_fs::external::not_plain(path) {
        return Err(why.into());
    }
    let file = Path::new(path);
    let dir = match xtask_fs::external::folder(file) {
        Ok(Some(dir)) => dir,
        Ok(None) => return Err("its folder is gone".into()),
        Err(err) => return Err(format!("{err:#}")),
    };
    match dir.kind(file) {
        Ok(Some(FileType::RegularFile)) => {
            dir.open_read(file).map(drop).map_err(|err| format!("it cannot be read: {err:#}"))
        }
        Ok(Some(FileType::Symlink)) => Err(
            "it is a symbolic link: a file outside the tree is never read or written through a link (name the file it leads to)".into(),
        ),
        Ok(Some(_)) => Err("it is not a regular file".into()),
        Ok(None) => Err("it is gone".into()),
        Err(err) => Err(format!("{err:#}")),
    }
}
