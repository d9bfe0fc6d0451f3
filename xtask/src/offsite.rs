//! `cargo xtask push` and `pull`: a backup folder to and from a restic
//! repository. A push stores a verified backup and checks that what the
//! repository holds hashes to the manifest; a pull restores beside
//! `backups/`, verifies it with every verify-backup check, then renames it
//! into place, never over an existing backup.
use std::io::Read;

use anyhow::{Context, Result};
use xshell::Shell;

use crate::{
    exit::{failed, refused, usage},
    flags, fsutil,
    manifest::{MANIFEST_FILE, Manifest},
    profile::{Tree, labels, labels_hint},
    restic,
    sys::Rename,
    verify_backup,
};

impl flags::Push {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let (tree, label, repo) =
            resolve(self.root.as_deref(), self.label.as_deref(), self.repo.as_deref())?;
        println!("{}", push(sh, &tree, &label, &repo, self.python.as_deref())?);
        Ok(())
    }
}

/// Stores a verified local backup in the repository and checks that what
/// the repository holds hashes to the manifest; says what it did.
pub fn push(
    sh: &Shell,
    tree: &Tree,
    label: &str,
    repo: &str,
    python: Option<&std::path::Path>,
) -> Result<String> {
    let dir = tree.backup(label);
    if tree.fs.dir(&dir).is_err() {
        return Err(usage(format!("no backup {label} to push{}", labels_hint(&labels(tree)))));
    }
    let report = verify_backup::verify(sh, &dir, Some(tree), python)?;
    if !report.ok() {
        return Err(refused(format!(
            "backup {label} fails verification, so it is not pushed:\n  {}",
            report.failures().join("\n  ")
        )));
    }
    let manifest = read_manifest(tree, &dir)?;
    let id = restic::push(sh, repo, &dir, &manifest)?;
    // What the repository holds must hash to the manifest.
    let scratch = fsutil::scratch_dir("tmws-push-check")?;
    restic::restore(sh, repo, &id, scratch.path())?;
    let differ = differences(scratch.path(), &manifest)?;
    if !differ.is_empty() {
        return Err(failed(format!(
            "snapshot {id} in {repo} does not hold backup {label} as its manifest says: {}",
            differ.join("; ")
        )));
    }
    Ok(format!(
        "pushed backups/{label} to {repo} as snapshot {}; its {} files hash to the manifest",
        &id[..id.len().min(8)],
        manifest.files.len() + 1
    ))
}

impl flags::Pull {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let (tree, label, repo) =
            resolve(self.root.as_deref(), self.label.as_deref(), self.repo.as_deref())?;
        println!("{}", pull(sh, &tree, &label, &repo, self.python.as_deref())?);
        Ok(())
    }
}

/// Restores the newest snapshot of `label` into `backups/<label>`: staged
/// beside it, verified with every verify-backup check, then renamed, never
/// over an existing backup; says what it did.
pub fn pull(
    sh: &Shell,
    tree: &Tree,
    label: &str,
    repo: &str,
    python: Option<&std::path::Path>,
) -> Result<String> {
    let target = tree.backup(label);
    if tree.fs.kind(&target)?.is_some() {
        return Err(usage(format!(
            "{} exists: a backup is never overwritten; remove or rename it first",
            target.display()
        )));
    }
    let id = restic::latest(sh, repo, label)?;
    tree.fs.create_dir_all(&tree.backups())?;
    let stage = tree.backups().join(format!(".{label}.pulling-{}", std::process::id()));
    tree.fs.create_dir(&stage, 0o755).with_context(|| format!("create {}", stage.display()))?;
    let pulled = (|| {
        restic::restore(sh, repo, &id, &stage)?;
        let report = verify_backup::verify(sh, &stage, Some(tree), python)?;
        if !report.ok() {
            return Err(failed(format!(
                "snapshot {id} of {label} fails verification, so it is not put in place:\n  {}",
                report.failures().join("\n  ")
            )));
        }
        tree.fs.rename(&stage, &target, Rename::NoReplace)
    })();
    if pulled.is_err() {
        let _ = tree.fs.remove_dir_all(&stage);
    }
    pulled?;
    Ok(format!(
        "pulled backup {label} from {repo} (snapshot {}) into {}; it passed verify-backup",
        &id[..id.len().min(8)],
        target.display()
    ))
}

/// The tree, the label and the repository of a push or a pull.
fn resolve(
    root: Option<&std::path::Path>,
    label: Option<&str>,
    repo: Option<&str>,
) -> Result<(Tree, String, String)> {
    let (tree, label) = Tree::with_label(root, label)?;
    let repo = restic::repository(repo, tree.profile.backup_repo.as_deref())?;
    Ok((tree, label, repo))
}

fn read_manifest(tree: &Tree, dir: &std::path::Path) -> Result<Manifest> {
    let mut text = String::new();
    tree.fs.open_read(&dir.join(MANIFEST_FILE))?.read_to_string(&mut text)?;
    Manifest::parse(&text)
}

/// The files of a restored folder that do not hash to the manifest.
fn differences(dir: &std::path::Path, manifest: &Manifest) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for file in &manifest.files {
        match fsutil::sha256_file(&dir.join(&file.backup_path)) {
            Ok((sha, _)) if sha == file.sha256 => {}
            Ok(_) => out.push(format!("{} has another hash", file.backup_path)),
            Err(_) => out.push(format!("{} is missing", file.backup_path)),
        }
    }
    let restored = std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap_or_default();
    if restored != manifest.render() {
        out.push(format!("{MANIFEST_FILE} differs"));
    }
    Ok(out)
}
