//! Where config files go in a backup: under their path relative to the
//! root (since format `tmws-backup/4`), so two files of one name never collide;
//! a backup of the format before, which kept them under their name, still
//! verifies and restores.
use std::{fs, os::unix::fs::PermissionsExt, path::Path};

use crate::{breakage::git, breakage::sha256, root, run_in, sandbox};

const BACKUP: &str = "backups/pre-phase4";

/// Adds `extra` to the profile's config files, and commits the profile;
/// `extra` stays untracked, so that only its backup can restore it (the
/// complete row's checkout does not).
fn name_config_file(root: &Path, extra: &str) {
    let file = root.join("tmws-rollback.toml");
    let profile = fs::read_to_string(&file).unwrap();
    let line = profile.lines().find(|l| l.starts_with("config_files = [")).unwrap();
    let named = line.replace(']', &format!(", \"{extra}\"]"));
    fs::write(&file, profile.replace(line, &named)).unwrap();
    git(root, &["add", "tmws-rollback.toml"]);
    git(root, &["commit", "-qm", "Name one more config file"]);
}

/// The manifest's `file:` line of the config file at `source`, split.
fn config_line(manifest: &str, source: &str) -> Vec<String> {
    let line = manifest
        .lines()
        .find(|l| l.starts_with("file:\tconfig\t") && l.ends_with(&format!("\t{source}")))
        .unwrap_or_else(|| panic!("no config line for {source} in\n{manifest}"));
    line.split('\t').map(String::from).collect()
}

#[test]
fn two_config_files_of_one_name_keep_their_folders() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    fs::create_dir(root.join("deploy")).unwrap();
    let ini = fs::read_to_string(root.join("alembic.ini")).unwrap();
    fs::write(root.join("deploy/alembic.ini"), format!("{ini}# the deploy's copy\n")).unwrap();
    name_config_file(&root, "deploy/alembic.ini");

    run_in(&root, &["backup"]).exits(0);
    let manifest = fs::read_to_string(root.join(BACKUP).join("BACKUP_MANIFEST.txt")).unwrap();
    assert!(manifest.contains("format: tmws-backup/5\n"), "{manifest}");
    assert_eq!(config_line(&manifest, "alembic.ini")[5], "config/alembic.ini");
    assert_eq!(config_line(&manifest, "deploy/alembic.ini")[5], "config/deploy/alembic.ini");
    let kept = root.join(BACKUP).join("config/deploy/alembic.ini");
    assert_eq!(sha256(&kept), sha256(&root.join("deploy/alembic.ini")));
    run_in(&root, &["verify-backup"]).exits(0);

    let before = sha256(&root.join("deploy/alembic.ini"));
    fs::write(root.join("deploy/alembic.ini"), "[alembic]\n# broken by the deploy\n").unwrap();
    // Config files are restored by the complete row (files restores the
    // critical files only).
    run_in(&root, &["rollback", "--scenario", "complete", "--yes"]).exits(0);
    assert_eq!(sha256(&root.join("deploy/alembic.ini")), before);
    assert_eq!(
        sha256(&root.join("alembic.ini")),
        sha256(&root.join(BACKUP).join("config/alembic.ini"))
    );
}

/// Rewrites a backup as the format before wrote it: config files under
/// their name, `format: tmws-backup/3`, SHA256SUMS and the tag to match.
fn as_format_3(root: &Path, backup: &Path) {
    for file in ["BACKUP_MANIFEST.txt", "SHA256SUMS"] {
        fs::set_permissions(backup.join(file), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let manifest = fs::read_to_string(backup.join("BACKUP_MANIFEST.txt")).unwrap();
    let mut sums = fs::read_to_string(backup.join("SHA256SUMS")).unwrap();
    let mut lines = Vec::new();
    for line in manifest.lines() {
        let mut fields: Vec<String> = line.split('\t').map(String::from).collect();
        if line.starts_with("file:\tconfig\t") {
            let name = Path::new(&fields[5]).file_name().unwrap().to_str().unwrap();
            let flat = format!("config/{name}");
            if flat != fields[5] {
                fs::rename(backup.join(&fields[5]), backup.join(&flat)).unwrap();
                fs::remove_dir(backup.join(&fields[5]).parent().unwrap()).unwrap();
                sums = sums.replace(&format!("  {}\n", fields[5]), &format!("  {flat}\n"));
                fields[5] = flat;
            }
        }
        lines.push(fields.join("\t"));
    }
    let old =
        (lines.join("\n") + "\n").replace("format: tmws-backup/5\n", "format: tmws-backup/3\n");
    assert!(old.contains("format: tmws-backup/3\n"), "{old}");
    fs::write(backup.join("BACKUP_MANIFEST.txt"), &old).unwrap();
    let sha = sha256(&backup.join("BACKUP_MANIFEST.txt"));
    let sums: Vec<String> = sums
        .lines()
        .map(|l| match l.split_once("  ") {
            Some((_, "BACKUP_MANIFEST.txt")) => format!("{sha}  BACKUP_MANIFEST.txt"),
            _ => l.to_string(),
        })
        .collect();
    fs::write(backup.join("SHA256SUMS"), sums.join("\n") + "\n").unwrap();
    let message = git(root, &["tag", "-l", "--format=%(contents)", "pre-phase4"]);
    let (head, _) = message.split_once("manifest-sha256: ").unwrap();
    let message = format!("{head}manifest-sha256: {sha}\n");
    let commit = git(root, &["rev-parse", "pre-phase4^{commit}"]);
    git(root, &["tag", "-f", "-a", "pre-phase4", "-m", &message, commit.trim()]);
}

/// A backup an older version of the tool took (format 3, a config file of
/// a subfolder kept under its name) verifies and restores where its
/// manifest says.
#[test]
fn a_backup_of_the_format_before_still_verifies_and_restores() {
    let dir = sandbox("pre-phase4");
    let root = root(&dir);
    fs::create_dir(root.join("deploy")).unwrap();
    fs::write(root.join("deploy/settings.cfg"), "DEBUG = False\n").unwrap();
    name_config_file(&root, "deploy/settings.cfg");
    run_in(&root, &["backup"]).exits(0);
    let backup = root.join(BACKUP);
    as_format_3(&root, &backup);
    let manifest = fs::read_to_string(backup.join("BACKUP_MANIFEST.txt")).unwrap();
    let line = config_line(&manifest, "deploy/settings.cfg");
    assert_eq!(line[5], "config/settings.cfg", "{manifest}");
    assert!(backup.join("config/settings.cfg").is_file());
    assert!(!backup.join("config/deploy").exists());
    run_in(&root, &["verify-backup"]).exits(0);

    let before = sha256(&root.join("deploy/settings.cfg"));
    fs::write(root.join("deploy/settings.cfg"), "DEBUG = True\n").unwrap();
    run_in(&root, &["rollback", "--scenario", "complete", "--yes"]).exits(0);
    assert_eq!(sha256(&root.join("deploy/settings.cfg")), before);
}
