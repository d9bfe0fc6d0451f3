//! The push and pull rows: ours against restic run by hand on the same
//! backup folder, with the same repository options (`--no-cache`), each in
//! a repository of its own made from one empty repository (so that restic's
//! key derivation at `init` is paid once, not per run).
use crate::cli::{flags::Measures, ui};
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};
use xtask_fs::unconfined;

use anyhow::{Context, Result, ensure};

use super::{Pair, Run, Setup, baseline, interleaved, measured, ours, ours_with, pair};

/// Whether restic is installed; when it is not, the rows are left out and
/// the bench says so.
pub fn restic_found() -> bool {
    let found = Command::new("restic").arg("version").output().is_ok_and(|o| o.status.success());
    if !found {
        ui::note(
            "bench: restic is not installed: the push and pull rows are left out (Debian: apt-get install restic)",
        );
    }
    found
}

/// Repositories and their password, under the bench's report folder.
pub struct Repos {
    dir: PathBuf,
    password: PathBuf,
    empty: PathBuf,
}

impl Repos {
    /// The folder, the password and the empty repository, once per bench.
    pub fn new(out: &Path) -> Result<Repos> {
        let dir = out.join("restic");
        unconfined::remove_dir_all(&dir)?;
        unconfined::create_dir_all(&dir)?;
        let password = dir.join("password");
        // A password of the bench's own: the repositories hold sandbox data.
        unconfined::write(
            &password,
            xtask_fs::files::sha256_bytes(format!("{:?}", std::time::SystemTime::now()).as_bytes()),
        )?;
        let repos = Repos { empty: dir.join("empty"), dir, password };
        let init = repos.restic(&repos.empty, Path::new("."), &["init", "-q"]).output()?;
        ensure!(init.status.success(), "restic init: {}", String::from_utf8_lossy(&init.stderr));
        Ok(repos)
    }

    /// Everything a size left behind, but the empty repository and the password.
    fn clear(&self) -> Result<()> {
        for name in xtask_fs::outside::names(&self.dir)? {
            let path = self.dir.join(name);
            if path != self.empty && path != self.password {
                unconfined::remove_dir_all(&path).or_else(|_| unconfined::remove_file(&path))?;
            }
        }
        Ok(())
    }

    /// All of it, when the bench is done.
    pub fn remove(self) -> Result<()> {
        unconfined::remove_dir_all(&self.dir)
    }

    /// A new empty repository named `name`: a copy of the empty one.
    fn fresh(&self, name: &str) -> Result<PathBuf> {
        let repo = self.dir.join(name);
        unconfined::remove_dir_all(&repo)?;
        let copied = Command::new("cp").arg("-a").arg(&self.empty).arg(&repo).status()?;
        ensure!(copied.success(), "copy the empty repository to {}", repo.display());
        Ok(repo)
    }

    fn env(&self) -> [(&'static str, &Path); 1] {
        [("RESTIC_PASSWORD_FILE", self.password.as_path())]
    }

    /// restic as a person runs it by hand, in `cwd`.
    fn restic(&self, repo: &Path, cwd: &Path, args: &[&str]) -> Command {
        let mut command = Command::new("restic");
        command.arg("-r").arg(repo).arg("--no-cache").args(args).current_dir(cwd);
        command.env("RESTIC_PASSWORD_FILE", &self.password);
        command
    }

    fn by_hand(&self, repo: &Path, cwd: &Path, args: &[&str]) -> Result<Run> {
        measured(self.restic(repo, cwd, args))
    }
}

pub fn measure(c: &Setup<'_>, only: &Measures, repos: &Repos) -> Result<Vec<Pair>> {
    let root = c.tree;
    let backup = root.join("backups/bench");
    let db_mib = super::database_mib(root)?;
    let env = repos.env();
    let progress = |what: &str| {
        ui::note(&format!("bench: {} {}: {what}, {} runs each", c.label, c.shape, c.runs))
    };
    let mut pairs = Vec::new();
    // A push needs a verified backup: verified once here, unmeasured, as a
    // release engineer runs verify-backup before pushing.
    ensure!(ours(&["verify-backup", "--label", "bench"], root)?.ok, "verify-backup bench failed");
    let repo = |who: &str, i: u32| repos.dir.join(format!("{who}-{i}"));

    let push = |repo: &Path| {
        let repo = repo.display().to_string();
        ours_with(&["push", "--label", "bench", "--repo", &repo], root, &env, Stdio::null())
    };
    // The first push, into an empty repository: measured for the push rows;
    // made once, unmeasured, when only the pull is (it needs a repository).
    let last = c.runs - 1;
    if only.has("push") {
        progress("push into an empty repository");
        let (a, b) = interleaved(c.runs, |i| {
            let (ours_repo, base_repo) =
                (repos.fresh(&format!("ours-{i}"))?, repos.fresh(&format!("base-{i}"))?);
            Ok((push(&ours_repo)?, repos.by_hand(&base_repo, &backup, &["backup", "-q", "."])?))
        })?;
        pairs.push(pair("push", c, db_mib, &a, &b, c.gib.then_some(1.1)));
    } else {
        ensure!(push(&repos.fresh(&format!("ours-{last}"))?)?.ok, "push bench failed");
    }
    if only.has("push") {
        progress("push of an unchanged backup");
        let (a, b) = interleaved(c.runs, |_| {
            Ok((
                push(&repo("ours", last))?,
                repos.by_hand(&repo("base", last), &backup, &["backup", "-q", "."])?,
            ))
        })?;
        pairs.push(pair("push (unchanged)", c, db_mib, &a, &b, c.gib.then_some(1.1)));
        pairs.push(one_table_changed(c, repos, db_mib, &repo("ours", last), &repo("base", last))?);
    }
    if only.has("pull") {
        progress("pull");
        pairs.push(pull(c, repos, db_mib, &repo("ours", last))?);
    }
    repos.clear()?;
    Ok(pairs)
}

/// A second backup of the tree after one table changed, pushed into the
/// repositories that hold the first: restic stores only what is new, and
/// the row says how much that was.
fn one_table_changed(
    c: &Setup<'_>,
    repos: &Repos,
    db_mib: f64,
    ours_repo: &Path,
    base_repo: &Path,
) -> Result<Pair> {
    let root = c.tree;
    let label = "bench-changed";
    let changed = root.join("backups").join(label);
    if !xtask_fs::outside::is_dir(&changed) {
        let conn = rusqlite::Connection::open(root.join("data/tmws.db"))?;
        conn.execute("UPDATE tools SET name = name || '-renamed'", [])?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        drop(conn);
        ensure!(ours(&["backup", "--label", label, "--no-tag"], root)?.ok, "backup {label} failed");
    }
    ensure!(ours(&["verify-backup", "--label", label], root)?.ok, "verify-backup {label} failed");
    let added = c.out.join("restic").join("pushed.txt");
    let (a, b) = interleaved(c.runs, |i| {
        // Each run pushes into a copy of the repository as the first push left it.
        let (o, r) = (
            repos.fresh(&format!("changed-ours-{i}"))?,
            repos.fresh(&format!("changed-base-{i}"))?,
        );
        for (from, to) in [(ours_repo, &o), (base_repo, &r)] {
            unconfined::remove_dir_all(to)?;
            ensure!(
                Command::new("cp").arg("-a").arg(from).arg(to).status()?.success(),
                "copy {}",
                from.display()
            );
        }
        let stdout = unconfined::create(&added)?;
        let repo = o.display().to_string();
        let ours = ours_with(
            &["push", "--label", label, "--repo", &repo, "--format", "json"],
            root,
            &repos.env(),
            stdout.into(),
        )?;
        Ok((ours, repos.by_hand(&r, &changed, &["backup", "-q", "."])?))
    })?;
    let said = xtask_fs::outside::read_to_string(&added).unwrap_or_default();
    let mut row = pair("push (one table changed)", c, db_mib, &a, &b, c.gib.then_some(1.1));
    // From push's document: what it stored and how much the repository grew.
    row.note = serde_json::from_str::<serde_json::Value>(&said).ok().map(|pushed| {
        let bytes = |key: &str| xtask_base::units::size(pushed[key].as_u64().unwrap_or(0));
        format!(
            "{} files, {}; the repository grew by {}",
            pushed["files"],
            bytes("bytes"),
            bytes("added")
        )
    });
    Ok(row)
}

/// `pull` into a second tree (hard links of the first, without its
/// backups) against `restic restore` of the same snapshot and the
/// runbook's own checks of what it restored (`sha256sum -c SHA256SUMS`,
/// `PRAGMA integrity_check`): a pull verifies what it restores too.
fn pull(c: &Setup<'_>, repos: &Repos, db_mib: f64, repo: &Path) -> Result<Pair> {
    let other = c.out.join("restic").join("tree");
    unconfined::remove_dir_all(&other)?;
    let linked = Command::new("cp").arg("-al").arg(c.tree).arg(&other).status()?;
    ensure!(linked.success(), "link {} to {}", c.tree.display(), other.display());
    for own in ["backups", ".tmws-rollback"] {
        unconfined::remove_dir_all(other.join(own))?;
    }
    let target = c.out.join("restic").join("restored");
    let repo_s = repo.display().to_string();
    let (a, b) = interleaved(c.runs, |_| {
        unconfined::remove_dir_all(other.join("backups"))?;
        unconfined::remove_dir_all(&target)?;
        let ours = ours_with(
            &["pull", "--label", "bench", "--repo", &repo_s],
            &other,
            &repos.env(),
            Stdio::null(),
        )?;
        let target_s = target.display().to_string();
        let restored =
            repos.by_hand(repo, c.out, &["restore", "latest", "-q", "--target", &target_s])?;
        let checked = baseline(&["runbook-baseline.sh", "verify-restored", &target_s], c.out, &[])?;
        Ok((ours, restored.then(checked)))
    })
    .context("pull")?;
    unconfined::remove_dir_all(&other)?;
    unconfined::remove_dir_all(&target)?;
    Ok(pair("pull", c, db_mib, &a, &b, c.gib.then_some(1.1)))
}
