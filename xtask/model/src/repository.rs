//! An off-site repository and what it holds. The repository is named in its
//! tool's own syntax (restic: a path, `rest:`, `sftp:`, `s3:`…) and found one
//! way for every command: `--repo`, else `TMWS_BACKUP_REPO`, else the
//! profile's `backup_repo`. It is shown without a password a URL may hold
//! (`rest:https://user:***@host/`), and every call to it has a deadline
//! measured from its last progress (`TMWS_RESTIC_TIMEOUT`).
use std::{fmt, time::Duration};

use schemars::JsonSchema;
use serde::Serialize;

use crate::profile::Profile;
use xtask_base::exit::usage;

/// The environment variable that names the repository.
pub const REPO_ENV: &str = "TMWS_BACKUP_REPO";

/// The environment variable that sets how many seconds a call to the
/// repository may go without progress before it is stopped.
pub const DEADLINE_ENV: &str = "TMWS_RESTIC_TIMEOUT";

/// Five minutes without progress: far beyond what a repository that
/// answers takes between two steps of its work (listing snapshots, loading
/// the index, the next bytes of a restore), short enough that a repository
/// that accepts a connection and never answers ends the command in minutes,
/// not never.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(300);

/// How long a call to the repository may go without progress:
/// `TMWS_RESTIC_TIMEOUT` seconds (a whole number, at least 1), else five
/// minutes. Anything else in the variable is a usage error.
pub fn deadline() -> anyhow::Result<Duration> {
    let Ok(value) = std::env::var(DEADLINE_ENV) else { return Ok(DEFAULT_DEADLINE) };
    match value.trim().parse::<u64>() {
        Ok(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
        _ => Err(usage(format!(
            "{DEADLINE_ENV} is how many seconds a restic call may go without progress: a whole number, at least 1; it was {value:?}"
        ))),
    }
}

/// A repository's name as it may be shown: a password in a URL's user part
/// (`rest:https://user:secret@host/`) becomes `***`, as restic shows it.
/// Other names (a path, `sftp:user@host:/srv`, `s3:…`) hold none.
pub fn redacted(spec: &str) -> String {
    let Some(scheme) = spec.find("://") else { return spec.to_string() };
    let start = scheme + 3;
    let rest = &spec[start..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else { return spec.to_string() };
    let Some(colon) = authority[..at].find(':') else { return spec.to_string() };
    format!("{}:***{}", &spec[..start + colon], &spec[start + at..])
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repository {
    /// A restic repository.
    Restic(String),
}

impl Repository {
    /// The repository of a command: `--repo`, else `TMWS_BACKUP_REPO`, else
    /// the profile's `backup_repo`; `None` when none names one. A bad
    /// `TMWS_RESTIC_TIMEOUT` is refused here, before the command does any
    /// work.
    pub fn resolve(flag: Option<&str>, profile: &Profile) -> anyhow::Result<Option<Repository>> {
        let found = Repository::from_sources(
            flag,
            std::env::var(REPO_ENV).ok().as_deref(),
            profile.backup_repo.as_deref(),
        );
        if found.is_some() {
            deadline()?;
        }
        Ok(found)
    }

    /// `resolve`, for a command that needs a repository.
    pub fn required(flag: Option<&str>, profile: &Profile) -> anyhow::Result<Repository> {
        Repository::resolve(flag, profile)?.ok_or_else(|| {
            usage(format!(
                "no restic repository: pass --repo, set {REPO_ENV}, or set backup_repo in tmws-rollback.toml"
            ))
        })
    }

    fn from_sources(
        flag: Option<&str>,
        env: Option<&str>,
        profile: Option<&str>,
    ) -> Option<Repository> {
        [flag, env, profile]
            .into_iter()
            .flatten()
            .find(|spec| !spec.is_empty())
            .map(|spec| Repository::Restic(spec.to_string()))
    }

    /// The repository a command names itself (prune's `--repo`), under the
    /// same rules as one `resolve` finds.
    pub fn named(spec: &str) -> anyhow::Result<Repository> {
        deadline()?;
        Ok(Repository::Restic(spec.to_string()))
    }

    /// The repository in its tool's syntax, password and all: for the tool
    /// that opens it, never for a person (`Display` is for them).
    pub fn spec(&self) -> &str {
        match self {
            Repository::Restic(spec) => spec,
        }
    }
}

/// The repository without a password its name may hold.
impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redacted(self.spec()))
    }
}

/// One backup a repository holds.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Entry {
    /// The repository's own id of it: restic's snapshot id; empty for a
    /// local backup, the folder's name for a forensics bundle.
    #[serde(rename = "snapshot")]
    pub id: String,
    /// When it was taken (named as in a local backup's listing).
    #[serde(rename = "created")]
    pub time: String,
    pub label: String,
    #[serde(rename = "git_commit")]
    pub commit: String,
    /// The database's revisions (several on unmerged heads).
    #[serde(rename = "database_revision", serialize_with = "words")]
    #[schemars(with = "Vec<String>")]
    pub revision: String,
}

/// The revisions a tag holds (`a+b` for several heads), as a list like a
/// manifest's.
fn words<S: serde::Serializer>(text: &str, to: S) -> Result<S::Ok, S::Error> {
    to.collect_seq(text.split('+').filter(|w| !w.is_empty()))
}

/// What storing one backup folder did, by the repository's own account.
#[derive(Debug)]
pub struct Stored {
    pub id: String,
    /// The files it stored, relative to the backup folder, sorted.
    pub files: Vec<String>,
    /// The bytes of those files.
    pub bytes: u64,
    /// The bytes it added to the repository: new data after de-duplication.
    pub added: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_comes_first_then_the_environment_then_the_profile() {
        let restic = |s: &str| Some(Repository::Restic(s.into()));
        assert_eq!(Repository::from_sources(Some("a"), Some("b"), Some("c")), restic("a"));
        assert_eq!(Repository::from_sources(None, Some("b"), Some("c")), restic("b"));
        assert_eq!(Repository::from_sources(None, Some(""), Some("c")), restic("c"));
        assert_eq!(Repository::from_sources(None, None, None), None);
    }

    #[test]
    fn a_password_in_a_url_is_never_shown() {
        for (spec, shown) in [
            (
                "rest:https://tmws:s3cret@backup.example:8000/tmws",
                "rest:https://tmws:***@backup.example:8000/tmws",
            ),
            ("rest:http://u:p:q@[::1]:8000/", "rest:http://u:***@[::1]:8000/"),
            ("rest:http://127.0.0.1:8000/tmws", "rest:http://127.0.0.1:8000/tmws"),
            ("rest:http://reader@host/", "rest:http://reader@host/"),
            ("s3:https://s3.example/bucket/a@b:c", "s3:https://s3.example/bucket/a@b:c"),
            ("sftp:backup@host:/srv/restic", "sftp:backup@host:/srv/restic"),
            ("/mnt/offsite/tmws", "/mnt/offsite/tmws"),
        ] {
            assert_eq!(redacted(spec), shown, "{spec}");
        }
        let repo = Repository::Restic("rest:https://a:b@h/".into());
        assert_eq!(
            (repo.to_string().as_str(), repo.spec()),
            ("rest:https://a:***@h/", "rest:https://a:b@h/")
        );
    }
}
