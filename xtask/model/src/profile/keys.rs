//! What each key of a profile may hold. Every value is checked once, as the
//! profile is read, and every refusal starts with the key and the value it
//! refuses (`config_files[2] = "../x": ...`), so that a person finds the
//! line to fix; the caller adds the file's name.
use std::path::{Component, Path};

use anyhow::{Result, bail};
use serde::{Deserialize, Deserializer};

use super::Profile;

/// `pid_file = ""` and `backup_repo = ""` mean "not set", as leaving the
/// key out does: an empty value is how a person turns a default off.
pub(super) fn empty_is_none<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(deserializer)?;
    Ok(value.filter(|text| !text.is_empty()))
}

/// Why `path` cannot name a file or folder inside the root, if it cannot.
fn not_inside(path: &str) -> Option<&'static str> {
    let climbs = Path::new(path)
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if climbs {
        return Some(
            "a path of the tree is relative to its root and stays inside it (no '..', no leading '/')",
        );
    }
    if Path::new(path).components().all(|c| c == Component::CurDir) {
        return Some("it names the root itself: name a file or folder inside it");
    }
    None
}

/// Every path key of the tree with its value: `(key, value, required)`.
/// A required key holds a path; an optional one may be empty (not set).
fn tree_paths(profile: &Profile) -> Vec<(String, &str, bool)> {
    let mut keys = vec![
        ("database".to_string(), profile.database.as_str(), true),
        ("alembic_ini".to_string(), profile.alembic_ini.as_str(), true),
        ("log_file".to_string(), profile.log_file.as_str(), false),
    ];
    keys.extend(profile.migrations.keyed().into_iter().map(|(key, path)| (key, path, true)));
    keys.extend(profile.pid_file.as_deref().map(|p| ("pid_file".to_string(), p, false)));
    let lists = [
        ("config_files", &profile.config_files),
        ("critical_files", &profile.critical_files),
        ("test_files", &profile.test_files),
    ];
    for (key, list) in lists {
        let entries = list.iter().enumerate();
        keys.extend(entries.map(|(i, path)| (format!("{key}[{i}]"), path.as_str(), true)));
    }
    keys
}

/// Every key's value fits it: paths of the tree inside the root (never the
/// root itself: `migrations = "."` would make a rollback swap the whole
/// tree), JSON pointers that are pointers, service programs that are names.
pub(super) fn check(profile: &Profile) -> Result<()> {
    for (key, path, required) in tree_paths(profile) {
        if path.is_empty() {
            if required {
                bail!("{key} = \"\": this key needs a path (leave the key out for its default)");
            }
            continue;
        }
        if let Some(why) = not_inside(path) {
            bail!("{key} = {path:?}: {why}");
        }
    }
    // After each folder is known to be a path inside the root: "" would
    // read as a folder that holds every other.
    profile.migrations.check()?;
    let mut seen = std::collections::BTreeSet::new();
    for (i, path) in profile.external_files.iter().enumerate() {
        if let Some(why) = xtask_fs::external::not_plain(path) {
            bail!("external_files[{i}] = {path:?}: {why}");
        }
        if !seen.insert(path) {
            bail!("external_files[{i}] = {path:?}: it is named twice: name each file once");
        }
    }
    for pointer in profile.health_json.keys() {
        check_pointer("health_json", pointer)?;
    }
    if !profile.health_revision.is_empty() {
        check_pointer("health_revision", &profile.health_revision)?;
    }
    for (i, program) in profile.service_programs.iter().enumerate() {
        let wildcard = program.contains(['*', '?', '[', '/']) || program.trim() != program;
        if program.is_empty() || wildcard {
            bail!(
                "service_programs[{i}] = {program:?}: it would match processes by a pattern: give program names such as \"python\" or \"uvicorn\""
            );
        }
    }
    Ok(())
}

/// What `check` cannot judge without the tree and the disk: a file
/// outside the tree is outside it (a file of the tree is a config file,
/// relative to the root), and no component of its folder's path is a link
/// (a write there would land elsewhere).
pub(super) fn check_external(profile: &Profile, root: &Path) -> Result<()> {
    for (i, path) in profile.external_files.iter().enumerate() {
        if Path::new(path).starts_with(root) {
            bail!(
                "external_files[{i}] = {path:?}: it is inside the tree ({}): name it in config_files, relative to the root",
                root.display()
            );
        }
        if let Err(err) = xtask_fs::external::folder(Path::new(path)) {
            bail!("external_files[{i}] = {path:?}: {err:#}");
        }
    }
    Ok(())
}

fn check_pointer(key: &str, pointer: &str) -> Result<()> {
    if !pointer.starts_with('/') {
        bail!(
            "{key}: {pointer:?} is not a JSON pointer: start it with / (\"/status\", \"/database/revision\")"
        );
    }
    Ok(())
}

/// toml names the key of a value it cannot read on a line of its own
/// (`invalid type: string "x", expected u16\nin `port``): the key comes
/// first here, as in every other refusal of a profile.
pub(super) fn key_first(err: &toml::de::Error) -> String {
    let text = err.to_string();
    let text = text.trim_end();
    match text.rsplit_once("\nin `") {
        Some((why, key)) if key.ends_with('`') && !key.contains('\n') => {
            format!("{}: {why}", key.trim_end_matches('`'))
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::MigrationFolders;

    /// An edit of the default profile that makes it wrong.
    type Edit = Box<dyn FnOnce(&mut Profile)>;

    fn refusal(edit: impl FnOnce(&mut Profile)) -> String {
        let mut profile = Profile::default();
        edit(&mut profile);
        format!("{:#}", check(&profile).unwrap_err())
    }

    #[test]
    fn every_refusal_names_its_key() {
        let cases: [(Edit, &str); 11] = [
            (
                Box::new(|p| p.external_files = vec!["etc/x".into()]),
                "external_files[0] = \"etc/x\": a file outside",
            ),
            (
                Box::new(|p| p.external_files = vec!["/etc/../x".into()]),
                "external_files[0] = \"/etc/../x\": the path must be plain",
            ),
            (
                Box::new(|p| p.external_files = vec!["/x".into(), "/x".into()]),
                "external_files[1] = \"/x\": it is named twice",
            ),
            (Box::new(|p| p.database = String::new()), "database = \"\": this key needs a path"),
            (Box::new(|p| p.migrations = ".".into()), "migrations = \".\": it names the root"),
            (
                Box::new(|p| p.migrations = MigrationFolders::new(vec!["a".into(), String::new()])),
                "migrations[1] = \"\": this key needs a path",
            ),
            (Box::new(|p| p.log_file = "/var/log/x".into()), "log_file = \"/var/log/x\": a path"),
            (Box::new(|p| p.config_files.push("../x".into())), "config_files[3] = \"../x\""),
            (Box::new(|p| p.test_files = vec![String::new()]), "test_files[0] = \"\""),
            (Box::new(|p| p.health_revision = "rev".into()), "health_revision: \"rev\""),
            (Box::new(|p| p.service_programs = vec!["py*".into()]), "service_programs[0]"),
        ];
        for (edit, says) in cases {
            let message = refusal(edit);
            assert!(message.starts_with(says), "{says:?} does not start {message:?}");
        }
    }

    #[test]
    fn an_empty_optional_value_is_not_set() {
        let profile: Profile =
            toml::from_str("log_file = \"\"\npid_file = \"\"\nbackup_repo = \"\"\n").unwrap();
        assert!(check(&profile).is_ok());
        assert_eq!((profile.pid_file, profile.backup_repo), (None, None));
    }
}
