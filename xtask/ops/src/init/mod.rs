//! `cargo xtask init`: inspects a checkout and writes a commented
//! `tmws-rollback.toml` from what it finds (alembic.ini, `env.py`, the app's
//! entry point, the runbook's critical files and tests), so that the other
//! commands need nothing more. It never overwrites a profile.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xshell::Shell;

mod asked;
mod finds;
mod outside;
mod proof;
mod render;
mod versions;

pub use proof::prove;

use finds::{
    app_candidates, files_named, health_path, settings_database, sqlite_path, url_variable,
};
use render::render;

use xtask_base::exit::{failed, usage};
use xtask_fs::{RootDir, files};
use xtask_model::profile::{MigrationFolders, PROFILE_FILE, Profile};

/// The profile `init` would write: where, and its text.
pub struct Proposal {
    pub root: PathBuf,
    pub target: PathBuf,
    pub text: String,
    /// A profile exists already: it is never replaced, only compared.
    pub existing: bool,
}

/// Inspects the checkout at `root` (else `TMWS_ROOT`, else the current
/// folder, as every command finds its tree) and proposes its
/// profile. One that exists already is never replaced: when it agrees with
/// what was found (it may say more, such as what healthy means), the
/// proposal says so; when it disagrees, the error names each difference.
pub fn propose(root: Option<&Path>, ask: Option<&Ask<'_>>) -> Result<Proposal> {
    let given = match (root, std::env::var_os("TMWS_ROOT").filter(|r| !r.is_empty())) {
        (Some(root), _) => root.to_path_buf(),
        (None, Some(env)) => std::path::PathBuf::from(env),
        (None, None) => std::env::current_dir().context("read the current directory")?,
    };
    let root = xtask_fs::outside::canonicalize(&given).map_err(|err| usage(format!("{err:#}")))?;
    xtask_model::ownership::check(&root)?;
    let target = root.join(PROFILE_FILE);
    let fs = RootDir::open(&root)?;
    let text = render(&inspect(&fs, &root, ask)?);
    let existing = fs.kind(&target)?.is_some();
    if existing {
        let differences = disagreements(&fs.read_to_string(&target)?, &text)?;
        if !differences.is_empty() {
            return Err(usage(format!(
                "{} exists already and init never overwrites a profile; it disagrees with what init found:\n{}\nedit it, or remove it and run init again",
                target.display(),
                differences.join("\n")
            )));
        }
    }
    Ok(Proposal { root, target, text, existing })
}

/// Where an existing profile differs from the proposed one, field by field
/// (only the fields init finds; a field the profile leaves out has its
/// default).
fn disagreements(existing: &str, proposed: &str) -> Result<Vec<String>> {
    let parse = |text: &str| -> Result<Profile> {
        toml::from_str(text)
            .map_err(|err| usage(format!("the existing profile does not parse: {err}")))
    };
    let (have, found) = (parse(existing)?, parse(proposed)?);
    let fields: [(&str, String, String); 10] = [
        ("database", format!("{:?}", have.database), format!("{:?}", found.database)),
        (
            "database_url_env",
            format!("{:?}", have.database_url_env),
            format!("{:?}", found.database_url_env),
        ),
        ("alembic_ini", format!("{:?}", have.alembic_ini), format!("{:?}", found.alembic_ini)),
        ("migrations", have.migrations.to_toml(), found.migrations.to_toml()),
        ("config_files", format!("{:?}", have.config_files), format!("{:?}", found.config_files)),
        (
            "critical_files",
            format!("{:?}", have.critical_files),
            format!("{:?}", found.critical_files),
        ),
        (
            "critical_modules",
            format!("{:?}", have.critical_modules),
            format!("{:?}", found.critical_modules),
        ),
        ("test_files", format!("{:?}", have.test_files), format!("{:?}", found.test_files)),
        ("app", format!("{:?}", have.app), format!("{:?}", found.app)),
        ("health_path", format!("{:?}", have.health_path), format!("{:?}", found.health_path)),
    ];
    let mut differences: Vec<String> = fields
        .into_iter()
        .filter(|(_, have, found)| have != found)
        .map(|(key, have, found)| format!("  {key}: the profile says {have}, init found {found}"))
        .collect();
    // The profile may name more files outside the tree than the app reads
    // as it starts (one it reads later); one it reads unnamed is missed.
    let unnamed: Vec<&String> =
        found.external_files.iter().filter(|f| !have.external_files.contains(f)).collect();
    if !unnamed.is_empty() {
        differences.push(format!(
            "  external_files: the profile does not name {unnamed:?}, which the app read as it started"
        ));
    }
    Ok(differences)
}

/// Writes the proposed profile as a new file, never over one that appeared
/// meanwhile.
pub fn write(proposal: &Proposal) -> Result<()> {
    let fs = RootDir::open(&proposal.root)?;
    let mut file = fs.create_new(&proposal.target, 0o644)?;
    std::io::Write::write_all(&mut file, proposal.text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// What the inspection found, each with where it came from.
struct Found {
    service: (String, String),
    label: (String, String),
    alembic_ini: String,
    migrations: (MigrationFolders, String),
    database: (String, String),
    url_env: (String, String),
    app: (String, String),
    health: (String, String),
    critical_files: Vec<String>,
    critical_modules: Vec<String>,
    test_files: Vec<String>,
    config_files: Vec<String>,
    /// The files outside the tree the app read as it started.
    external: outside::Outside,
}

/// Where init has got to in a checkout: what database_and_variable needs.
struct Inspecting<'a> {
    fs: &'a RootDir,
    root: &'a Path,
    ini_path: &'a str,
    ini_dir: &'a Path,
    script_dir: &'a Path,
    migrations: &'a MigrationFolders,
    /// The apps the code's text proposes, for the service to confirm.
    apps: &'a [Sourced],
}

/// What the checkout at `root` says about itself, every file read through
/// `fs` (never a link out of the root, never a FIFO), and what its own
/// Alembic environment answers when `ask` is given.
fn inspect(fs: &RootDir, root: &Path, ask: Option<&Ask<'_>>) -> Result<Found> {
    let defaults = Profile::default();
    let ini_path = ["alembic.ini"]
        .into_iter()
        .map(String::from)
        .chain(files_named(fs, root, "alembic.ini", 2).into_iter().map(|p| rel(root, &p)))
        .find(|p| fs.is_file(&root.join(p)))
        .ok_or_else(|| {
            usage(format!(
                "{}: no alembic.ini found (at the root or one level down)",
                root.display()
            ))
        })?;
    let ini = fs.read_to_string(&root.join(&ini_path))?;
    let ini_dir = Path::new(&ini_path).parent().unwrap_or(Path::new("")).to_path_buf();
    let setting = |key: &str| {
        ini.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let (script_dir, migrations) = versions::folders(&setting, root, &ini_dir, &ini_path)?;
    let apps = app_candidates(fs, root);
    let at = Inspecting {
        fs,
        root,
        ini_path: &ini_path,
        ini_dir: &ini_dir,
        script_dir: &script_dir,
        migrations: &migrations.0,
        apps: &apps,
    };
    let answers = database_and_variable(&at, ask)?;
    let migrations = alembics_folders(answers.migrations, migrations, &ini_path)?;
    let (database, url_env, collected) = (answers.database, answers.variable, answers.tests);
    // The first candidate that imports as an app; else the first, saying
    // why it did not import.
    let (found_app, imported) = match answers.app {
        Some((index, facts)) => (apps.get(index).cloned(), Some(facts)),
        None => (apps.first().cloned(), None),
    };
    // What the app read outside the tree as it started, asked of the app.
    let external = match (&found_app, &imported) {
        (Some((spec, _)), Some(Ok(facts))) => outside::read_by(root, spec, facts),
        _ => outside::Outside::default(),
    };
    let (app, health) = app_and_health(fs, root, found_app, imported)?;
    let by_name = |path: &str| {
        let name = Path::new(path).file_name().unwrap_or_default().to_string_lossy().into_owned();
        files_named(fs, root, &name, 6).first().map(|p| rel(root, p))
    };
    let critical_files: Vec<String> =
        defaults.critical_files.iter().filter_map(|f| by_name(f)).collect();
    let critical_modules = critical_files
        .iter()
        .filter(|f| f.ends_with(".py") && !f.split('/').any(|part| part == "tests"))
        .map(|f| f.trim_end_matches(".py").trim_end_matches("/__init__").replace('/', "."))
        .collect();
    let runbook = defaults.test_files.iter().filter_map(|f| by_name(f));
    let test_files = test_files(fs, root, runbook, collected);
    // `.env` is the settings file many services deploy with, untracked:
    // backed up and restored as config, it is also the tree's own data.
    let config_files = ["pyproject.toml", ".env.example", ".env"]
        .into_iter()
        .map(String::from)
        .filter(|f| fs.is_file(&root.join(f)))
        .chain(std::iter::once(ini_path.clone()))
        .collect();
    Ok(Found {
        service: service(fs, root),
        label: label(&critical_files),
        alembic_ini: ini_path,
        migrations,
        database,
        url_env,
        app,
        health,
        critical_files,
        critical_modules,
        test_files,
        config_files,
        external,
    })
}

/// The revisions' folders: alembic's own answer, which wins over the
/// ini's text (the text's finding stands in when alembic did not answer).
fn alembics_folders(
    asked: Option<Vec<String>>,
    from_text: (MigrationFolders, String),
    ini_path: &str,
) -> Result<(MigrationFolders, String)> {
    let Some(folders) = asked else { return Ok(from_text) };
    let folders = MigrationFolders::new(folders);
    folders.check().map_err(|err| {
        failed(format!(
            "alembic's configuration of {ini_path} names folders of revisions the tool cannot restore one by one: {err:#}"
        ))
    })?;
    let from = match folders == from_text.0 {
        true => format!("{}, as alembic itself reads it on a scratch copy", from_text.1),
        false => format!(
            "alembic's own configuration of {ini_path}, asked on a scratch copy (the ini's text alone suggests {})",
            from_text.0
        ),
    };
    Ok((folders, from))
}

/// The app (proposed by the code's text, imported on a scratch copy when
/// init asks) and its health route: from the app's own
/// route table, else from the code's text, else the default.
fn app_and_health(
    fs: &RootDir,
    root: &Path,
    found_app: Option<Sourced>,
    imported: Option<Result<xtask_adapters::python::AppFacts, String>>,
) -> Result<(Sourced, Sourced)> {
    let defaults = Profile::default();
    // An app that does not import on the copy (a start-up that needs what
    // only the live tree has) keeps the text's finding, saying why; the
    // proof before init writes runs it for real.
    let (routes, not_imported) = match imported {
        Some(Err(why)) => (None, Some(why.lines().last().unwrap_or_default().to_string())),
        Some(Ok(facts)) => (Some(facts.routes), None),
        None => (None, None),
    };
    let Some(app) = found_app else {
        return Err(failed(format!(
            "{}: no app found (a main.py, app.py, asgi.py or wsgi.py that defines app or application or a create_app factory, or a module with app = FastAPI(...)): write tmws-rollback.toml by hand with `app = \"package.module:app\"` or `\"package.module:create_app()\"`",
            root.display()
        )));
    };
    let app = match not_imported {
        Some(why) => (app.0, format!("{} (it did not import on a scratch copy: {why})", app.1)),
        None => app,
    };
    // The app's own route table first; the code's text for an app that
    // has none (a bare ASGI or WSGI callable).
    let from_table = routes
        .into_iter()
        .flatten()
        .find(|route| route.rsplit('/').next().is_some_and(|last| last.starts_with("health")));
    let health = match from_table {
        Some(route) => (route, "the app's own route table, imported on a scratch copy".into()),
        None => health_path(fs, root).map_or_else(
            || (defaults.health_path.clone(), "the default: no health route found".into()),
            |(route, file)| (route, format!("the route {file} declares")),
        ),
    };
    Ok((app, health))
}

/// The runbook's test files that exist, else the folders of the tests
/// pytest's own collection finds, else the checkout's test folders
/// whole (post-check counts a test under a folder named like *integration*
/// as an integration test).
fn test_files(
    fs: &RootDir,
    root: &Path,
    runbook: impl Iterator<Item = String>,
    collected: Option<Vec<String>>,
) -> Vec<String> {
    let found: Vec<String> = runbook.collect();
    if !found.is_empty() {
        return found;
    }
    // Where pytest's own collection found tests (inside the package too).
    if let Some(collected) = collected.filter(|c| !c.is_empty()) {
        return collected;
    }
    let is_dir = |dir: &&str| {
        fs.kind(&root.join(dir)).ok().flatten() == Some(xtask_fs::sys::FileType::Directory)
    };
    ["tests", "test"].into_iter().filter(is_dir).map(String::from).collect()
}

/// The service's name: pyproject.toml's, else the checkout's folder's,
/// without control characters (a name is for reports; the profile loader
/// refuses a control character in any value).
fn service(fs: &RootDir, root: &Path) -> (String, String) {
    let (name, from) = match finds::project_name(fs, root) {
        Some(name) => (name, "pyproject.toml's name"),
        None => {
            let folder = root.file_name().map(|n| n.to_string_lossy().into_owned());
            (folder.unwrap_or_else(|| "service".into()), "the checkout's folder")
        }
    };
    (name.chars().filter(|c| !c.is_control()).collect(), from.into())
}

/// The pre-deploy label: the runbook's only where the runbook's files are.
fn label(critical_files: &[String]) -> (String, String) {
    if critical_files.is_empty() {
        ("pre-deploy".into(), "none of the runbook's critical files is here".into())
    } else {
        (
            xtask_model::label::Label::pre_deploy().to_string(),
            "the runbook's, whose critical files are here".into(),
        )
    }
}

/// A value init found, and where it came from (the profile's comment).
type Sourced = (String, String);

/// How init asks the service itself (`None`: from its files alone, as the
/// sandbox does before its virtualenv exists).
pub struct Ask<'a> {
    pub sh: &'a Shell,
    pub python: Option<&'a Path>,
}

/// The database and the variable that carries its URL. Asked of the
/// service's own Alembic environment when `ask` is given (its answers win);
/// the code's strings (alembic.ini's `sqlalchemy.url`, env.py, a settings
/// module) only name the candidates, or stand in when it cannot answer.
/// No database found is exit 1: init never writes a guess.
fn database_and_variable(at: &Inspecting<'_>, ask: Option<&Ask<'_>>) -> Result<Answers> {
    let (fs, root, ini_path) = (at.fs, at.root, at.ini_path);
    let settings = settings_database(fs, root);
    let url = ini_setting(&fs.read_to_string(&root.join(ini_path))?, "sqlalchemy.url");
    let from_text = match (url.and_then(|u| sqlite_path(&u)), &settings) {
        (Some(path), _) => {
            Some((rel_path(&at.ini_dir.join(path))?, format!("sqlalchemy.url in {ini_path}")))
        }
        (None, Some((path, _, file))) => {
            Some((rel_path(Path::new(path))?, format!("the SQLite URL {file} defaults to")))
        }
        (None, None) => None,
    };
    let variable = variable_from_text(fs, root, at.script_dir, &settings)?;
    let (database, variable, tests, app, migrations) = match ask {
        Some(ask) => asked_or_text(at, ask, from_text, variable, &settings)?,
        None => (from_text, variable, None, None, None),
    };
    let Some(database) = database else {
        return Err(failed(format!(
            "{}: no SQLite database found (alembic, asked with no URL set, opened none under the checkout; no sqlite:/// URL in {ini_path}'s sqlalchemy.url, nor in a settings module): write tmws-rollback.toml by hand with `database = \"path/to/db\"`",
            root.display()
        )));
    };
    Ok(Answers { database, variable, tests, app, migrations })
}

/// What init found of the database, its variable, the tests and the app.
struct Answers {
    database: Sourced,
    variable: Sourced,
    tests: Option<Vec<String>>,
    /// Which of the candidate apps imported (else the first, and why not).
    app: Option<(usize, ImportedApp)>,
    /// The folders alembic itself reads the revisions from.
    migrations: Option<Vec<String>>,
}

/// An app imported on a scratch copy: what it is, or why it did not import.
type ImportedApp = Result<xtask_adapters::python::AppFacts, String>;

/// What asking the service answered (see `asked_or_text`).
type Asked = (
    Option<Sourced>,
    Sourced,
    Option<Vec<String>>,
    Option<(usize, ImportedApp)>,
    Option<Vec<String>>,
);

/// What the service's Alembic environment answers, else the text's
/// findings with the reason it could not answer.
fn asked_or_text(
    at: &Inspecting<'_>,
    ask: &Ask<'_>,
    from_text: Option<(String, String)>,
    variable: (String, String),
    settings: &Option<(String, Option<String>, String)>,
) -> Result<Asked> {
    let service = service(at.fs, at.root).0;
    let upper: String = service
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
        .collect();
    let mut candidates: Vec<String> = [variable.0.clone()]
        .into_iter()
        .chain(settings.iter().filter_map(|(_, v, _)| v.clone()))
        .chain(
            ["DATABASE_URL", "SQLALCHEMY_DATABASE_URL", "SQLALCHEMY_DATABASE_URI"]
                .map(String::from),
        )
        .chain([format!("{upper}_DATABASE_URL")])
        .chain(finds::variables_read(at.fs, at.root))
        .filter(|v| !v.is_empty())
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    candidates.retain(|v| seen.insert(v.clone()));
    let mut profile = Profile::default();
    profile.alembic_ini = at.ini_path.to_string();
    profile.migrations = at.migrations.clone();
    profile.database = from_text.as_ref().map_or(profile.database, |d| d.0.clone());
    profile.database_url_env = String::new();
    // An env.py that needs the app's context (Flask-Migrate's) runs in it.
    profile.app = at.apps.first().map(|a| a.0.clone()).unwrap_or_default();
    let apps: Vec<&str> = at.apps.iter().map(|a| a.0.as_str()).collect();
    match asked::ask(ask.sh, ask.python, at.root, profile, &candidates, &apps) {
        Ok(asked) => {
            let database = asked
                .database
                .map(|d| (d, "the service's alembic environment: with no URL variable set, alembic opens it".to_string()))
                .or(from_text);
            let variable = asked.variable.map_or_else(
                || (String::new(), format!("none of {} moves alembic's connection, asked of the service's alembic environment", candidates.join(", "))),
                |v| (v, "the service's alembic environment: set to another file, it moves alembic's connection there".to_string()),
            );
            Ok((database, variable, asked.tests, asked.app, asked.migrations))
        }
        Err(err) if err.downcast_ref::<asked::Unworkable>().is_some() => {
            Err(failed(format!("{err}")))
        }
        Err(err) => {
            let why = format!("{err:#}");
            let why = why.lines().next().unwrap_or_default().to_string();
            let note = |(value, from): (String, String)| {
                (value, format!("{from} (the service's alembic environment did not answer: {why})"))
            };
            Ok((from_text.map(note), note(variable), None, None, None))
        }
    }
}

/// The URL variable env.py (or the settings module it reads) names.
fn variable_from_text(
    fs: &RootDir,
    root: &Path,
    script_dir: &Path,
    settings: &Option<(String, Option<String>, String)>,
) -> Result<(String, String)> {
    let env_py = script_dir.join("env.py");
    let env_text = fs.read_to_string(&root.join(&env_py)).unwrap_or_default();
    let through_settings = settings.as_ref().and_then(|(_, variable, file)| {
        let module = file.trim_end_matches(".py").replace('/', ".");
        let imports = env_text.contains(&module)
            || env_text.contains("settings")
            || env_text.contains("Settings");
        variable.clone().filter(|_| imports).map(|v| (v, file.clone()))
    });
    Ok(match (url_variable(&env_text), through_settings) {
        (Some(name), _) => (name, format!("{} reads its database URL from it", rel_path(&env_py)?)),
        (None, Some((name, file))) => (
            name,
            format!(
                "{} takes its URL from the settings in {file}, which read it",
                rel_path(&env_py)?
            ),
        ),
        (None, None) => (
            String::new(),
            format!("{} reads no URL variable that could be found", rel_path(&env_py)?),
        ),
    })
}

/// A `key = value` setting of an ini file's text.
fn ini_setting(ini: &str, key: &str) -> Option<String> {
    ini.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

/// A relative path without `./`, in the profile's form; one that climbs out
/// of the root (`script_location = ../elsewhere`) is refused, since the
/// profile would be refused too.
pub(super) fn rel_path(path: &Path) -> Result<String> {
    let text = path.display().to_string();
    let text = text.trim_start_matches("./").to_string();
    files::check_relative(&text).map_err(|err| usage(format!("{err:#}")))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_url_variable_and_the_sqlite_path() {
        let env_py =
            "import os\nurl = os.environ.get(\"SERVICE_DB_URL\")\nlevel = os.getenv('LOG_LEVEL')\n";
        assert_eq!(super::finds::url_variable(env_py).as_deref(), Some("SERVICE_DB_URL"));
        assert_eq!(
            super::finds::sqlite_path("sqlite:///var/app.sqlite").as_deref(),
            Some("var/app.sqlite")
        );
        assert_eq!(super::finds::sqlite_path("postgresql://x/y"), None);
    }
}
