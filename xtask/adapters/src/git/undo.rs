//! What a move may change, kept so that a failed move is put back.
use std::path::Path;

use anyhow::{Context, Result};
use git2::{BranchType, Oid, Repository};

use xtask_fs::{RootDir, files, sys::FileType};

/// What HEAD was, to put it back: a branch (and the commit it pointed at,
/// which a hard reset moves) or a detached commit.
enum HeadWas {
    Branch(String, Oid),
    Detached(Oid),
}

/// A working-tree file's bytes and mode.
type Kept = (Vec<u8>, u32);

/// The state a move may change, kept so a failed move can be undone.
pub struct Undo {
    head: HeadWas,
    index: Option<Vec<u8>>,
    /// Each moved path's bytes and mode in the working tree (`None`: absent).
    files: Vec<(String, Option<Kept>)>,
    pub created_branch: Option<String>,
}

impl Undo {
    pub fn take(repo: &Repository, fs: &RootDir, paths: &[String]) -> Result<Undo> {
        let head = repo.head()?;
        let at = head.peel_to_commit()?.id();
        let head = match head.name() {
            Ok(name) if head.is_branch() => HeadWas::Branch(name.to_string(), at),
            _ => HeadWas::Detached(at),
        };
        let workdir = repo.workdir().context("the repository has no working tree")?;
        let files = paths.iter().map(|p| (p.clone(), kept(fs, &workdir.join(p)))).collect();
        let index = kept(fs, &repo.path().join("index")).map(|(bytes, _)| bytes);
        Ok(Undo { head, index, files, created_branch: None })
    }

    /// Puts the paths, the index and HEAD back as they were.
    pub fn apply(self, repo: &Repository, fs: &RootDir) -> Result<()> {
        let workdir = repo.workdir().context("the repository has no working tree")?;
        for (path, kept) in &self.files {
            let full = workdir.join(path);
            match kept {
                Some((bytes, mode)) => {
                    if let Some(parent) = full.parent() {
                        fs.create_dir_all(parent)?;
                    }
                    files::write_atomic(fs, &full, bytes)?;
                    fs.set_mode(&full, *mode)?;
                }
                None if fs.kind(&full)?.is_some() => fs.remove_file(&full)?,
                None => {}
            }
        }
        if let Some(index) = &self.index {
            files::write_atomic(fs, &repo.path().join("index"), index)?;
        }
        match &self.head {
            HeadWas::Branch(name, at) => {
                repo.reference(name, *at, true, "tmws rollback: put the branch back")?;
                repo.set_head(name)?
            }
            HeadWas::Detached(oid) => repo.set_head_detached(*oid)?,
        }
        if let Some(branch) = &self.created_branch
            && let Ok(mut created) = repo.find_branch(branch, BranchType::Local)
        {
            created.delete()?;
        }
        Ok(())
    }
}

/// A regular file's bytes and mode, read through the file-access layer;
/// `None` for anything else (nothing, a link, a folder).
fn kept(fs: &RootDir, path: &Path) -> Option<Kept> {
    use std::{io::Read, os::unix::fs::PermissionsExt};
    if fs.kind(path).ok()?? != FileType::RegularFile {
        return None;
    }
    let mut file = fs.open_read(path).ok()?;
    let mode = file.metadata().ok()?.permissions().mode() & 0o7777;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    Some((bytes, mode))
}
