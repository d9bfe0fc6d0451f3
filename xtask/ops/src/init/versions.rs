//! Where the checkout keeps its revisions, as its alembic.ini says: the
//! `versions` folder of its `script_location`, or the one folder its
//! `version_locations` names.
use std::path::{Component, Path, PathBuf};

use anyhow::Result;

use super::{Sourced, rel_path};
use xtask_base::exit::failed;

/// The scripts' folder (relative to the root) and the revisions' folder,
/// with where it came from; `setting` reads a key of the ini's
/// `[alembic]` section.
pub(super) fn folders(
    setting: &dyn Fn(&str) -> Option<String>,
    ini_dir: &Path,
    ini_path: &str,
) -> Result<(PathBuf, Sourced)> {
    let script = setting("script_location").unwrap_or_else(|| "migrations".into());
    let script = script.replace("%(here)s/", "").replace("%(here)s", ".");
    // `script_location = .` (Flask-Migrate's) is the ini's own folder.
    let script_dir = plain(&ini_dir.join(&script));
    let migrations = match setting("version_locations") {
        Some(locations) => {
            let separator = setting("version_path_separator");
            version_location(&locations, separator.as_deref(), ini_dir, ini_path)?
        }
        None => (rel_path(&script_dir.join("versions"))?, format!("script_location in {ini_path}")),
    };
    Ok((script_dir, migrations))
}

/// `path` without its `.` components.
fn plain(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

/// The one folder alembic.ini's `version_locations` names (split as
/// alembic splits it by `version_path_separator`; `%(here)s` is the ini's
/// folder, and a relative path is the root's, where alembic runs). The
/// tool keeps, backs up and checks the revisions of one folder, so several
/// are exit 1, naming them.
fn version_location(
    locations: &str,
    separator: Option<&str>,
    ini_dir: &Path,
    ini_path: &str,
) -> Result<Sourced> {
    let split: Vec<&str> = match separator {
        Some("os" | ":") => locations.split(':').collect(),
        Some(";") => locations.split(';').collect(),
        Some(",") => locations.split(',').collect(),
        _ => locations.split([' ', ',']).collect(),
    };
    let folders: Vec<String> = split
        .into_iter()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match l.strip_prefix("%(here)s") {
            Some(rest) => ini_dir.join(rest.trim_start_matches('/')).display().to_string(),
            None => l.to_string(),
        })
        .map(|l| plain(Path::new(&l)).display().to_string())
        .collect();
    match folders.as_slice() {
        [one] => Ok((rel_path(Path::new(one))?, format!("version_locations in {ini_path}"))),
        _ => Err(failed(format!(
            "version_locations in {ini_path} names {} folders ({}): the tool keeps, backs up and checks the revisions of one folder (the profile's migrations), so it cannot roll this service back whole; keep its revisions in one folder",
            folders.len(),
            folders.join(", ")
        ))),
    }
}
