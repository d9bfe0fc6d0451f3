//! The Python helper's own protocol, request by request, in the sandbox
//! virtualenv: what one request imports, maps or configures never answers
//! for the next.
use std::{
    fs,
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

use crate::sandbox::python_of_sandbox;

/// The helper's answers to `requests` (one JSON object each), run in `dir`.
fn answers(dir: &Path, requests: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let source = include_str!("../../xtask/adapters/src/python/helper.py");
    let mut child = Command::new(python_of_sandbox())
        .args(["-c", source])
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for request in requests {
        writeln!(stdin, "{request}").unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let answers: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(answers.len(), requests.len(), "{}", String::from_utf8_lossy(&output.stderr));
    answers
}

fn imports(module: &str, env: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "op": "imports", "modules": [module], "files": [], "env": env })
}

#[test]
fn one_requests_modules_and_mappers_never_answer_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| fs::write(dir.path().join(name), text).unwrap();
    // A settings module that reads the environment when it is imported.
    write("settings.py", "import os\nMODE = os.environ.get('MODE')\n");
    write("stale.py", "import settings\nassert settings.MODE is None, settings.MODE\n");
    // Models whose relationship names a class that does not exist: the
    // ORM's configuration fails, and stays failed while they are mapped.
    let models = "from sqlalchemy import ForeignKey, Integer\n\
        from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, configure_mappers\n\
        class Base(DeclarativeBase):\n    pass\n\
        class Owner(Base):\n    __tablename__ = 'owners'\n    id: Mapped[int] = mapped_column(Integer, primary_key=True)\n";
    write(
        "broken_models.py",
        &format!("{models}    pets = relationship('Missing')\nconfigure_mappers()\n"),
    );
    write("models.py", &format!("{models}configure_mappers()\n"));
    let answers = answers(
        dir.path(),
        &[
            imports("settings", serde_json::json!({ "MODE": "deploy" })),
            imports("stale", serde_json::json!({})),
            imports("broken_models", serde_json::json!({})),
            imports("models", serde_json::json!({})),
        ],
    );
    let codes: Vec<i64> = answers.iter().map(|a| a["code"].as_i64().unwrap()).collect();
    // The settings module was imported again, without MODE; the broken
    // models failed alone, and the next models configured.
    assert_eq!(codes, [0, 0, 1, 0], "{answers:#?}");
    assert!(answers[2]["stdout"].as_str().unwrap().contains("Missing"), "{answers:#?}");
}

/// init's question to pytest, answered in the helper: the tests pytest's
/// own collection finds, as `pytest --collect-only -q` prints them, with
/// no cache written into the tree.
#[test]
fn the_helper_collects_tests_as_pytest_does_and_writes_no_cache() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("pkg/tests")).unwrap();
    fs::write(dir.path().join("pkg/tests/test_one.py"), "def test_one():\n    pass\n").unwrap();
    let answers = answers(dir.path(), &[serde_json::json!({ "op": "collect" })]);
    assert_eq!(answers[0]["code"], 0, "{answers:#?}");
    let stdout = answers[0]["stdout"].as_str().unwrap();
    assert!(stdout.lines().any(|l| l == "pkg/tests/test_one.py::test_one"), "{stdout}");
    assert!(!dir.path().join(".pytest_cache").exists(), "pytest wrote its cache");
}
