//! A service whose revisions live in several folders, as alembic.ini's
//! `version_locations` names them (the `version-locations` variant: a
//! feature keeps its own beside the main ones, one history across both).
//! init names every folder; backup keeps each revision at its path; a
//! rollback swaps each folder for the backup's, a crash between two swaps
//! resumes, and nothing replaced is lost.
use std::{fs, path::Path, process::Command};

use predicates::str::contains;

use crate::{
    assert_refused, breakage::git, breakage::only_bundle, crash_rollback, root, run_in, sandbox,
    sandbox_variant,
};

const LEARNING: &str = "migrations/learning";

fn revisions_in(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(folder)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".py"))
        .collect();
    names.sort();
    names
}

/// An untracked revision in the second folder, after the deploy's: the
/// checkout of the tag leaves it, so that folder still differs from the
/// backup and is swapped.
fn plant_untracked_revision(root: &Path) {
    let text = "revision = 'aaaaaaaaaaaa'\ndown_revision = 'f1c7e3a9b5d4'\n";
    fs::write(root.join(LEARNING).join("20251123_0900-aaaaaaaaaaaa_hotfix.py"), text).unwrap();
}

#[test]
fn init_names_every_folder_and_backup_keeps_each_revision_at_its_path() {
    let dir = sandbox_variant("phase4", "version-locations");
    let root = root(&dir);
    let profile = fs::read_to_string(root.join("tmws-rollback.toml")).unwrap();
    assert!(
        profile.contains("# From version_locations in alembic.ini, as alembic itself reads it"),
        "{profile}"
    );
    assert!(
        profile.contains("migrations = [\"migrations/versions\", \"migrations/learning\"]"),
        "{profile}"
    );
    let manifest = fs::read_to_string(root.join("backups/pre-phase4/BACKUP_MANIFEST.txt")).unwrap();
    let kept = "migrations/learning/20251101_1012-e2a8f4c6d037_create_learning_patterns.py";
    assert!(manifest.lines().any(|l| l.ends_with(kept)), "{manifest}");
    run_in(&root, &["verify-backup"]).exits(0);
    // Both folders' revisions are one history: the deploy's head is known.
    let diagnose = run_in(&root, &["diagnose"]);
    diagnose.exits(0).stdout_has(contains("healthy"));
}

#[test]
fn a_complete_rollback_swaps_each_folder_and_keeps_the_replaced_ones() {
    let dir = sandbox_variant("phase4", "version-locations");
    let root = root(&dir);
    plant_untracked_revision(&root);
    let plan = run_in(&root, &["rollback", "--scenario", "complete", "--dry-run"]);
    plan.exits(0).stdout_has(contains("swap each of migrations/versions, migrations/learning"));
    let rollback = run_in(&root, &["rollback", "--scenario", "complete", "--yes"]);
    rollback.exits(0).stdout_has(contains("migrations/learning: swapped in 1 revision files"));
    assert_eq!(
        revisions_in(&root.join(LEARNING)),
        ["20251101_1012-e2a8f4c6d037_create_learning_patterns.py"]
    );
    assert_eq!(revisions_in(&root.join("migrations/versions")).len(), 11);
    let replaced = only_bundle(&root).join("migrations-replaced");
    assert!(replaced.join("20251123_0900-aaaaaaaaaaaa_hotfix.py").is_file());
    run_in(&root, &["post-check", "--skip", "server"]).exits(0);
}

/// A kill right after the first folder's exchange: the rerun finds that
/// folder equal to the backup, swaps the other, and the bundle holds
/// every replaced folder.
#[test]
fn a_crash_between_two_folders_resumes_and_loses_nothing() {
    let dir = sandbox_variant("phase4", "version-locations");
    let root = root(&dir);
    plant_untracked_revision(&root);
    fs::write(root.join("migrations/versions/zz_untracked.py"), "revision = 'zz'\n").unwrap();
    crash_rollback(&root, "complete", "inside:migrations-exchanged");
    let resumed = run_in(&root, &["rollback", "--scenario", "complete", "--yes", "--resume"]);
    resumed.exits(0).stdout_has(contains("migrations/learning: swapped in 1 revision files"));
    let bundle = only_bundle(&root);
    let kept: Vec<String> = fs::read_dir(&bundle)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("migrations-replaced"))
        .flat_map(|n| revisions_in(&bundle.join(n)))
        .collect();
    assert!(kept.contains(&"zz_untracked.py".to_string()), "{kept:?}");
    assert!(kept.contains(&"20251123_0900-aaaaaaaaaaaa_hotfix.py".to_string()), "{kept:?}");
    assert_eq!(revisions_in(&root.join(LEARNING)).len(), 1);
    assert_eq!(revisions_in(&root.join("migrations/versions")).len(), 11);
}

/// A profile that stopped naming a folder the backup holds revisions of is
/// refused before anything changes: those revisions would have nowhere to go.
#[test]
fn a_backup_with_a_folder_the_profile_no_longer_names_is_refused() {
    let dir = sandbox_variant("phase4", "version-locations");
    let root = root(&dir);
    let file = root.join("tmws-rollback.toml");
    let profile = fs::read_to_string(&file).unwrap();
    let one = "migrations = [\"migrations/versions\", \"migrations/other\"]";
    let edited =
        profile.replace("migrations = [\"migrations/versions\", \"migrations/learning\"]", one);
    fs::write(&file, edited).unwrap();
    fs::create_dir(root.join("migrations/other")).unwrap();
    git(&root, &["commit", "-qam", "Name another folder"]);
    assert_refused(
        &root,
        &["rollback", "--scenario", "complete", "--yes"],
        4,
        "the backup holds the revision migrations/learning/20251101_1012-e2a8f4c6d037_create_learning_patterns.py, whose folder the profile's migrations (migrations/versions, migrations/other) does not name",
    );
}

/// init asks alembic where the revisions are, rather than reading the
/// ini's text: a location spelled through the ini's own interpolation
/// (`%(revisions)s` from `[DEFAULT]`) is where alembic reads them, and a
/// revision alembic loads from a subfolder (recursive locations), which a
/// restore of the folder's top would not keep, is exit 1 naming it.
#[test]
fn init_takes_the_folders_alembic_itself_reads() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    fs::remove_file(root.join("tmws-rollback.toml")).unwrap();
    fs::rename(root.join("migrations/versions"), root.join("migrations/revisions")).unwrap();
    let ini = fs::read_to_string(root.join("alembic.ini")).unwrap();
    let interpolated = "[DEFAULT]\nrevisions = %(here)s/migrations/revisions\n\n[alembic]\nversion_locations = %(revisions)s\n";
    fs::write(root.join("alembic.ini"), ini.replacen("[alembic]\n", interpolated, 1)).unwrap();
    run_in(&root, &["init"]).exits(0);
    let profile = fs::read_to_string(root.join("tmws-rollback.toml")).unwrap();
    assert!(profile.contains("migrations = \"migrations/revisions\""), "{profile}");
    assert!(profile.contains("the ini's text alone suggests %(revisions)s"), "{profile}");

    fs::remove_file(root.join("tmws-rollback.toml")).unwrap();
    let recursive = "[alembic]\nversion_locations = %(here)s/migrations/revisions\nrecursive_version_locations = true\n";
    fs::write(root.join("alembic.ini"), ini.replacen("[alembic]\n", recursive, 1)).unwrap();
    let nested = root.join("migrations/revisions/2025");
    fs::create_dir(&nested).unwrap();
    let newest = "20251120_1545-47a9e2c8b6f0_create_memory_entries.py";
    fs::rename(root.join("migrations/revisions").join(newest), nested.join(newest)).unwrap();
    let before = crate::digest(&root);
    let refused = run_in(&root, &["init"]);
    refused.exits(1).stderr_has(contains(format!(
        "alembic loads revision files the tool would not keep (recursive_version_locations is on): migrations/revisions/2025/{newest}"
    )));
    assert_eq!(crate::digest(&root), before, "a refused init changed the checkout");
}

/// What sits at a folder's staging name (`.learning.xtask-staged`) is
/// checked before step 1: a link or a file there would stop the swap of
/// that folder after the database, git and the folders before it had
/// changed.
#[test]
fn a_link_or_a_file_at_a_folders_staging_name_is_refused_before_step_1() {
    let dir = sandbox_variant("phase4", "version-locations");
    let root = root(&dir);
    let staged = root.join("migrations/.learning.xtask-staged");
    std::os::unix::fs::symlink(dir.path(), &staged).unwrap();
    let refusal = "migrations/.learning.xtask-staged is a symbolic link where a folder is expected";
    assert_refused(&root, &["rollback", "--scenario", "complete", "--yes"], 4, refusal);
    fs::remove_file(&staged).unwrap();
    fs::write(&staged, "not a folder").unwrap();
    let refusal = "migrations/.learning.xtask-staged is a regular file where a folder is expected";
    assert_refused(&root, &["rollback", "--scenario", "complete", "--yes"], 4, refusal);
}

/// A backup of several folders restored by a profile that names one: the
/// revisions of every folder would be put in that one beside the other
/// folder's own (one revision in two files, a history alembic refuses),
/// so the plan refuses before anything changes.
#[test]
fn a_backup_of_several_folders_is_refused_when_the_profile_names_one() {
    let dir = sandbox_variant("phase4", "version-locations");
    let root = root(&dir);
    let file = root.join("tmws-rollback.toml");
    let profile = fs::read_to_string(&file).unwrap();
    let one = "migrations = \"migrations/versions\"";
    let edited =
        profile.replace("migrations = [\"migrations/versions\", \"migrations/learning\"]", one);
    fs::write(&file, edited).unwrap();
    git(&root, &["commit", "-qam", "Name one folder"]);
    assert_refused(
        &root,
        &["rollback", "--scenario", "complete", "--yes"],
        4,
        "the backup holds revisions of several folders (migrations/versions, migrations/learning) but the profile's migrations names one (migrations/versions)",
    );
}

/// A `*.py` link (or FIFO) in a folder is a revision alembic loads,
/// following the link or waiting on the FIFO, that the tool used to pass
/// over: backup left it out and exited 0, and a complete rollback found the
/// folder "equal to the backup" and left it there. Backup now refuses it by
/// name, a downgrade refuses before step 1, and a complete rollback swaps
/// the folder, keeping the link (never followed) in the bundle.
#[test]
fn a_revision_that_is_a_link_or_a_fifo_is_refused_or_swapped_out() {
    let dir = sandbox_variant("phase4", "version-locations");
    let root = root(&dir);
    let secret = dir.path().join("secret.py");
    fs::write(&secret, "secret = 1\n").unwrap();
    let planted = root.join(LEARNING).join("20251201_link.py");
    std::os::unix::fs::symlink(&secret, &planted).unwrap();
    let said = "migrations/learning/20251201_link.py is a symbolic link where alembic loads a revision file (migrations[1] = \"migrations/learning\"";
    assert_refused(&root, &["backup", "--label", "linked"], 4, said);
    assert_refused(&root, &["rollback", "--scenario", "migration", "--yes"], 2, said);
    fs::remove_file(&planted).unwrap();
    let fifo = root.join(LEARNING).join("20251201_fifo.py");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let said = "migrations/learning/20251201_fifo.py is a FIFO where alembic loads a revision file";
    // The digest would wait on the FIFO: no backup folder is proof enough.
    run_in(&root, &["backup", "--label", "fifo"]).exits(4).stderr_has(contains(said));
    assert!(!root.join("backups/fifo").exists());
    fs::remove_file(&fifo).unwrap();
    std::os::unix::fs::symlink(&secret, &planted).unwrap();
    let rollback = run_in(&root, &["rollback", "--scenario", "complete", "--yes"]);
    rollback.exits(0).stdout_has(contains("migrations/learning: swapped in 1 revision files"));
    assert!(fs::symlink_metadata(&planted).is_err(), "the link is still among the revisions");
    let kept = only_bundle(&root).join("migrations-replaced/20251201_link.py");
    assert!(fs::symlink_metadata(&kept).unwrap().file_type().is_symlink());
    assert_eq!(fs::read_to_string(&secret).unwrap(), "secret = 1\n");
    run_in(&root, &["post-check", "--skip", "server"]).exits(0);
}

/// An absolute location inside the checkout (alembic, run on init's
/// scratch copy, still reads the live folder) is that folder, relative to
/// the root, and its revisions are the ones the tool keeps.
#[test]
fn an_absolute_location_inside_the_checkout_is_taken_relative_to_it() {
    let dir = sandbox("backed-up");
    let root = root(&dir).canonicalize().unwrap();
    fs::remove_file(root.join("tmws-rollback.toml")).unwrap();
    let ini = fs::read_to_string(root.join("alembic.ini")).unwrap();
    let absolute =
        format!("[alembic]\nversion_locations = {}\n", root.join("migrations/versions").display());
    fs::write(root.join("alembic.ini"), ini.replacen("[alembic]\n", &absolute, 1)).unwrap();
    run_in(&root, &["init"]).exits(0);
    let profile = fs::read_to_string(root.join("tmws-rollback.toml")).unwrap();
    assert!(profile.contains("migrations = \"migrations/versions\""), "{profile}");
}
