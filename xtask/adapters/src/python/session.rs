//! One confined Python process per command: the helper (`helper.py`)
//! imports Alembic and SQLAlchemy once, then answers the command's
//! questions (current, heads, history, the identity probe, a downgrade, the
//! offline SQL of a step, the import check) one request at a time. Starting
//! Python and importing SQLAlchemy is most of what an alembic call costs;
//! paid once, a migration rollback asks five questions for the price of one.
//!
//! The process is started with the environment every request sees (the
//! profile's URL variable naming the session's database) and the Landlock
//! confinement of the work it is started for; neither changes while it runs.
use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Stdio},
    sync::mpsc::{self, Receiver},
    thread,
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use xshell::Shell;

use super::{Python, TOOL_TIMEOUT};
use crate::process::{self, Confinement, Output};
use xtask_base::events;
use xtask_fs::sys::{self, Net, Sig};
use xtask_model::profile::Tree;

/// A database connection a request opened (or, probing, would have opened):
/// the file SQLite was given, and its device and inode when it exists.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Connection {
    pub dialect: String,
    pub file: Option<PathBuf>,
    pub dev: Option<u64>,
    pub ino: Option<u64>,
}

/// What one request left: alembic's (or the import check's) output, and the
/// connections it opened.
#[derive(Debug, Clone)]
pub struct Answer {
    pub output: Output,
    pub connections: Vec<Connection>,
}

#[derive(Deserialize)]
struct Wire {
    code: i32,
    stdout: String,
    stderr: String,
    connections: Vec<Connection>,
}

/// Where a session's programs act: the database its URL variable names, and
/// the folders its process may write beneath (besides its own scratch).
pub struct Scope<'a> {
    /// The SQLAlchemy URL the profile's URL variable is set to.
    pub url: String,
    pub writable: &'a [&'a Path],
}

impl<'a> Scope<'a> {
    /// The tree's own database, the tree writable: for a scratch copy.
    pub fn tree(tree: &Tree, writable: &'a [&'a Path]) -> Scope<'a> {
        Scope { url: tree.database_url(), writable }
    }

    /// Another database file (a copy being migrated, a preserved file).
    pub fn database(file: &Path, writable: &'a [&'a Path]) -> Scope<'a> {
        Scope { url: format!("sqlite:///{}", file.display()), writable }
    }
}

/// How long a request may go before the helper says it is waiting.
const WAITING_NOTE: std::time::Duration = std::time::Duration::from_secs(30);

/// The helper process of one command.
pub struct Session {
    child: Child,
    requests: Option<ChildStdin>,
    answers: Receiver<String>,
    errors: Option<thread::JoinHandle<String>>,
    /// `-c INI` and the profile's alembic arguments, before every command.
    alembic_prefix: Vec<String>,
    /// The profile's app, in whose context an env.py that needs a Flask
    /// application context (Flask-Migrate's) runs, as `flask db` runs it.
    app: Option<String>,
    /// Why the process can answer no more (it exited, or timed out).
    dead: Option<String>,
    _confinement: Confinement,
}

impl Python {
    /// Starts the helper for `tree`: inside its root, with the profile's
    /// environment and `scope`'s URL, confined to `scope`'s folders.
    pub fn session(&self, sh: &Shell, tree: &Tree, scope: Scope<'_>) -> Result<Session> {
        // alembic and the import check reach no network.
        let confinement = Confinement::with_network(scope.writable, Net::Nothing)?;
        let _d = sh.push_dir(&tree.root);
        let cmd = self.tool_on(sh, tree, "python", &scope.url);
        let mut command: std::process::Command =
            cmd.arg("-c").arg(include_str!("helper.py")).into();
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        sys::die_with_parent(&mut command);
        confinement.apply(&mut command);
        events::command(&process::shown(&command));
        let mut child = process::spawn_ours(&mut command).context("start the Python helper")?;
        let (sender, answers) = mpsc::channel();
        let stdout = child.stdout.take().context("the helper's stdout")?;
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().context("the helper's stderr")?;
        let errors = thread::spawn(move || {
            let mut text = String::new();
            let _partial = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        let mut alembic_prefix = vec!["-c".to_string(), tree.profile.alembic_ini.clone()];
        alembic_prefix.extend(tree.profile.alembic_args.iter().cloned());
        Ok(Session {
            requests: child.stdin.take(),
            child,
            answers,
            errors: Some(errors),
            alembic_prefix,
            app: Some(tree.profile.app.clone()).filter(|a| !a.is_empty()),
            dead: None,
            _confinement: confinement,
        })
    }
}

impl Session {
    /// Runs later alembic requests in the context of the app `spec` (init,
    /// once it has found which candidate imports).
    pub fn use_app(&mut self, spec: &str) {
        self.app = Some(spec.to_string());
    }

    /// `alembic ARGS`, as the command line would run it.
    pub fn alembic(&mut self, args: &[&str]) -> Result<Answer> {
        events::command(&format!("alembic {} (in the Python helper)", args.join(" ")));
        let argv = self.argv(args);
        self.ask(serde_json::json!({ "op": "alembic", "argv": argv, "app": self.app }))
    }

    /// Every connection `alembic current` would open, each recorded and
    /// refused before the DBAPI opens it: which file alembic acts on,
    /// without opening (or creating) any.
    pub fn probe(&mut self) -> Result<Vec<Connection>> {
        self.probe_with(&[], &[])
    }

    /// `probe`, with environment variables set (`NAME`, `VALUE`) and unset
    /// for that one request: which variable moves alembic's connection.
    pub fn probe_with(&mut self, set: &[(&str, &str)], unset: &[&str]) -> Result<Vec<Connection>> {
        events::command("alembic current (in the Python helper: which database it would open)");
        let argv = self.argv(&["current"]);
        let env: serde_json::Map<String, serde_json::Value> =
            set.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect();
        let request = serde_json::json!({ "op": "probe", "argv": argv, "app": self.app, "env": env, "unset": unset });
        let answer = self.ask(request)?;
        if answer.connections.is_empty() && !answer.output.success() {
            bail!(
                "alembic failed before it connected ({}):\n{}",
                answer.output.describe_status(),
                answer.output.tail(8)
            );
        }
        Ok(answer.connections)
    }

    /// Imports each of the profile's critical modules and compiles its
    /// critical Python files (paths relative to the tree the session runs
    /// in), writing no bytecode: one line per failure (`module: Error: why`).
    pub fn import_check(&mut self, tree: &Tree) -> Result<Output> {
        self.import_check_also(tree, &[])
    }

    /// `import_check`, importing the modules `also` after the critical
    /// ones (diagnose: the module of the profile's app).
    pub fn import_check_also(&mut self, tree: &Tree, also: &[String]) -> Result<Output> {
        events::command("python: import the critical modules (in the Python helper)");
        let modules: Vec<&String> = tree.profile.critical_modules.iter().chain(also).collect();
        let files: Vec<&String> =
            tree.profile.critical_files.iter().filter(|f| f.ends_with(".py")).collect();
        let request = serde_json::json!({ "op": "imports", "modules": modules, "files": files });
        Ok(self.ask(request)?.output)
    }

    /// The app `spec` names, imported (a factory called once): its
    /// interface and the paths of its route table (none for a bare ASGI or
    /// WSGI callable). An app that does not import is an error with why.
    pub fn app_facts(&mut self, spec: &str) -> Result<AppFacts> {
        events::command(&format!("python: import the app {spec} (in the Python helper)"));
        let out = self.ask(serde_json::json!({ "op": "app", "spec": spec }))?.output;
        facts_after(&out, "TMWS-APP ", &format!("{spec} does not import as an app"))
    }

    /// Where alembic itself reads the revisions (its `ScriptDirectory`, as
    /// the ini configures it): the folders and the files it loads.
    pub fn scripts(&mut self) -> Result<Scripts> {
        events::command("alembic: where are the revisions (in the Python helper)");
        let argv = self.argv(&["heads"]);
        let out = self.ask(serde_json::json!({ "op": "scripts", "argv": argv }))?.output;
        facts_after(&out, "TMWS-SCRIPTS ", "alembic's configuration did not load")
    }

    /// The tests pytest's own collection finds in the tree the session runs
    /// in, as `pytest --collect-only -q` prints them (`file::test`).
    pub fn collect_tests(&mut self) -> Result<Output> {
        events::command("pytest --collect-only -q -p no:cacheprovider (in the Python helper)");
        Ok(self.ask(serde_json::json!({ "op": "collect" }))?.output)
    }

    /// What a revision makes, from Alembic's offline SQL for that step:
    /// its tables, the columns it adds to tables, and its indexes.
    pub fn made_by(&mut self, from: &str, to: &str) -> Result<Made> {
        let range = format!("{from}:{to}");
        let answer = self.alembic(&["upgrade", &range, "--sql"])?;
        let out = answer.output;
        if !out.success() {
            bail!(
                "alembic upgrade {range} --sql failed ({}), so what it makes is unknown:\n{}",
                out.describe_status(),
                out.tail(5)
            );
        }
        Ok(Made::from_sql(&out.stdout))
    }

    fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv = self.alembic_prefix.clone();
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    }

    /// Sends one request and waits for its answer; a helper that does not
    /// answer in time is stopped, and every later request fails with why.
    fn ask(&mut self, request: serde_json::Value) -> Result<Answer> {
        if let Some(why) = &self.dead {
            bail!("the Python helper can answer no more: {why}");
        }
        let sent = self.requests.as_mut().map(|pipe| writeln!(pipe, "{request}"));
        if !matches!(sent, Some(Ok(()))) {
            return Err(self.died("it stopped reading requests"));
        }
        // A request that takes a while says so once (an env.py that waits
        // on something), then gets the rest of its time.
        let first = self.answers.recv_timeout(WAITING_NOTE);
        let answer = match first {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                events::note(&format!(
                    "the Python helper has not answered for {} s ({}); it is stopped at {} s",
                    WAITING_NOTE.as_secs(),
                    request["op"].as_str().unwrap_or("a request"),
                    TOOL_TIMEOUT.as_secs()
                ));
                self.answers.recv_timeout(TOOL_TIMEOUT.saturating_sub(WAITING_NOTE))
            }
            other => other,
        };
        match answer {
            Ok(line) => {
                let wire: Wire = serde_json::from_str(&line)
                    .with_context(|| format!("the Python helper's answer: {line}"))?;
                Ok(Answer {
                    output: Output {
                        code: Some(wire.code),
                        stdout: wire.stdout,
                        stderr: wire.stderr,
                        timed_out: false,
                    },
                    connections: wire.connections,
                })
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                process::signal_group(self.child.id() as i32, Sig::Kill);
                let why = format!("no answer within {}s: stopped", TOOL_TIMEOUT.as_secs());
                self.dead = Some(why.clone());
                Ok(Answer {
                    output: Output {
                        code: None,
                        stdout: String::new(),
                        stderr: why,
                        timed_out: true,
                    },
                    connections: Vec::new(),
                })
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(self.died("it exited")),
        }
    }

    /// The helper is gone: why, with what it said on its way out (a missing
    /// alembic, a syntax error in the service's code at start-up).
    fn died(&mut self, how: &str) -> anyhow::Error {
        let _ = self.child.wait();
        let said = self.errors.take().and_then(|t| t.join().ok()).unwrap_or_default();
        let tail: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
        let why = format!("{how}: {}", tail[tail.len().saturating_sub(6)..].join("\n"));
        self.dead = Some(why.clone());
        anyhow!("the Python helper stopped ({why})")
    }
}

impl Drop for Session {
    /// The helper ends when its requests end; one that lingers is stopped
    /// with its process group.
    fn drop(&mut self) {
        drop(self.requests.take());
        let pgid = self.child.id() as i32;
        let waited = process::wait_or_kill(&mut self.child, Duration::from_secs(5));
        if waited.is_err() {
            process::signal_group(pgid, Sig::Kill);
        }
        process::forget_group(pgid);
    }
}

/// A helper started by the first question, for a command whose questions
/// may not come at all (checks that were skipped, a tree without Python):
/// a helper that could not start is the answer to every question.
pub struct OnFirstUse<'a> {
    python: Result<&'a Python, String>,
    sh: &'a Shell,
    tree: &'a Tree,
    url: String,
    writable: Vec<PathBuf>,
    session: std::cell::RefCell<Option<Result<Session, String>>>,
}

impl<'a> OnFirstUse<'a> {
    /// The helper of `tree`'s own programs, writing beneath `tree` only.
    pub fn on(python: Result<&'a Python, String>, sh: &'a Shell, tree: &'a Tree) -> Self {
        OnFirstUse {
            python,
            sh,
            tree,
            url: tree.database_url(),
            writable: vec![tree.root.clone()],
            session: Default::default(),
        }
    }

    /// Asks the helper, starting it first when this is the first question.
    pub fn ask<T>(&self, question: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        let mut slot = self.session.borrow_mut();
        let session = slot.get_or_insert_with(|| {
            let writable: Vec<&Path> = self.writable.iter().map(PathBuf::as_path).collect();
            let scope = Scope { url: self.url.clone(), writable: &writable };
            let python = self.python.clone().map_err(|why| anyhow!("no Python: {why}"));
            let started = python.and_then(|python| python.session(self.sh, self.tree, scope));
            started.map_err(|e| format!("{e:#}"))
        });
        match session {
            Ok(session) => question(session),
            Err(why) => Err(anyhow!("{why}")),
        }
    }
}

/// What a migration makes, read from its offline SQL.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Made {
    pub tables: Vec<String>,
    /// `(table, column)` added by `ALTER TABLE .. ADD COLUMN`.
    pub columns: Vec<(String, String)>,
    /// `(index, table)`.
    pub indexes: Vec<(String, String)>,
}

impl Made {
    /// What of it a database with `schema` already holds, one line each
    /// (`table T`, `column T.C`, `index I`).
    pub fn present_in(&self, schema: &xtask_model::schema::Schema) -> Vec<String> {
        let tables = &schema.0;
        let column_of = |table: &str, column: &str| {
            tables.get(table).is_some_and(|t| {
                t.columns.iter().any(|line| line.split(' ').next() == Some(column))
            })
        };
        let index_named = |index: &str| {
            tables
                .values()
                .flat_map(|t| &t.indexes)
                .any(|line| line.split(' ').nth(1) == Some(index))
        };
        let tables_made = self.tables.iter().filter(|t| tables.contains_key(*t));
        let columns =
            self.columns.iter().filter(|(t, c)| !self.tables.contains(t) && column_of(t, c));
        let indexes =
            self.indexes.iter().filter(|(i, t)| !self.tables.contains(t) && index_named(i));
        tables_made
            .map(|t| format!("table {t}"))
            .chain(columns.map(|(t, c)| format!("column {t}.{c}")))
            .chain(indexes.map(|(i, _)| format!("index {i}")))
            .collect()
    }

    pub fn from_sql(sql: &str) -> Made {
        let name = |word: &str| word.trim_matches(['"', '`', '[', ']', '(']).to_string();
        let mut made = Made::default();
        for line in sql.lines().map(str::trim) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
            let at = |i: usize| upper.get(i).map(String::as_str);
            match (at(0), at(1)) {
                (Some("CREATE"), Some("TABLE")) => {
                    let skip = if at(2) == Some("IF") { 5 } else { 2 };
                    if let Some(table) = words.get(skip) {
                        made.tables.push(name(table.split('(').next().unwrap_or(table)));
                    }
                }
                (Some("ALTER"), Some("TABLE")) if at(3) == Some("ADD") => {
                    let column = if at(4) == Some("COLUMN") { words.get(5) } else { words.get(4) };
                    if let (Some(table), Some(column)) = (words.get(2), column) {
                        made.columns.push((name(table), name(column)));
                    }
                }
                (Some("CREATE"), Some("INDEX" | "UNIQUE")) => {
                    let words: Vec<&str> = words
                        .iter()
                        .zip(&upper)
                        .filter(|(_, u)| !matches!(u.as_str(), "UNIQUE" | "IF" | "NOT" | "EXISTS"))
                        .map(|(w, _)| *w)
                        .collect();
                    // CREATE INDEX name ON table (...)
                    if let (Some(index), Some(table)) = (words.get(2), words.get(4)) {
                        made.indexes
                            .push((name(index), name(table.split('(').next().unwrap_or(table))));
                    }
                }
                _ => {}
            }
        }
        made
    }
}

#[cfg(test)]
mod made_tests {
    use super::Made;

    #[test]
    fn tables_columns_and_indexes_read_from_offline_sql() {
        let sql = "CREATE TABLE learning_feedback (\n    id INTEGER NOT NULL\n);\n\
                   ALTER TABLE learning_patterns ADD COLUMN weight FLOAT;\n\
                   CREATE UNIQUE INDEX IF NOT EXISTS ix_weight ON learning_patterns (weight);\n\
                   CREATE INDEX \"ix_a\" ON \"t\"(a);";
        let made = Made::from_sql(sql);
        assert_eq!(made.tables, ["learning_feedback"]);
        assert_eq!(made.columns, [("learning_patterns".to_string(), "weight".to_string())]);
        let indexes = [("ix_weight", "learning_patterns"), ("ix_a", "t")]
            .map(|(i, t)| (i.to_string(), t.to_string()));
        assert_eq!(made.indexes, indexes);
    }
}

/// The JSON a helper op prints after `marker` (`TMWS-APP `) when the op
/// succeeded; else an error saying `failed`, with the end of its output.
fn facts_after<T: serde::de::DeserializeOwned>(
    out: &Output,
    marker: &str,
    failed: &str,
) -> Result<T> {
    let facts = out.stdout.lines().find_map(|l| l.strip_prefix(marker));
    match (out.success(), facts) {
        (true, Some(json)) => Ok(serde_json::from_str(json)?),
        _ => bail!("{failed} ({}):\n{}", out.describe_status(), out.tail(4)),
    }
}

/// Where alembic reads the revisions, by absolute path.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Scripts {
    /// Its version locations, in its order.
    pub versions: Vec<std::path::PathBuf>,
    /// Whether it walks their subfolders too.
    pub recursive: bool,
    /// The file of every revision it loads; `None` when the history does
    /// not load (a revision that names a missing one).
    pub files: Option<Vec<std::path::PathBuf>>,
}

/// What importing an app showed.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct AppFacts {
    /// `asgi` or `wsgi`.
    pub interface: String,
    pub routes: Vec<String>,
    /// The regular files outside the tree that importing the app (and
    /// calling its factory) opened for reading, by absolute path, as the
    /// code named them: not the interpreter's, the system's (`/proc`,
    /// `/sys`, `/dev`, time zones, certificates...) or the helper's
    /// scratch folder's.
    #[serde(default)]
    pub read: Vec<String>,
    /// Those of them under the home folder of the user the app runs as.
    #[serde(default)]
    pub read_in_home: Vec<String>,
}
