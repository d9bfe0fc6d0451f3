//! Where the checkout keeps its revisions, as its alembic.ini says: the
//! `versions` folder of its `script_location`, or the folders its
//! `version_locations` names.
use std::path::{Component, Path, PathBuf};

use anyhow::Result;

use super::rel_path;
use xtask_base::exit::failed;
use xtask_model::profile::MigrationFolders;

/// The scripts' folder (relative to the root) and the revisions' folders,
/// with where they came from; `setting` reads a key of the ini's
/// `[alembic]` section.
pub(super) fn folders(
    setting: &dyn Fn(&str) -> Option<String>,
    ini_dir: &Path,
    ini_path: &str,
) -> Result<(PathBuf, (MigrationFolders, String))> {
    let script = setting("script_location").unwrap_or_else(|| "migrations".into());
    let script = script.replace("%(here)s/", "").replace("%(here)s", ".");
    // `script_location = .` (Flask-Migrate's) is the ini's own folder.
    let script_dir = plain(&ini_dir.join(&script));
    let migrations = match setting("version_locations") {
        Some(locations) => {
            let separator = setting("version_path_separator");
            version_location(&locations, separator.as_deref(), ini_dir, ini_path)?
        }
        None => {
            let versions = rel_path(&script_dir.join("versions"))?;
            (MigrationFolders::from(versions.as_str()), format!("script_location in {ini_path}"))
        }
    };
    Ok((script_dir, migrations))
}

/// `path` without its `.` components.
fn plain(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

/// The folders alembic.ini's `version_locations` names (split as alembic
/// splits it by `version_path_separator`; `%(here)s` is the ini's folder,
/// and a relative path is the root's, where alembic runs), in its order.
/// A folder outside the root, or one inside another, is exit 1 naming it:
/// the tool swaps each folder whole when it restores.
fn version_location(
    locations: &str,
    separator: Option<&str>,
    ini_dir: &Path,
    ini_path: &str,
) -> Result<(MigrationFolders, String)> {
    let split: Vec<&str> = match separator {
        Some("os" | ":") => locations.split(':').collect(),
        Some(";") => locations.split(';').collect(),
        Some(",") => locations.split(',').collect(),
        _ => locations.split([' ', ',']).collect(),
    };
    let mut folders = Vec::new();
    for location in split.into_iter().map(str::trim).filter(|l| !l.is_empty()) {
        let location = match location.strip_prefix("%(here)s") {
            Some(rest) => ini_dir.join(rest.trim_start_matches('/')),
            None => PathBuf::from(location),
        };
        let folder = rel_path(&plain(&location))?;
        if !folders.contains(&folder) {
            folders.push(folder);
        }
    }
    let folders = MigrationFolders::new(folders);
    folders.check().map_err(|err| {
        failed(format!("version_locations in {ini_path} names folders the tool cannot restore one by one: {err:#}"))
    })?;
    Ok((folders, format!("version_locations in {ini_path}")))
}
