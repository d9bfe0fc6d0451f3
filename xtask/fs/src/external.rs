//! Files outside every tree that a profile names by their absolute path
//! (`external_files`: a settings file under `/etc`). Each is reached
//! through a handle on its folder, opened from `/` a component at a time
//! with `RESOLVE_NO_SYMLINKS`: no component of the way may be a link. That
//! handle anchors a `RootDir`, so a read, a staged write and its rename go
//! through the same layer as a write in a tree, and stay in that folder.
use std::{
    io,
    path::{Component, Path},
};

use anyhow::{Context, Result};

use crate::{
    handles,
    root_dir::RootDir,
    sys::{self, Resolve},
};
use xtask_base::exit::refused;

/// Why `path` cannot name a file outside the tree by itself, if it cannot:
/// it must be absolute and plain (no `.`, `..` or doubled `/`), and name a
/// file, not `/`.
pub fn not_plain(path: &str) -> Option<&'static str> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Some("a file outside the tree is named by its absolute path (starting with '/')");
    }
    let plain = p.components().skip(1).all(|c| matches!(c, Component::Normal(_)));
    let rebuilt: std::path::PathBuf = p.components().collect();
    if !plain || rebuilt.as_os_str() != p.as_os_str() || path.ends_with('/') {
        return Some("the path must be plain: no '.', no '..', no doubled or trailing '/'");
    }
    if p.file_name().is_none() {
        return Some("it names no file");
    }
    None
}

/// The folder of the file `path` (absolute, plain), reached from `/`
/// without any link; `None` when that folder does not exist. A link, or a
/// component that is not a folder, anywhere on the way is refused (exit 4)
/// naming the folder.
pub fn folder(path: &Path) -> Result<Option<RootDir>> {
    let parent = path
        .parent()
        .filter(|_| path.is_absolute())
        .with_context(|| format!("{} is not the absolute path of a file", path.display()))?;
    let top = sys::open_dir_handle(Path::new("/")).context("open /")?;
    let relative = parent.strip_prefix("/").unwrap_or(parent);
    match handles::open_dir(&top, relative, Resolve::NoLinks) {
        Ok(fd) => Ok(Some(RootDir::outside(parent, fd))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) if sys::is_link_refusal(&err) => Err(refused(format!(
            "{} is, or passes through, a symbolic link or something that is not a folder ({err}): a file outside the tree is reached through no link",
            parent.display()
        ))),
        Err(err) => Err(err).with_context(|| format!("open the folder {}", parent.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_absolute_paths_name_a_file() {
        assert_eq!(not_plain("/etc/svc/svc.cfg"), None);
        for bad in ["etc/x", "/etc/../x", "/etc/./x", "//etc/x", "/etc//x", "/etc/x/", "/"] {
            assert!(not_plain(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn a_link_on_the_way_is_refused_and_a_missing_folder_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::fs::create_dir(real.join("etc")).unwrap();
        std::fs::write(real.join("etc/app.cfg"), "x").unwrap();
        std::os::unix::fs::symlink(real.join("etc"), real.join("link")).unwrap();
        let found = folder(&real.join("etc/app.cfg")).unwrap().expect("the folder is there");
        assert!(found.is_file(&real.join("etc/app.cfg")));
        assert!(folder(&real.join("gone/app.cfg")).unwrap().is_none());
        let err = folder(&real.join("link/app.cfg")).unwrap_err();
        assert_eq!(xtask_base::exit::kind_of(&err), xtask_base::exit::Kind::Unsafe, "{err:#}");
        std::os::unix::fs::symlink(real.join("etc/app.cfg"), real.join("etc/linked.cfg")).unwrap();
        let err = found.open_read(&real.join("etc/linked.cfg")).unwrap_err();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
    }
}
