//! The step that restores the files outside the tree (`--external`): each
//! through a handle on its folder (no link on the way or at the file),
//! the current file kept in the bundle first, the backup's copy staged
//! beside it, hash-checked, given the manifest's permission bits (never
//! setuid, setgid or sticky) and the current file's owner, then renamed
//! into place.
use std::{os::unix::fs::MetadataExt, path::Path};

use anyhow::{Context, Result};

use super::Ctx;
use crate::external;
use xtask_fs::{files, sys};
use xtask_model::manifest::Kind;

impl Ctx<'_> {
    /// Restores the files outside the tree that differ from the backup.
    pub(super) fn restore_external(&mut self, paths: &[String]) -> Result<String> {
        let entries: Vec<_> = self
            .manifest
            .files_of(Kind::External)
            .filter(|f| paths.contains(&f.source_path))
            .cloned()
            .collect();
        let mut restored = Vec::new();
        for entry in &entries {
            let target = Path::new(&entry.source_path);
            let dir = external::folder(&entry.source_path)?;
            let present = dir.expect_file_or_nothing(target)?;
            let now = match present {
                true => Some(dir.sha256(target)?.0),
                false => None,
            };
            if now.as_deref() == Some(entry.sha256.as_str()) {
                continue;
            }
            if let Some(now) = &now {
                self.keep_before_overwrite(&entry.source_path, now)?;
            }
            // As root, the file stays its service's: the current owner and group.
            let owner = match present && sys::running_as_root() {
                true => Some(dir.open_read(target)?.metadata()?).map(|m| (m.uid(), m.gid())),
                false => None,
            };
            let source = self.backup_file(&entry.backup_path)?;
            let mode = entry.restored_mode();
            let staged = files::stage_copy(&dir, &source, target, Some(&entry.sha256), mode)
                .with_context(|| format!("restore {}", entry.source_path))?;
            if let Some((uid, gid)) = owner {
                dir.set_owner(staged.path(), uid, gid)?;
            }
            crate::rollback::fault_hook("inside", "external-staged");
            staged.commit().with_context(|| format!("restore {}", entry.source_path))?;
            crate::rollback::fault_hook("inside", "external-restored");
            self.changed = true;
            restored.push(entry.source_path.clone());
        }
        Ok(match restored.is_empty() {
            true => {
                format!("all {} files outside the tree already equal the backup", entries.len())
            }
            false => format!(
                "restored {} (each file it replaced is in {})",
                restored.join(", "),
                self.rel(&self.bundle_dir)
            ),
        })
    }

    /// The bundle holds the file outside the tree as it is now (`sha256`)
    /// before it is overwritten: the preserve step kept it, unless it
    /// changed since (or this is a resumed run), when it is kept again.
    fn keep_before_overwrite(&mut self, source: &str, sha256: &str) -> Result<()> {
        let kept_at = format!("files/{}", external::backup_path(source));
        let bundle = self.bundle()?;
        let kept = bundle.facts.files.iter().any(|f| {
            let same_name = f.path == kept_at || f.path.starts_with(&format!("{kept_at}."));
            same_name && f.sha256 == sha256
        });
        if kept {
            return Ok(());
        }
        match bundle.keep_external(source) {
            Some(file) if file.sha256 == sha256 => {
                bundle.write_reports()?;
                Ok(())
            }
            _ => Err(xtask_base::exit::refused(format!(
                "{source} could not be kept in the bundle as it is now, so it is not overwritten"
            ))),
        }
    }
}
