//! Where a migration rollback takes the database: down to the backup's
//! revision, `--to REV` or `--steps N`, or up to `--to head` (or any
//! revision above the database's, as after a database rollback under the
//! deployed code); resolved when the plan is made (a relative `-1` or
//! `head` would move on every resume), and refused below the backup's
//! revision without `--allow-data-loss`.
use anyhow::{Context, Result, bail};

use super::choices::Down;
use xtask_adapters::sqlite;
use xtask_base::exit::{refused, usage};
use xtask_model::{manifest::Manifest, migrations::Graph, profile::Tree};

/// The revision a migration step takes the database to, and whether that
/// is an upgrade (the database's revision is below it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    pub revision: String,
    pub up: bool,
}

/// Where a migration rollback takes the database, resolved now so that a
/// resumed run goes to the same place (a relative `-1` would not).
pub(super) fn migration_target(
    tree: &Tree,
    manifest: &Manifest,
    down: &Down,
    allow_data_loss: bool,
) -> Result<Target> {
    let graph =
        tree.graph().map_err(|e| usage(format!("the tree's migrations cannot be read: {e:#}")))?;
    let revision = downgrade_target(tree, &graph, manifest, down, allow_data_loss)?;
    // Up when the database's one revision is below the target: alembic
    // upgrades to it, with the same copy, identity and checks. Only a
    // target other than the backup's reads the database now: opening it
    // rewrites its -shm, which the preserve step must keep as found.
    let up = match (down, current_revision_unless_backup(tree, down)) {
        (Down::Backup, _) | (_, None) => false,
        (_, Some(current)) => graph.ancestors(&revision).contains(&current),
    };
    Ok(Target { revision, up })
}

/// The database's one revision, when it can be read and there is one;
/// never read for the backup's revision.
fn current_revision_unless_backup(tree: &Tree, down: &Down) -> Option<String> {
    if *down == Down::Backup {
        return None;
    }
    let conn = sqlite::open_tree_database(tree).ok()?;
    let [revision] = <[String; 1]>::try_from(sqlite::alembic_revisions(&conn).ok()?).ok()?;
    Some(revision)
}

/// The code's one head, for `--to head`.
fn head_of(graph: &Graph, tree: &Tree) -> Result<String> {
    match graph.heads().as_slice() {
        [one] => Ok(one.clone()),
        heads => Err(usage(format!(
            "--to head: the revisions of {} have {} heads ({}): pass --to REV",
            tree.profile.migrations,
            heads.len(),
            heads.join(", ")
        ))),
    }
}

fn downgrade_target(
    tree: &Tree,
    graph: &Graph,
    manifest: &Manifest,
    down: &Down,
    allow_data_loss: bool,
) -> Result<String> {
    if let Down::To(to) = down {
        if to == "head" {
            return head_of(graph, tree);
        }
        if to != "base" && !graph.contains(to) {
            let known: Vec<&String> = graph.revisions.keys().collect();
            return Err(usage(format!(
                "--to {to}: no revision file of {} defines it (known: {})",
                tree.profile.migrations,
                known.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        return below_backup(graph, manifest, to, &format!("--to {to}"), allow_data_loss)
            .map(|()| to.clone());
    }
    let Down::Steps(steps) = *down else {
        let revision = manifest
            .revision()
            .map(String::from)
            .ok_or_else(|| usage("the backup's database has several revisions: pass --to REV"))?;
        if !graph.contains(&revision) {
            return Err(usage(format!(
                "the backup's revision {revision} is not defined by {}: restore the migrations first (--scenario complete)",
                tree.profile.migrations
            )));
        }
        return Ok(revision);
    };
    let conn = sqlite::open_tree_database(tree)?;
    let current = sqlite::alembic_revisions(&conn)?;
    let [revision] = <[String; 1]>::try_from(current).map_err(|_| {
        usage("the database has several revisions: pass --to REV instead of --steps")
    })?;
    let target = steps_down(graph, revision, steps, allow_data_loss)
        .with_context(|| format!("in the revisions of {}", tree.profile.migrations))?;
    below_backup(graph, manifest, &target, &format!("--steps {steps}"), allow_data_loss)?;
    Ok(target)
}

/// A downgrade to a revision below the backup's drops what the backup's
/// schema holds (the tables and columns of the revisions in between): it
/// needs `--allow-data-loss`, as base does.
fn below_backup(
    graph: &Graph,
    manifest: &Manifest,
    target: &str,
    flag: &str,
    allow_data_loss: bool,
) -> Result<()> {
    let Some(backup) = manifest.revision() else { return Ok(()) };
    let mut below = Vec::new();
    let mut next = vec![backup.to_string()];
    while let Some(revision) = next.pop() {
        for down in graph.revisions.get(&revision).map(|r| r.down.clone()).unwrap_or_default() {
            if !below.contains(&down) {
                below.push(down.clone());
                next.push(down);
            }
        }
    }
    let is_below = target == "base" || below.iter().any(|r| r == target);
    if is_below && !allow_data_loss {
        return Err(refused(format!(
            "{flag} goes down to {target}, below the backup's revision {backup}: the downgrades between them drop tables or columns the backup's schema holds, with their data. Pass --allow-data-loss to go there anyway, or leave out {} to stop at the backup's revision",
            flag.split(' ').next().unwrap_or(flag)
        )));
    }
    Ok(())
}

/// The revision `steps` below `revision`, following each one's single
/// parent; `base` (below the first) only with `allow_data_loss`.
fn steps_down(
    graph: &Graph,
    mut revision: String,
    steps: u32,
    allow_data_loss: bool,
) -> Result<String> {
    for _ in 0..steps {
        let Some(node) = graph.revisions.get(&revision) else {
            bail!("revision {revision} is not defined");
        };
        match node.down.as_slice() {
            [] if !allow_data_loss => {
                return Err(refused(format!(
                    "--steps {steps} goes below the first revision to base, which drops every table and destroys all data: it needs --allow-data-loss"
                )));
            }
            [] => return Ok("base".into()),
            [one] => revision = one.clone(),
            _ => {
                return Err(usage(format!(
                    "{revision} is a merge of several revisions: pass --to REV"
                )));
            }
        }
    }
    Ok(revision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xtask_base::exit::{Kind as ExitKind, kind_of};
    use xtask_model::migrations::Revision;

    /// a <- b <- (c, d) <- m: two branches merged.
    fn graph() -> Graph {
        let mut graph = Graph::default();
        for (id, down) in
            [("a", &[][..]), ("b", &["a"]), ("c", &["b"]), ("d", &["b"]), ("m", &["c", "d"])]
        {
            let down = down.iter().map(|d| d.to_string()).collect();
            graph.revisions.insert(id.into(), Revision { id: id.into(), down, file: id.into() });
        }
        graph
    }

    #[test]
    fn steps_follow_single_parents_and_stop_at_a_merge_or_base() {
        let g = graph();
        assert_eq!(steps_down(&g, "c".into(), 1, false).unwrap(), "b");
        assert_eq!(steps_down(&g, "c".into(), 2, false).unwrap(), "a");
        let base = steps_down(&g, "c".into(), 3, false).unwrap_err();
        assert_eq!(kind_of(&base), ExitKind::Unsafe, "{base:#}");
        assert_eq!(steps_down(&g, "c".into(), 3, true).unwrap(), "base");
        let merge = steps_down(&g, "m".into(), 1, false).unwrap_err();
        assert!(format!("{merge:#}").contains("merge of several revisions"), "{merge:#}");
        assert!(steps_down(&g, "x".into(), 1, false).is_err());
    }
}
