//! What diagnose recommends: for the state the evidence describes, the
//! actions that lead to a healthy tree, best first. Each is dry-run on the
//! tree before it is named, and one whose plan changes nothing is passed
//! over, so that following diagnose never ends in "nothing changed".
use git2::{Oid, Repository};

use crate::rollback::{Choices, Down, GitMove, Step, dry_run};
use xtask_adapters::{git, sqlite};
use xtask_model::{
    advice,
    journal::{Journal, RunStatus},
    label::Label,
    manifest::Manifest,
    profile::Tree,
    scenario::{Recommendation, Scenario},
};

/// A rollback that would lead to a healthy tree, and why.
pub(super) struct Action {
    pub choices: Choices,
    /// The flags after `rollback`, as a person types them.
    pub flags: String,
    pub why: String,
    /// The action this one leaves due, named up front.
    pub then: Option<String>,
}

impl Action {
    fn plain(scenario: Scenario, why: impl Into<String>) -> Action {
        Action {
            choices: Choices::plain(scenario),
            flags: format!("--scenario {scenario}"),
            why: why.into(),
            then: None,
        }
    }
}

/// What the evidence found, as facts the actions are chosen from.
pub(super) struct State<'a> {
    pub tree: &'a Tree,
    pub label: &'a Label,
    pub expect_commit: Option<&'a str>,
    pub manifest: Option<&'a Manifest>,
    /// The rows the failed evidence points to.
    pub scenarios: &'a [Scenario],
    /// HEAD is not where it should be (the expected commit, or after the tag).
    pub head_misplaced: bool,
    /// Files of the tree in which a critical module's import failed.
    pub failing_files: Vec<String>,
    /// A migration after the database's revision is half-applied.
    pub half_applied: bool,
}

/// What diagnose says to do.
pub(super) struct Chosen {
    pub recommendation: Recommendation,
    pub command_line: Option<String>,
    pub why: Option<String>,
    pub then: Option<String>,
    /// The actions whose dry run changed nothing, or could not be planned.
    pub passed_over: Vec<String>,
}

/// The first action whose dry run changes something.
pub(super) fn choose(state: &State<'_>) -> Chosen {
    let root = &state.tree.root;
    let mut passed_over = Vec::new();
    for action in actions(state) {
        let command = advice::xtask(&format!("rollback {}", action.flags), root);
        let changes = match state.manifest {
            Some(manifest) => match dry_run(&action.choices, state.tree, manifest) {
                Ok(plan) if plan.changing.is_empty() => Err("its plan changes nothing".to_string()),
                Ok(_) => Ok(()),
                Err(err) => Err(format!("its plan cannot be made: {err:#}")),
            },
            // Without the backup no row runs: recommending one would send
            // people to a command that exits 2.
            None => Err(format!(
                "no backup {} to roll back from: mend what the evidence names by hand, then take one (`cargo xtask backup`)",
                state.label
            )),
        };
        match changes {
            Ok(()) => {
                return Chosen {
                    recommendation: Recommendation::Rollback(action.choices.scenario()),
                    command_line: Some(command),
                    why: Some(action.why),
                    then: action.then,
                    passed_over,
                };
            }
            Err(why) => passed_over.push(format!("{command}: {why}")),
        }
    }
    Chosen {
        recommendation: Recommendation::Manual,
        command_line: None,
        why: Some(match passed_over.is_empty() {
            true => "mend what the failed evidence names by hand: no rollback row puts it right"
                .into(),
            false => "mend what the failed evidence names by hand: no rollback's dry run changes it (see passed_over)"
                .into(),
        }),
        then: None,
        passed_over,
    }
}

/// The actions for the state, best first.
fn actions(s: &State<'_>) -> Vec<Action> {
    let complete = || {
        Action::plain(
            Scenario::Complete,
            "several rows' evidence failed: everything goes back to the backup",
        )
    };
    match s.scenarios {
        [] => Vec::new(),
        [Scenario::Database] => vec![database(s)],
        [Scenario::Migration] => migration(s),
        [Scenario::Files] => {
            let mut actions = vec![Action::plain(
                Scenario::Files,
                "critical files differ from the backup beside the deploy's commits",
            )];
            actions.extend(bad_commit(s));
            actions.push(Action::plain(
                Scenario::Git,
                "the deploy's own commits changed what fails: the code goes back to the backup's commit",
            ));
            actions.push(Action::plain(
                Scenario::Complete,
                "the code goes back to the backup's commit, and the database with it",
            ));
            actions
        }
        [Scenario::Git] => git_row(s),
        // What fails to import is only in tracked files changed since HEAD
        // that no critical list names (a broken app module, uncommitted):
        // putting those back is the git row's, and discards no row.
        [Scenario::Files, Scenario::Git] if only_uncommitted_files_fail(s) => {
            let mut actions = git_row(s);
            actions.push(complete());
            actions
        }
        _ => vec![complete()],
    }
}

/// The backup's database; under code whose head is above the backup's
/// revision, the upgrade it then needs is named up front.
fn database(s: &State<'_>) -> Action {
    let mut action = Action::plain(
        Scenario::Database,
        "the database fails its integrity check: the backup's takes its place",
    );
    let graph = s.tree.graph().ok();
    let backup = s.manifest.and_then(Manifest::revision);
    if let (Some(graph), Some(backup)) = (graph, backup)
        && let [head] = graph.heads().as_slice()
        && graph.ancestors(head).contains(backup)
    {
        action.then = Some(format!(
            "`{}`: the backup's database is at {backup}, below the code's head {head}",
            advice::xtask("rollback --scenario migration --to head", &s.tree.root)
        ));
    }
    action
}

/// The database's revision against the code's migrations.
fn migration(s: &State<'_>) -> Vec<Action> {
    let Ok(graph) = s.tree.graph() else { return vec![Action::plain(Scenario::Migration, "")] };
    let revisions = sqlite::open_tree_database(s.tree).and_then(|c| sqlite::alembic_revisions(&c));
    let current = match revisions.ok().as_deref() {
        Some([one]) => one.to_string(),
        _ => {
            return vec![Action::plain(
                Scenario::Migration,
                "the database's revision is not the code's head",
            )];
        }
    };
    let heads = graph.heads();
    // Several heads need a person (a merge revision); no row ends healthy.
    if heads.len() > 1 {
        return Vec::new();
    }
    if !graph.contains(&current) {
        return code_lacks_the_revision(s, &graph, &current);
    }
    let behind = matches!(heads.as_slice(), [head] if graph.ancestors(head).contains(&current));
    let last = Journal::<Step>::last_done(s.tree);
    // A half-applied migration goes down (its downgrade removes what it
    // made); an upgrade would meet what it made.
    let behind = behind && !s.half_applied;
    if behind && last == Some(Scenario::Migration) {
        return vec![Action::plain(
            Scenario::Git,
            format!(
                "the last rollback took the database down to {current}: the code goes back to the backup's commit, whose migrations end there"
            ),
        )];
    }
    // An upgrade to head that failed before (its run abandoned) would fail
    // again: the code goes back to the backup's commit instead.
    let upgrade_failed = Journal::<Step>::last_closed_run(s.tree, |_| true).is_some_and(|run| {
        run.status != RunStatus::Done
            && run.steps.iter().any(|step| matches!(step, Step::MigrateCopy { up: true, .. }))
    });
    if behind && upgrade_failed {
        return vec![Action::plain(
            Scenario::Git,
            format!(
                "the upgrade to the code's head failed before (its run was abandoned): the code goes back to the backup's commit, whose migrations end at {current}"
            ),
        )];
    }
    if behind {
        return vec![Action {
            choices: Choices::Migration { down: Down::To("head".into()), allow_data_loss: false },
            flags: "--scenario migration --to head".into(),
            why: format!(
                "the database is at {current}, below the code's head {}: alembic upgrades a copy of it",
                heads.join(" ")
            ),
            then: None,
        }];
    }
    let why = if s.half_applied {
        format!(
            "a migration after {current} is half-applied: on a copy, its downgrade removes what it made, and the copy goes down to the backup's revision"
        )
    } else {
        format!(
            "the database at {current} is ahead of the backup's revision: on a copy, alembic downgrades it there"
        )
    };
    let mut action = Action::plain(Scenario::Migration, why);
    let backup = s.manifest.and_then(Manifest::revision);
    if let (Some(backup), [head]) = (backup, heads.as_slice())
        && backup != head
    {
        action.then = Some(format!(
            "`{}`: the code's head {head} is above {backup}, where the database goes",
            advice::xtask("rollback --scenario git", &s.tree.root)
        ));
    }
    vec![action]
}

/// The database at a revision the code's migrations do not define (the
/// code went back without it): HEAD back to a branch that defines it when
/// HEAD is detached, else the backup's database (or everything).
fn code_lacks_the_revision(
    s: &State<'_>,
    graph: &xtask_model::migrations::Graph,
    current: &str,
) -> Vec<Action> {
    let fits = s.manifest.and_then(Manifest::revision).is_some_and(|r| graph.contains(r));
    let why = format!(
        "the database is at {current}, which the code's migrations do not define (the code went back without it): alembic cannot downgrade it, and the backup's database fits this code"
    );
    let back = if fits {
        Action::plain(Scenario::Database, why)
    } else {
        Action::plain(Scenario::Complete, why)
    };
    reattach(s, current).into_iter().chain([back]).collect()
}

/// A detached HEAD (a checkout by hand) while a branch's tip defines the
/// database's revision: HEAD goes to that commit, which loses nothing,
/// rather than the database going back to the backup's.
fn reattach(s: &State<'_>, current: &str) -> Option<Action> {
    let repo = git::open(&s.tree.root).ok()??;
    let (head, branch) = git::head(&repo);
    if branch.is_some() {
        return None;
    }
    let branches = repo.branches(Some(git2::BranchType::Local)).ok()?;
    for (branch, _) in branches.flatten() {
        let (Some(tip), Ok(Some(name))) = (branch.get().target(), branch.name()) else { continue };
        let defined = git::revisions_defined_at(&repo, tip, s.tree.profile.migrations.iter());
        if defined.is_ok_and(|d| d.iter().any(|r| r == current)) {
            let head = head.as_deref().map_or("?", |h| &h[..h.len().min(12)]).to_string();
            return Some(hard_reset(
                &repo,
                tip,
                format!(
                    "HEAD is detached at {head} while branch {name}, whose migrations define the database's revision {current}, is at {}: HEAD goes there, and no row is discarded",
                    &tip.to_string()[..12]
                ),
            ));
        }
    }
    None
}

/// A commit after the deploy that broke a critical module: HEAD goes back
/// to its parent, the discarded commits kept as a ref.
fn bad_commit(s: &State<'_>) -> Vec<Action> {
    let Ok(Some(repo)) = git::open(&s.tree.root) else { return Vec::new() };
    let since = s.manifest.and_then(|m| m.git_commit.as_deref());
    let tag = git::tag_commit(&repo, s.label.as_str());
    let mut actions = Vec::new();
    for file in &s.failing_files {
        let Some(bad) = git::last_change(&repo, file, since) else { continue };
        let Some(parent) = repo.find_commit(bad).ok().and_then(|c| c.parent_id(0).ok()) else {
            continue;
        };
        // The deploy's own commit (its parent the backup's) is the deploy
        // at fault, not a commit on top of it.
        let after_deploy =
            tag.is_some_and(|t| repo.graph_descendant_of(parent, t).unwrap_or(false));
        if !after_deploy || !database_fits(s.tree, &repo, parent) {
            continue;
        }
        actions.push(hard_reset(
            &repo,
            parent,
            format!(
                "{file}, which no longer imports, was last changed by {}, a commit after the deploy: HEAD goes back to its parent",
                git::describe_commit(&repo, bad)
            ),
        ));
    }
    actions
}

/// The git row: HEAD back to the expected commit, tracked files put back
/// as HEAD has them, or a branch at the backup's tag.
fn git_row(s: &State<'_>) -> Vec<Action> {
    let Ok(Some(repo)) = git::open(&s.tree.root) else {
        return vec![Action::plain(Scenario::Git, "")];
    };
    let mut actions = Vec::new();
    if s.head_misplaced
        && let Some(rev) = s.expect_commit
        && let Ok(expected) = git::resolve(&repo, rev)
    {
        if database_fits(s.tree, &repo, expected) {
            actions.push(hard_reset(
                &repo,
                expected,
                format!("HEAD is not the expected commit {rev}: it goes back there"),
            ));
        } else {
            // The code alone would leave the database ahead of it.
            actions.push(Action::plain(
                Scenario::Complete,
                format!(
                    "HEAD is not the expected commit {rev}, whose migrations do not define the database's revision: the code and the database go back to the backup together"
                ),
            ));
        }
    }
    let changed = changed_tracked(s, &repo);
    if !changed.is_empty() {
        let paths: Vec<String> = changed.iter().map(|p| advice::quoted(p)).collect();
        actions.push(Action {
            choices: Choices::Git(GitMove::Paths { from: "HEAD".into(), paths: changed.clone() }),
            flags: format!("--scenario git --from HEAD --paths {}", paths.join(" ")),
            why: format!(
                "tracked files differ from HEAD, uncommitted: {}; they are put back as HEAD has them (the changes are kept in the bundle)",
                changed.join(", ")
            ),
            then: None,
        });
    }
    if s.head_misplaced {
        actions.push(Action::plain(Scenario::Git, "HEAD does not contain the backup's tag"));
        actions.push(Action::plain(
            Scenario::Complete,
            "the code goes back to the backup's tag, and the database with it",
        ));
    }
    actions
}

/// Whether every file that fails to import is a tracked, non-critical file
/// changed since HEAD (and some file fails).
fn only_uncommitted_files_fail(s: &State<'_>) -> bool {
    let Ok(Some(repo)) = git::open(&s.tree.root) else { return false };
    let changed = changed_tracked(s, &repo);
    !s.failing_files.is_empty() && s.failing_files.iter().all(|f| changed.contains(f))
}

/// Tracked files, not critical ones, that differ from HEAD and that the
/// backup did not record as uncommitted.
fn changed_tracked(s: &State<'_>, repo: &Repository) -> Vec<String> {
    let critical = &s.tree.profile.critical_files;
    let recorded = |path: &String| {
        let now = s.tree.fs.sha256(&s.tree.path(path)).ok().map(|(sha, _)| sha);
        s.manifest.is_some_and(|m| m.records_change(path, now.as_deref()))
    };
    let paths = git::modified_tracked(repo).unwrap_or_default();
    paths.into_iter().filter(|p| !critical.contains(p) && !recorded(p)).collect()
}

fn hard_reset(repo: &Repository, commit: Oid, why: String) -> Action {
    let id = commit.to_string();
    Action {
        choices: Choices::Git(GitMove::Hard { commit: id.clone() }),
        flags: format!("--scenario git --commit {id} --hard --force"),
        why: format!(
            "{why}; the commits after {} are kept as a ref, and local changes in the bundle",
            git::describe_commit(repo, commit)
        ),
        then: None,
    }
}

/// Whether the commit's migrations define the database's revision.
fn database_fits(tree: &Tree, repo: &Repository, commit: Oid) -> bool {
    let Ok(revisions) =
        sqlite::open_tree_database(tree).and_then(|c| sqlite::alembic_revisions(&c))
    else {
        return false;
    };
    let defined =
        git::revisions_defined_at(repo, commit, tree.profile.migrations.iter()).unwrap_or_default();
    revisions.iter().all(|r| defined.contains(r))
}

/// The tree's file for a module (`a.b` is `a/b.py` or `a/b/__init__.py`).
pub(super) fn module_file(tree: &Tree, module: &str) -> Option<String> {
    let base = module.replace('.', "/");
    [format!("{base}.py"), format!("{base}/__init__.py")]
        .into_iter()
        .find(|path| tree.fs.exists(&tree.path(path)))
}
