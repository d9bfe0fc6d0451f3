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
/// `[alembic]` section, `root` is the checkout's (absolute) folder.
pub(super) fn folders(
    setting: &dyn Fn(&str) -> Option<String>,
    root: &Path,
    ini_dir: &Path,
    ini_path: &str,
) -> Result<(PathBuf, (MigrationFolders, String))> {
    let script = setting("script_location").unwrap_or_else(|| "migrations".into());
    let script = script.replace("%(here)s/", "").replace("%(here)s", ".");
    // `script_location = .` (Flask-Migrate's) is the ini's own folder.
    let script_dir = plain(&ini_dir.join(&script));
    // A value on the lines below its key (`version_locations =` then one
    // folder a line) reads as empty here: alembic's own answer names them.
    let locations = setting("version_locations").filter(|l| !l.is_empty());
    let migrations = match locations {
        Some(locations) => {
            let separator = setting("version_path_separator").or_else(|| setting("path_separator"));
            let at = Ini { root, dir: ini_dir, path: ini_path };
            version_location(&locations, separator.as_deref(), &at)?
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

/// Where the ini lies: the checkout's absolute folder, the ini's folder
/// relative to it, and the ini's path for messages.
struct Ini<'a> {
    root: &'a Path,
    dir: &'a Path,
    path: &'a str,
}

/// The folders alembic.ini's `version_locations` names (split as alembic
/// splits it by `version_path_separator`; `%(here)s` is the ini's folder,
/// and a relative path is the root's, where alembic runs), in its order.
/// An absolute path inside the checkout is taken relative to it. A folder
/// outside the root, or one inside another, is exit 1 naming it: the tool
/// swaps each folder whole when it restores.
fn version_location(
    locations: &str,
    separator: Option<&str>,
    ini: &Ini<'_>,
) -> Result<(MigrationFolders, String)> {
    let (ini_dir, ini_path) = (ini.dir, ini.path);
    let split: Vec<&str> = match separator {
        Some("os" | ":") => locations.split(':').collect(),
        Some(";") => locations.split(';').collect(),
        Some(",") => locations.split(',').collect(),
        Some("space") => locations.split(' ').collect(),
        Some("newline") => locations.split('\n').collect(),
        _ => locations.split([' ', ',']).collect(),
    };
    let mut folders = Vec::new();
    for written in split.into_iter().map(str::trim).filter(|l| !l.is_empty()) {
        let location = match written.strip_prefix("%(here)s") {
            Some(rest) => ini_dir.join(rest.trim_start_matches('/')),
            None => PathBuf::from(written),
        };
        let location = match location.strip_prefix(ini.root) {
            Ok(inside) => inside.to_path_buf(),
            Err(_) => location,
        };
        let folder = rel_path(&plain(&location)).map_err(|_| {
            failed(format!(
                "version_locations in {ini_path} names {written}, outside the checkout: the tool backs up and restores the revisions beneath the tree; move that folder there, then run init again"
            ))
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read(locations: &str) -> Result<MigrationFolders> {
        let ini = Ini { root: Path::new("/srv/tmws"), dir: Path::new(""), path: "alembic.ini" };
        version_location(locations, Some("os"), &ini).map(|(folders, _)| folders)
    }

    #[test]
    fn an_absolute_location_inside_the_checkout_is_taken_relative_to_it() {
        let folders = read("/srv/tmws/migrations/versions:%(here)s/migrations/learning").unwrap();
        assert_eq!(folders.to_toml(), "[\"migrations/versions\", \"migrations/learning\"]");
    }

    #[test]
    fn a_value_on_the_lines_below_its_key_leaves_the_folders_to_alembic() {
        let ini = "version_path_separator = newline\nversion_locations =\n    a/versions\n";
        let setting = |key: &str| {
            ini.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
        };
        let (_, (folders, from)) =
            folders(&setting, Path::new("/srv/tmws"), Path::new(""), "alembic.ini").unwrap();
        assert_eq!(
            (folders.to_toml().as_str(), from.as_str()),
            ("\"migrations/versions\"", "script_location in alembic.ini")
        );
        let semicolons = read_with("a/versions;b/versions", "path_separator");
        assert_eq!(semicolons.to_toml(), "[\"a/versions\", \"b/versions\"]");
    }

    fn read_with(locations: &str, key: &str) -> MigrationFolders {
        let ini = format!("{key} = ;\nversion_locations = {locations}\n");
        let setting = |wanted: &str| {
            ini.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == wanted).then(|| v.trim().to_string())
            })
        };
        folders(&setting, Path::new("/srv/tmws"), Path::new(""), "alembic.ini").unwrap().1.0
    }

    #[test]
    fn a_location_outside_the_checkout_is_exit_1_naming_the_key() {
        for outside in ["/srv/other/learning", "%(here)s/../learning"] {
            let err = read(&format!("%(here)s/migrations/versions:{outside}")).unwrap_err();
            assert_eq!(xtask_base::exit::kind_of(&err), xtask_base::exit::Kind::Failed);
            let says =
                format!("version_locations in alembic.ini names {outside}, outside the checkout");
            assert!(format!("{err:#}").starts_with(&says), "{err:#}");
        }
    }
}
