//! The working-tree writes of a move, done by the tool through the
//! file-access layer instead of libgit2's checkout: libgit2 opens a tracked
//! file and writes into it, so a file hard-linked to one outside the tree,
//! or a tracked folder replaced by a link out of the root, would carry the
//! write outside. Here every file is a new file renamed over the old one,
//! every folder is reached without a link, and blobs come from git2.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use git2::{Repository, Tree};

use xtask_fs::{RootDir, files, sys::FileType};

/// git's modes for a regular file and an executable one.
const BLOB: i32 = 0o100644;
const EXECUTABLE: i32 = 0o100755;

/// Why `path` cannot be written or removed by a move to `target` (`None`:
/// it can): a tracked link or submodule, a content filter git would apply,
/// a folder on the way that is a link or not a folder, or something other
/// than a regular file where the file goes. Checked before step 1.
pub fn unwritable(repo: &Repository, fs: &RootDir, target: &Tree, path: &str) -> Option<String> {
    if let Ok(entry) = target.get_path(Path::new(path))
        && ![BLOB, EXECUTABLE].contains(&entry.filemode())
    {
        return Some(format!(
            "{path} is a symbolic link or a submodule in the target commit: the tool writes only regular files"
        ));
    }
    if let Some(filter) = filtered(repo, path) {
        return Some(format!(
            "{path} goes through git's {filter}: the tool writes blobs as stored and would not apply it"
        ));
    }
    let workdir = repo.workdir()?;
    let mut on_the_way = PathBuf::from(workdir);
    let relative = Path::new(path);
    let folders = relative.parent().into_iter().flat_map(Path::components);
    for folder in folders {
        on_the_way.push(folder);
        match fs.kind(&on_the_way) {
            Ok(None) => return None,
            Ok(Some(FileType::Directory)) => {}
            Ok(Some(_)) => {
                return Some(format!(
                    "{} is a symbolic link or not a folder: the tool never writes through it",
                    on_the_way.strip_prefix(workdir).unwrap_or(&on_the_way).display()
                ));
            }
            Err(err) => return Some(format!("{path}: {err:#}")),
        }
    }
    match fs.kind(&workdir.join(relative)) {
        Ok(None | Some(FileType::RegularFile)) => None,
        Ok(Some(_)) => Some(format!(
            "{path} is a symbolic link, a folder or a special file in the working tree: the tool replaces only regular files"
        )),
        Err(err) => Some(format!("{path}: {err:#}")),
    }
}

/// The content filter or line-ending conversion git applies to `path` on
/// checkout, if any (git-lfs, `eol=crlf`, `core.autocrlf=true`).
fn filtered(repo: &Repository, path: &str) -> Option<String> {
    let flags = git2::AttrCheckFlags::FILE_THEN_INDEX;
    let attr = |name: &str| {
        let value = repo.get_attr(Path::new(path), name, flags).ok().flatten()?;
        (git2::AttrValue::from_string(Some(value)) != git2::AttrValue::Unspecified)
            .then(|| value.to_string())
    };
    if let Some(filter) = attr("filter") {
        return Some(format!("filter {filter}"));
    }
    if attr("eol").as_deref() == Some("crlf") {
        return Some("eol=crlf conversion".into());
    }
    let autocrlf = repo.config().ok()?.get_bool("core.autocrlf").unwrap_or(false);
    (autocrlf && attr("text").as_deref() != Some("false"))
        .then(|| "core.autocrlf conversion".into())
}

/// Makes each of `paths` in the working tree what it is in `target`: the
/// blob written to a new file renamed over the old one, with git's mode, or
/// the file removed (and its folders, once empty) when `target` lacks it.
/// The index entries of the paths follow. Nothing is written in place.
pub fn write_paths(repo: &Repository, fs: &RootDir, target: &Tree, paths: &[String]) -> Result<()> {
    let workdir = repo.workdir().context("the repository has no working tree")?;
    let mut index = repo.index()?;
    for path in paths {
        let full = workdir.join(path);
        match target.get_path(Path::new(path)) {
            Ok(entry) => {
                let blob = repo.find_blob(entry.id()).with_context(|| format!("read {path}"))?;
                if let Some(parent) = full.parent() {
                    fs.create_dir_all(parent)?;
                }
                files::write_atomic(fs, &full, blob.content())?;
                let mode = if entry.filemode() == EXECUTABLE { 0o755 } else { 0o644 };
                fs.set_mode(&full, mode)?;
                index.add_path(Path::new(path))?;
            }
            Err(_) => {
                if fs.kind(&full)?.is_some() {
                    fs.remove_file(&full)?;
                }
                remove_empty_folders(fs, workdir, &full)?;
                if index.get_path(Path::new(path), 0).is_some() {
                    index.remove_path(Path::new(path))?;
                }
            }
        }
    }
    index.write().context("write the git index")
}

/// Removes the folders above a removed file that it leaves empty, as git
/// does, up to the working tree's top.
fn remove_empty_folders(fs: &RootDir, workdir: &Path, removed: &Path) -> Result<()> {
    for folder in removed.ancestors().skip(1) {
        if folder == workdir || !folder.starts_with(workdir) {
            break;
        }
        if fs.kind(folder)? != Some(FileType::Directory) || !fs.list(folder)?.is_empty() {
            break;
        }
        fs.remove_dir_all(folder)?;
    }
    Ok(())
}
