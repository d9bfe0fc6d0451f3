//! What init looks for in a checkout's files: SQLite URLs, the variables
//! that carry them (in env.py or a settings class), the ASGI app, its
//! health route, and files by name.
use std::path::{Path, PathBuf};

use xtask_fs::RootDir;

use super::rel;

/// `data/x.db` from `sqlite:///data/x.db`; `None` for other databases.
pub(super) fn sqlite_path(url: &str) -> Option<String> {
    let path = url.strip_prefix("sqlite:///")?;
    let path = path.split('?').next()?;
    (!path.is_empty() && !path.starts_with('/') && !path.contains("%(")).then(|| path.to_string())
}

/// The environment variable an env.py reads its database URL from.
pub(super) fn url_variable(text: &str) -> Option<String> {
    let patterns = ["os.environ.get(", "os.getenv(", "os.environ["];
    text.lines()
        .flat_map(|line| {
            patterns.iter().filter_map(move |p| {
                let after = &line[line.find(p)? + p.len()..];
                let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
                let name: String = after[1..].chars().take_while(|c| *c != quote).collect();
                Some(name)
            })
        })
        .find(|name| {
            let upper = name.to_uppercase();
            upper.contains("URL") || upper.contains("DATABASE") || upper.contains("DB")
        })
}

/// The service's Python files (not its tests, migrations or
/// virtualenvs), up to four folders down, shallowest first.
pub(super) fn python_files(fs: &RootDir, root: &Path) -> Vec<PathBuf> {
    let enter = |dir: &Path| {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let skipped = name.starts_with('.')
            || ["tests", "test", "node_modules", "venv", "backups", "forensics", "versions"]
                .contains(&name.as_ref())
            || fs.exists(&dir.join("pyvenv.cfg"));
        !skipped
    };
    let files = fs.walk(root, 4, enter);
    files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "py")).collect()
}

/// A SQLite URL a settings class or module defaults to, and the variable
/// that overrides it: `os.environ.get("VAR", "sqlite:///var/x.db")`, or a
/// pydantic `BaseSettings` field `database_url: str = "sqlite:///..."`
/// (the variable then is the class's `env_prefix` and the field's name).
/// Returns (path, variable, file).
pub(super) fn settings_database(
    fs: &RootDir,
    root: &Path,
) -> Option<(String, Option<String>, String)> {
    for file in python_files(fs, root) {
        let Ok(text) = fs.read_to_string(&file) else { continue };
        let prefix = text.lines().find_map(|l| {
            let rest = l.trim().strip_prefix("env_prefix")?.trim_start().strip_prefix('=')?;
            Some(rest.trim().trim_matches(['"', '\'', ',']).to_string())
        });
        for line in text.lines() {
            let Some(at) = line.find("sqlite:///") else { continue };
            let literal: String = line[at + "sqlite:///".len()..]
                .chars()
                .take_while(|c| !"\"'".contains(*c))
                .collect();
            // `f"sqlite:///{DATA_DIR}/x.db"`: the data folder's default,
            // from where the module sets it (`os.environ.get("VAR", "data")`).
            let (literal, data_variable) = match data_folder(&text, &literal) {
                Some((expanded, variable)) => (expanded, Some(variable)),
                None if literal.contains('{') => continue,
                None => (literal, None),
            };
            let Some(path) = sqlite_path(&format!("sqlite:///{literal}")) else { continue };
            if let Some(variable) = data_variable {
                return Some((
                    path,
                    None,
                    format!("{} (its data folder: {variable})", rel(root, &file)),
                ));
            }
            let variable = url_variable_in(line).or_else(|| {
                let field = line.trim().split([':', '=']).next()?.trim();
                let is_field =
                    !field.is_empty() && field.chars().all(|c| c.is_alphanumeric() || c == '_');
                (is_field && text.contains("BaseSettings")).then(|| {
                    format!("{}{}", prefix.clone().unwrap_or_default(), field).to_uppercase()
                })
            });
            return Some((path, variable, rel(root, &file)));
        }
    }
    None
}

/// `{NAME}/x.db` with NAME's default folder put in, and the variable that
/// overrides NAME (`NAME = os.environ.get("VAR", "data")`, or wrapped in
/// `Path(...)`), when the module sets NAME that way.
fn data_folder(text: &str, literal: &str) -> Option<(String, String)> {
    let name = literal.strip_prefix('{')?.split('}').next()?.trim().to_string();
    let rest = &literal[name.len() + 2..];
    text.lines().find_map(|line| {
        let (left, right) = line.split_once('=')?;
        let left = left.trim().split(':').next()?.trim();
        if left != name && left.to_uppercase() != name.to_uppercase() {
            return None;
        }
        let variable = url_variable_in(right)?;
        // The default: the second quoted string of the call.
        let after = right.split_once(&variable)?.1;
        let quote = after.chars().find(|c| *c == '"' || *c == '\'')?;
        let default = after.split(quote).nth(2)?;
        Some((format!("{}{rest}", default.trim_end_matches('/')), variable))
    })
}

/// Every variable the service's Python files read (with the forms above)
/// whose name speaks of a URL or a database: the candidates init asks the
/// service's alembic environment about, never an answer by themselves.
pub(super) fn variables_read(fs: &RootDir, root: &Path) -> Vec<String> {
    let mut names: Vec<String> = python_files(fs, root)
        .iter()
        .filter_map(|file| fs.read_to_string(file).ok())
        .flat_map(|text| text.lines().filter_map(url_variable_in).collect::<Vec<_>>())
        .filter(|name| {
            let upper = name.to_uppercase();
            upper.contains("URL") || upper.contains("DATABASE") || upper.contains("DB")
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The variable a line reads with `os.environ.get("X"`, `os.getenv("X"`
/// or `os.environ["X"`, whatever its name.
fn url_variable_in(line: &str) -> Option<String> {
    ["os.environ.get(", "os.getenv(", "os.environ["].iter().find_map(|p| {
        let after = &line[line.find(p)? + p.len()..];
        let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        Some(after[1..].chars().take_while(|c| *c != quote).collect())
    })
}

/// The health route the app's code declares (`"/health"`, `"/healthz"`,
/// `"/api/health"`...), and the file that declares it.
pub(super) fn health_path(fs: &RootDir, root: &Path) -> Option<(String, String)> {
    python_files(fs, root).into_iter().find_map(|file| {
        let text = fs.read_to_string(&file).ok()?;
        text.split(['"', '\''])
            .find(|piece| {
                piece.starts_with('/')
                    && piece.rsplit('/').next().is_some_and(|last| last.starts_with("health"))
            })
            .map(|route| (route.to_string(), rel(root, &file)))
    })
}

/// The apps the code's text proposes, for the service to confirm by
/// importing them, in order: a `[project.scripts]` module, then the usual
/// entry points (a `main.py`, `app.py`, `asgi.py` or `wsgi.py`, the
/// shallowest first) that define `app` (ASGI or WSGI), `application`
/// (WSGI) or a factory `create_app` (`module:create_app()`), then any
/// module of the service that makes one (`app = FastAPI(`). Each with
/// where it came from.
pub(super) fn app_candidates(fs: &RootDir, root: &Path) -> Vec<(String, String)> {
    let defined_in = |path: &Path| -> Vec<(String, String)> {
        let Ok(text) = fs.read_to_string(path) else { return Vec::new() };
        let relative = rel(root, path);
        let module = relative.trim_end_matches(".py").replace('/', ".");
        let defines_app = text.lines().any(|l| {
            // `from src.service import app`: the entry point re-exports it.
            let imported = l.starts_with("from ")
                && l.split(" import ").nth(1).is_some_and(|names| {
                    names.split([',', ' ', '#']).next().is_some_and(|first| first == "app")
                });
            ["app =", "app=", "def app(", "async def app("].iter().any(|p| l.starts_with(p))
                || imported
        });
        let has = |prefix: &str| text.lines().any(|l| l.starts_with(prefix));
        [
            (defines_app, "app", "defines app"),
            (has("application ="), "application", "defines a WSGI application"),
            (has("def create_app("), "create_app()", "defines the factory create_app"),
        ]
        .into_iter()
        .filter(|(found, ..)| *found)
        .map(|(_, spec, what)| (format!("{module}:{spec}"), format!("{relative}, which {what}")))
        .collect()
    };
    let mut found = Vec::new();
    // The package's own entry points first.
    let scripts = fs.read_to_string(&root.join("pyproject.toml")).ok().map(|t| script_modules(&t));
    for (name, module) in scripts.unwrap_or_default() {
        let file = module.replace('.', "/") + ".py";
        for prefix in ["", "src/"] {
            for (app, from) in defined_in(&root.join(format!("{prefix}{file}"))) {
                let from =
                    format!("{from}, the module of the entry point {name} in pyproject.toml");
                found.push((app, from));
            }
        }
    }
    let mut entry_points: Vec<PathBuf> = ["main.py", "app.py", "asgi.py", "wsgi.py"]
        .iter()
        .flat_map(|name| files_named(fs, root, name, 5))
        .collect();
    entry_points.sort_by_key(|p| p.components().count());
    found.extend(entry_points.iter().flat_map(|path| defined_in(path)));
    for path in python_files(fs, root) {
        let Ok(text) = fs.read_to_string(&path) else { continue };
        let makes = text.lines().any(|l| {
            let l = l.replace(' ', "");
            l.starts_with("app=FastAPI(") || l.starts_with("app=Starlette(")
        });
        if makes {
            let relative = rel(root, &path);
            let module = relative.trim_end_matches(".py").replace('/', ".");
            found.push((format!("{module}:app"), format!("{relative}, which makes app")));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    found.retain(|(app, _)| seen.insert(app.clone()));
    found
}

/// The project's name in pyproject.toml (`[project]`, or Poetry's).
pub(super) fn project_name(fs: &RootDir, root: &Path) -> Option<String> {
    let doc = fs.read_to_string(&root.join("pyproject.toml")).ok()?.parse::<toml::Table>().ok()?;
    let named = |table: Option<&toml::Value>| table?.get("name")?.as_str().map(str::to_string);
    named(doc.get("project"))
        .or_else(|| named(doc.get("tool").and_then(|t| t.get("poetry"))))
        .filter(|name| !name.trim().is_empty())
}

/// The entry points of a pyproject.toml (`[project.scripts]`, and Poetry's
/// `[tool.poetry.scripts]`): each name with the module its `module:function`
/// names.
pub(super) fn script_modules(pyproject: &str) -> Vec<(String, String)> {
    let Ok(doc) = pyproject.parse::<toml::Table>() else { return Vec::new() };
    let tables = [
        doc.get("project").and_then(|p| p.get("scripts")),
        doc.get("tool").and_then(|t| t.get("poetry")).and_then(|p| p.get("scripts")),
    ];
    tables
        .into_iter()
        .flatten()
        .filter_map(toml::Value::as_table)
        .flat_map(|scripts| scripts.iter())
        .filter_map(|(name, target)| {
            let module = target.as_str()?.split(':').next()?.trim().to_string();
            (!module.is_empty()).then(|| (name.clone(), module))
        })
        .collect()
}

/// Files of that name below `root`, up to `depth` folders down, skipping
/// hidden folders, virtualenvs and the tool's own folders.
pub(super) fn files_named(fs: &RootDir, root: &Path, name: &str, depth: usize) -> Vec<PathBuf> {
    let enter = |dir: &Path| {
        let folder = dir.file_name().unwrap_or_default().to_string_lossy();
        let skipped = folder.starts_with('.')
            || ["node_modules", "venv", "backups", "forensics", "__pycache__", "site-packages"]
                .contains(&folder.as_ref());
        !skipped
    };
    let files = fs.walk(root, depth, enter);
    files.into_iter().filter(|p| p.file_name().is_some_and(|n| n == name)).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_database_under_a_data_folder_variable_is_found() {
        let module = "DATA_DIR = Path(os.environ.get(\"LEDGER_DATA\", \"var/data\"))\nURL = f\"sqlite:///{DATA_DIR}/ledger.db\"\n";
        assert_eq!(
            super::data_folder(module, "{DATA_DIR}/ledger.db"),
            Some(("var/data/ledger.db".to_string(), "LEDGER_DATA".to_string()))
        );
        assert_eq!(super::data_folder(module, "{OTHER}/x.db"), None);
    }

    #[test]
    fn entry_points_name_their_modules() {
        let pyproject = "[project]\nname = \"ledger\"\n[project.scripts]\nledger-serve = \"ledger.server:run\"\n[tool.poetry.scripts]\nold = \"ledger.cli:main\"\n";
        let found = super::script_modules(pyproject);
        assert_eq!(
            found,
            [
                ("ledger-serve".to_string(), "ledger.server".to_string()),
                ("old".into(), "ledger.cli".into())
            ]
        );
    }
}
