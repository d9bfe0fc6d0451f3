//! Checks change nothing: the checks that run the tree's programs (the app,
//! pytest, alembic, the import check) run them on a scratch copy of the
//! tree, confined to that copy, with the profile's URL variable naming the
//! copy's database. An app that upgrades its schema at start-up, writes its
//! data folder or its log, or leaves bytecode and caches, does so in the
//! copy, which is removed afterwards (or by the signal path, see
//! `xtask_fs::scratch`).
use std::sync::Arc;

use anyhow::{Context, Result};

use xtask_fs::{RootDir, files, scratch_copy};
use xtask_model::profile::Tree;

pub struct CheckCopy {
    /// Removed (with the copy) when this is dropped.
    _dir: files::Scratch,
    pub tree: Tree,
    pub cost: scratch_copy::Cost,
}

impl CheckCopy {
    pub fn of(tree: &Tree) -> Result<CheckCopy> {
        let dir = files::scratch_dir("tmws-check-copy")?;
        // The copy keeps the tree's folder name: an app may use it.
        let name = tree.root.file_name().map_or("tree".into(), |n| n.to_os_string());
        let root = dir.path().join(name);
        let cost = scratch_copy::copy_tree(&tree.fs, &tree.root, &root)
            .context("copy the tree for the checks that run its programs")?;
        let root = xtask_fs::outside::canonicalize(&root)?;
        let fs = Arc::new(RootDir::open(&root)?);
        let copy =
            Tree { root, profile: tree.profile.clone(), fs, copy_of: Some(tree.root.clone()) };
        Ok(CheckCopy { _dir: dir, tree: copy, cost })
    }
}
