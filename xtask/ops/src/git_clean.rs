//! `git.clean`, judged one way for post-check and diagnose: what `git
//! status` lists, less what the tree is expected to hold beside its
//! commits. A service keeps its database, its log and its settings in the
//! tree, often untracked and not ignored: those files (the profile's
//! database and its sidecars, the profile, the files it names) are its
//! own data, not dirt. A change the backup recorded as uncommitted was
//! there before the deploy: it is explained, not dirt either.
use std::path::{Component, Path, PathBuf};

use xtask_adapters::git::{self, Dirty};
use xtask_model::{
    check::{Check, CheckId},
    database,
    manifest::Manifest,
    profile::{PROFILE_FILE, Profile, Tree},
};

/// Paths another check of the same command judges, left out of this one
/// (diagnose judges the critical files in `files.changed`), and its name.
pub struct JudgedElsewhere<'a> {
    pub paths: &'a [String],
    pub by: &'static str,
}

/// The verdict on the working tree of `repo`: clean, or dirty exactly as
/// the tree's own data and the backup's record explain.
pub fn judge(
    tree: &Tree,
    repo: &git2::Repository,
    manifest: Option<&Manifest>,
    elsewhere: Option<JudgedElsewhere<'_>>,
) -> Check {
    let listed = match git::dirty(repo) {
        Ok(listed) => listed,
        Err(err) => return Check::fail(CheckId::GitClean, format!("git status failed: {err:#}")),
    };
    let own = own_data(&tree.profile);
    let (mut mine, mut recorded, mut dirty, mut other) = (vec![], vec![], vec![], vec![]);
    for Dirty { path, untracked } in listed {
        let now = || tree.fs.sha256(&tree.path(&path)).ok().map(|(sha, _)| sha);
        if elsewhere.as_ref().is_some_and(|e| e.paths.contains(&path)) {
            other.push(path);
        } else if untracked && own.contains(&normal(&path)) {
            mine.push(path);
        } else if manifest.is_some_and(|m| m.records_change(&path, now().as_deref())) {
            recorded.push(path);
        } else {
            dirty.push(path);
        }
    }
    let mut besides = Vec::new();
    if !mine.is_empty() {
        besides.push(format!(
            "the tree's own data, untracked as expected (the profile's database and its sidecars, the profile, the files it names): {}",
            mine.join(", ")
        ));
    }
    if !recorded.is_empty() {
        besides.push(format!(
            "the changes the backup recorded as uncommitted: {}",
            recorded.join(", ")
        ));
    }
    if let (Some(elsewhere), false) = (&elsewhere, other.is_empty()) {
        besides.push(format!("judged by {}: {}", elsewhere.by, other.join(", ")));
    }
    let detail = match (dirty.is_empty(), besides.is_empty()) {
        (true, true) => "git status: nothing to commit, working tree clean".to_string(),
        (true, false) => format!("clean but for {}", besides.join("; ")),
        (false, true) => format!("{} changed or untracked: {}", dirty.len(), dirty.join(", ")),
        (false, false) => format!(
            "{} changed or untracked: {}; besides {}",
            dirty.len(),
            dirty.join(", "),
            besides.join("; ")
        ),
    };
    Check::from(CheckId::GitClean, dirty.is_empty(), detail)
}

/// The tree's own data, as relative paths: the database with every
/// sidecar SQLite keeps, the profile, and the config, log and pid files it
/// names (files outside the tree never show in its `git status`).
fn own_data(profile: &Profile) -> Vec<PathBuf> {
    let database = database::files(Path::new(&profile.database)).map(|(_, path)| path);
    let named = profile.config_files.iter().map(String::as_str);
    let named = named.chain(profile.log_file()).chain(profile.pid_file.as_deref());
    database
        .into_iter()
        .chain([PathBuf::from(PROFILE_FILE)])
        .chain(named.map(PathBuf::from))
        .map(|path| normal(&path.to_string_lossy()))
        .collect()
}

/// A relative path without `.` components, as git prints it.
fn normal(path: &str) -> PathBuf {
    Path::new(path).components().filter(|c| *c != Component::CurDir).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_data_is_the_database_with_its_sidecars_the_profile_and_what_it_names() {
        let profile = Profile {
            database: "./var/app.db".into(),
            config_files: vec![".env".into(), "conf/./app.cfg".into()],
            pid_file: Some("run/app.pid".into()),
            log_file: String::new(),
            ..Profile::default()
        };
        let own = own_data(&profile);
        let expected = [
            "var/app.db",
            "var/app.db-journal",
            "var/app.db-wal",
            "var/app.db-shm",
            PROFILE_FILE,
            ".env",
            "conf/app.cfg",
            "run/app.pid",
        ];
        for path in expected {
            assert!(own.contains(&PathBuf::from(path)), "{path} in {own:?}");
        }
        assert_eq!(own.len(), expected.len(), "{own:?}");
    }

    #[test]
    fn paths_are_compared_as_git_prints_them() {
        assert_eq!(normal("./data/./tmws.db"), PathBuf::from("data/tmws.db"));
    }
}
