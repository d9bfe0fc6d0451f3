//! Files outside the tree (`external_files`): found by init, which asks
//! the app what it reads as it starts; backed up under `external/`
//! at their absolute path and verified, kept in the bundle before a
//! rollback overwrites them, restored only with `--external`, never
//! through a link; a profile that names one wrongly is refused naming the
//! key; a manifest of the format before still verifies.
use std::{
    fs,
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
};

use predicates::{prelude::*, str::contains};
use tempfile::TempDir;

use crate::{assert_refused, breakage::git, breakage::sha256, digest, root, run_in, sandbox};

const LABEL: &str = "with-external";

/// A settings file in a folder of its own outside the tree, 0640 as a
/// service's secret would be: the folder (which holds `etc/svc/svc.cfg`),
/// and the file's path.
fn settings_outside() -> (TempDir, PathBuf) {
    // Beside the build, not in the temporary folder: that may be under
    // /dev/shm, which init rightly never takes for a service's settings.
    let outside = TempDir::new_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let base = outside.path().canonicalize().unwrap();
    fs::create_dir_all(base.join("etc/svc")).unwrap();
    let file = base.join("etc/svc/svc.cfg");
    fs::write(&file, "SECRET_KEY = 'before the deploy'\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    (outside, file)
}

/// Puts `external_files = [VALUES]` at the top of the profile (before any
/// table), without committing it.
fn name_external(root: &Path, values: &[&str]) {
    let file = root.join("tmws-rollback.toml");
    let profile = fs::read_to_string(&file).unwrap();
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    fs::write(&file, format!("external_files = [{}]\n{profile}", quoted.join(", "))).unwrap();
}

/// A sandbox whose committed profile names `file`, with a tagged backup
/// `LABEL` that holds it.
fn backed_up_with(file: &Path) -> TempDir {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    name_external(&root, &[file.to_str().unwrap()]);
    git(&root, &["add", "tmws-rollback.toml"]);
    git(&root, &["commit", "-qm", "Name the settings file outside the tree"]);
    run_in(&root, &["backup", "--label", LABEL])
        .exits(0)
        .stdout_has(contains("1 outside the tree"));
    dir
}

fn kept_at(file: &Path) -> String {
    format!("external/{}", file.to_str().unwrap().trim_start_matches('/'))
}

#[test]
fn a_file_outside_the_tree_is_backed_up_and_verified() {
    let (outside, file) = settings_outside();
    let before = digest(outside.path());
    let dir = backed_up_with(&file);
    let backup = root(&dir).join("backups").join(LABEL);
    let manifest = fs::read_to_string(backup.join("BACKUP_MANIFEST.txt")).unwrap();
    assert!(manifest.contains("format: tmws-backup/5\n"), "{manifest}");
    let line = format!("\t{}\t{}\n", kept_at(&file), file.display());
    let entry = manifest.lines().find(|l| l.starts_with("file:\texternal\t")).expect(&manifest);
    assert!(format!("{entry}\n").ends_with(&line), "{entry}");
    assert!(entry.contains(&format!("\t{}\t", sha256(&file))) && entry.contains("\t0640\t"));
    let sums = fs::read_to_string(backup.join("SHA256SUMS")).unwrap();
    assert!(sums.contains(&format!("{}  {}\n", sha256(&file), kept_at(&file))), "{sums}");
    let copy = backup.join(kept_at(&file));
    assert_eq!(sha256(&copy), sha256(&file));
    // No more than the file's own read bits: a 0640 secret is kept 0440.
    assert_eq!(fs::metadata(&copy).unwrap().permissions().mode() & 0o7777, 0o440);
    run_in(&root(&dir), &["verify-backup", "--label", LABEL])
        .exits(0)
        .stdout_has(contains("external 1/1"));
    assert_eq!(digest(outside.path()), before, "the file outside was changed");

    // A copy that no longer matches its hash fails verification.
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(&copy, "SECRET_KEY = 'forged'\n").unwrap();
    run_in(&root(&dir), &["verify-backup", "--label", LABEL])
        .exits(1)
        .stdout_has(contains(kept_at(&file)));
}

#[test]
fn a_complete_rollback_restores_it_only_with_external_and_keeps_the_one_it_replaces() {
    let (_outside, file) = settings_outside();
    let dir = backed_up_with(&file);
    let root = root(&dir);
    let backed_up = sha256(&file);
    fs::write(&file, "SECRET_KEY = 'the deploy's'\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o4755)).unwrap();
    let deployed = sha256(&file);

    let args = ["rollback", "--label", LABEL, "--scenario", "complete", "--yes"];
    run_in(&root, &args)
        .exits(0)
        .stdout_has(contains(format!(
            "not restored: the files outside the tree ({})",
            file.display()
        )))
        .stdout_has(contains("--scenario complete --external"));
    assert_eq!(sha256(&file), deployed, "restored without --external");

    let with_flag = [&args[..], &["--external"]].concat();
    let dry = [&with_flag[..], &["--dry-run"]].concat();
    run_in(&root, &dry).exits(0).stdout_has(contains("restore the files outside the tree"));
    assert_eq!(sha256(&file), deployed, "a dry run wrote");
    run_in(&root, &with_flag)
        .exits(0)
        .stdout_has(contains("restore-external"))
        .stdout_has(contains(format!("restored {}", file.display())));
    assert_eq!(sha256(&file), backed_up);
    // The manifest's permission bits, never setuid.
    assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o7777, 0o640);
    let staged = file.with_file_name(".svc.cfg.xtask-staged");
    assert!(!staged.exists(), "the staged copy was left behind");
    // The file it replaced is in the run's bundle, byte for byte.
    let bundles: Vec<PathBuf> = fs::read_dir(root.join("forensics"))
        .unwrap()
        .map(|e| e.unwrap().path().join("files").join(kept_at(&file)))
        .filter(|p| p.is_file())
        .collect();
    assert!(bundles.iter().all(|p| sha256(p) == deployed), "{bundles:?}");
    assert_eq!(bundles.len(), 2, "each run kept it: {bundles:?}");
}

#[test]
fn a_link_at_the_file_or_on_its_way_is_refused_and_nothing_changes() {
    let (outside, file) = settings_outside();
    let dir = backed_up_with(&file);
    let root = root(&dir);
    let args = ["rollback", "--label", LABEL, "--scenario", "complete", "--external", "--yes"];

    // The file itself replaced by a link to another file.
    let secret = outside.path().join("secret");
    fs::write(&secret, "the other file\n").unwrap();
    fs::remove_file(&file).unwrap();
    symlink(&secret, &file).unwrap();
    let before = digest(outside.path());
    let said = format!("{} is a symbolic link", file.display());
    assert_refused(&root, &args, 4, &said);
    assert_eq!(digest(outside.path()), before, "written through the link");
    assert_eq!(fs::read_to_string(&secret).unwrap(), "the other file\n");
    assert_refused(&root, &["backup", "--label", "again"], 4, "it is a symbolic link");

    // A folder on its way replaced by a link: every command reads the
    // profile first and refuses it, naming the key.
    fs::remove_file(&file).unwrap();
    let svc = file.parent().unwrap();
    fs::rename(svc, outside.path().join("elsewhere")).unwrap();
    fs::write(outside.path().join("elsewhere/svc.cfg"), "moved\n").unwrap();
    symlink(outside.path().join("elsewhere"), svc).unwrap();
    let before = digest(outside.path());
    let said = format!("external_files[0] = \"{}\": {}", file.display(), svc.display());
    assert_refused(&root, &args, 2, &said);
    assert_refused(&root, &["backup", "--label", "again"], 2, &said);
    assert_eq!(digest(outside.path()), before, "written through the folder's link");
}

#[test]
fn an_external_path_that_is_relative_inside_the_tree_or_twice_is_refused_naming_the_key() {
    let (_outside, file) = settings_outside();
    let dir = sandbox("backed-up");
    let root = root(&dir);
    let profile = fs::read_to_string(root.join("tmws-rollback.toml")).unwrap();
    let inside = root.join("alembic.ini");
    let (file, inside) = (file.to_str().unwrap(), inside.to_str().unwrap());
    let cases: [(&[&str], String); 4] = [
        (&["etc/svc.cfg"], "external_files[0] = \"etc/svc.cfg\": a file outside the tree is named by its absolute path".into()),
        (&["/etc/../etc/svc.cfg"], "external_files[0] = \"/etc/../etc/svc.cfg\": the path must be plain".into()),
        (&[inside], format!("external_files[0] = \"{inside}\": it is inside the tree")),
        (&[file, file], format!("external_files[1] = \"{file}\": it is named twice")),
    ];
    for (values, said) in cases {
        fs::write(root.join("tmws-rollback.toml"), &profile).unwrap();
        name_external(&root, values);
        assert_refused(&root, &["backup", "--label", "refused"], 2, &said);
        assert_refused(&root, &["verify-backup"], 2, "tmws-rollback.toml: external_files[");
    }
}

#[test]
fn a_manifest_of_the_format_before_still_verifies() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    run_in(&root, &["backup", "--label", "old", "--no-tag"]).exits(0);
    let backup = root.join("backups/old");
    for name in ["BACKUP_MANIFEST.txt", "SHA256SUMS"] {
        fs::set_permissions(backup.join(name), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let manifest = fs::read_to_string(backup.join("BACKUP_MANIFEST.txt")).unwrap();
    let old = manifest.replace("format: tmws-backup/5\n", "format: tmws-backup/4\n");
    assert_ne!(old, manifest);
    fs::write(backup.join("BACKUP_MANIFEST.txt"), &old).unwrap();
    let sums = fs::read_to_string(backup.join("SHA256SUMS")).unwrap();
    let (new_sha, old_sha) = (sha256(&backup.join("BACKUP_MANIFEST.txt")), {
        use sha2::{Digest, Sha256};
        format!("{:x}", Sha256::digest(manifest.as_bytes()))
    });
    fs::write(backup.join("SHA256SUMS"), sums.replace(&old_sha, &new_sha)).unwrap();
    let before = digest(&backup);
    run_in(&root, &["verify-backup", "--label", "old"])
        .exits(0)
        .stdout_has(contains("tmws-backup/4 old"));
    assert_eq!(digest(&backup), before, "verify-backup changed the backup");
}

/// init asks the app which files outside the tree it reads as it starts:
/// the factory of a WSGI service, written here to read a settings file
/// outside the tree (and one through a link beside it) and two files of
/// the tree (one by its path in the live tree). The profile names the
/// settings file alone, saying where it came from, and the link is left
/// out, saying why; files of the tree are never named.
#[test]
fn init_names_the_files_outside_the_tree_the_app_reads_as_it_starts() {
    let (outside, file) = settings_outside();
    let link = file.with_file_name("linked.cfg");
    symlink(&file, &link).unwrap();
    let dir = crate::sandbox_variant("phase4", "wsgi-factory");
    let root = root(&dir);
    fs::remove_file(root.join("tmws-rollback.toml")).unwrap();
    let main = root.join("src/main.py");
    let reads = format!(
        "def create_app():\n    for path in ({:?}, {:?}, {:?}, \"pyproject.toml\"):\n        with open(path) as settings:\n            settings.read()\n",
        file.display(),
        link.display(),
        root.join("alembic.ini").display(),
    );
    let code = fs::read_to_string(&main).unwrap().replacen("def create_app():\n", &reads, 1);
    fs::write(&main, code).unwrap();
    let before = digest(outside.path());

    run_in(&root, &["init"]).exits(0).stderr_has(contains("proven on a scratch copy"));
    let profile = fs::read_to_string(root.join("tmws-rollback.toml")).unwrap();
    let named = format!("external_files = [{:?}]\n", file.display().to_string());
    assert!(profile.contains(&named), "{profile}");
    assert!(profile.contains("# Read by src.main:create_app() as it started"), "{profile}");
    let left_out = format!("not named in external_files: {}\n", link.display());
    assert!(profile.contains(&left_out) && profile.contains("symbolic link"), "{profile}");
    // The files of the tree are neither named nor left out: they are the tree's.
    assert_eq!(profile.matches("not named in external_files").count(), 1, "{profile}");
    assert!(!profile.contains(root.to_str().unwrap()), "a file of the tree is named: {profile}");
    assert_eq!(digest(outside.path()), before, "init changed the files outside");
    // Run again, init agrees with it; a profile that does not name the
    // file disagrees, naming it.
    run_in(&root, &["init", "--dry-run"]).exits(0);
    fs::write(root.join("tmws-rollback.toml"), profile.replace(&named, "")).unwrap();
    let said =
        format!("external_files: the profile does not name [{:?}]", file.display().to_string());
    assert_refused(&root, &["init", "--dry-run"], 2, &said);
    fs::write(root.join("tmws-rollback.toml"), &profile).unwrap();
    // The profile init wrote works: the backup keeps the file.
    run_in(&root, &["backup", "--label", LABEL, "--no-tag"])
        .exits(0)
        .stdout_has(contains("1 outside the tree"));
    assert_eq!(sha256(&root.join("backups").join(LABEL).join(kept_at(&file))), sha256(&file));
}

/// post-check's `files.external`, as JSON: the exit code and the check.
fn external_check(root: &Path) -> (i32, serde_json::Value) {
    let args = ["post-check", "--label", LABEL, "--only", "files.external", "--format", "json"];
    let result = run_in(root, &args);
    let report: serde_json::Value = serde_json::from_str(&result.stdout).expect(&result.stdout);
    crate::schema::assert_valid("report", &report);
    let check = report["checks"].as_array().unwrap().iter().find(|c| c["id"] == "files.external");
    (result.code, check.cloned().unwrap_or_else(|| panic!("{result:?}")))
}

/// After a complete rollback, post-check judges the files outside the tree
/// only when the rollback restored them (its journal says so): not
/// applicable without `--external`, passing with it, failing once one
/// differs from the backup's copy again.
#[test]
fn post_check_judges_the_files_outside_the_tree_the_rollback_restored() {
    let (_outside, file) = settings_outside();
    let dir = backed_up_with(&file);
    let root = root(&dir);
    fs::write(&file, "SECRET_KEY = 'the deploy's'\n").unwrap();
    let args = ["rollback", "--label", LABEL, "--scenario", "complete", "--yes"];

    run_in(&root, &args).exits(0);
    let (code, check) = external_check(&root);
    assert_eq!((code, &check["status"]), (0, &"not_applicable".into()), "{check}");
    let detail = check["detail"].as_str().unwrap();
    assert!(detail.contains("left the files outside the tree as they were"), "{detail}");
    assert!(detail.contains("--scenario complete --external"), "{detail}");

    run_in(&root, &[&args[..], &["--external"]].concat()).exits(0);
    let (code, check) = external_check(&root);
    assert_eq!((code, &check["status"]), (0, &"pass".into()), "{check}");
    assert!(check["detail"].as_str().unwrap().contains("restored by the last rollback"));

    fs::write(&file, "SECRET_KEY = 'changed since'\n").unwrap();
    let (code, check) = external_check(&root);
    assert_eq!((code, &check["status"]), (1, &"fail".into()), "{check}");
    let said = format!("{} differs from the backup's copy", file.display());
    assert_eq!(check["detail"], said.as_str(), "{check}");
}

/// diagnose reports a file outside the tree that differs from the backup
/// as evidence, with the command that restores it, and recommends no row
/// for it alone: a deploy may change its settings on purpose.
#[test]
fn diagnose_names_a_file_outside_the_tree_that_differs_from_the_backup() {
    let (_outside, file) = settings_outside();
    let dir = backed_up_with(&file);
    let root = root(&dir);
    let args = ["diagnose", "--label", LABEL, "--format", "json"];
    let unchanged = run_in(&root, &args);
    unchanged.exits(0).stdout_has(contains(file.to_str().unwrap()).not());
    fs::write(&file, "SECRET_KEY = 'the deploy's'\n").unwrap();
    let result = run_in(&root, &args);
    result.exits(0);
    let diagnosis: serde_json::Value = serde_json::from_str(&result.stdout).expect(&result.stdout);
    crate::schema::assert_valid("diagnose", &diagnosis);
    assert_eq!(diagnosis["recommendation"], "healthy", "{diagnosis}");
    let checks = diagnosis["checks"].as_array().unwrap();
    let changed = checks.iter().find(|c| c["id"] == "files.changed").expect("files.changed");
    let said = format!(
        "{}: changed since the backup, outside the tree (`cargo xtask rollback --scenario complete --external",
        file.display()
    );
    assert!(changed["detail"].as_str().unwrap().contains(&said), "{changed}");
}

/// A rollback with `--external` killed while it restores the file outside
/// the tree (its copy staged beside it; renamed into place) or right after
/// that step is journaled: the next run refuses to start afresh, `--resume`
/// finishes it, the file equals the backup's copy, nothing staged is left
/// beside it, and the file it replaced is in the run's one bundle.
#[test]
fn a_crash_in_restore_external_resumes_and_loses_nothing() {
    let (_outside, file) = settings_outside();
    let args = ["rollback", "--label", LABEL, "--scenario", "complete", "--external", "--yes"];
    let staged = file.with_file_name(".svc.cfg.xtask-staged");
    for fault in ["inside:external-staged", "inside:external-restored", "after:last"] {
        fs::write(&file, "SECRET_KEY = 'before the deploy'\n").unwrap();
        let dir = backed_up_with(&file);
        let root = root(&dir);
        let backed_up = sha256(&file);
        fs::write(&file, "SECRET_KEY = 'the deploy's'\n").unwrap();
        let deployed = sha256(&file);
        let plan = run_in(&root, &[&args[..], &["--dry-run"]].concat());
        let step = plan.stdout.lines().map(str::trim_start).find_map(|line| {
            let (number, rest) = line.split_once(". ")?;
            rest.starts_with("restore the files outside the tree").then(|| number.to_string())
        });
        let step = step.unwrap_or_else(|| panic!("no restore-external step: {plan:?}"));
        let fault = fault.replace("last", &step);

        let mut crash = crate::xtask();
        crash.args(args).arg("--root").arg(&root).env("XTASK_ROLLBACK_FAULT", &fault);
        crate::run(&mut crash).exits(-1);
        let expected = if fault == "inside:external-staged" { &deployed } else { &backed_up };
        assert_eq!(&sha256(&file), expected, "{fault}: the file as the crash left it");
        assert_eq!(staged.exists(), fault == "inside:external-staged", "{fault}: the staged copy");
        run_in(&root, &args).exits(5).stderr_has(contains("--resume"));

        let resumed = run_in(&root, &["rollback", "--resume", "--yes"]);
        resumed.exits(0);
        assert_eq!(sha256(&file), backed_up, "{fault}: not restored: {resumed:?}");
        assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o7777, 0o640);
        assert!(!staged.exists(), "{fault}: the staged copy was left beside the file");
        let bundles: Vec<PathBuf> =
            fs::read_dir(root.join("forensics")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(bundles.len(), 1, "{fault}: one run, one bundle: {bundles:?}");
        assert_eq!(sha256(&bundles[0].join("files").join(kept_at(&file))), deployed, "{fault}");
        let (code, check) = external_check(&root);
        assert_eq!((code, &check["status"]), (0, &"pass".into()), "{fault}: {check}");
    }
}
