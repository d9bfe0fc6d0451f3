//! The programs the tool runs are confined by the kernel (Landlock): they
//! may write beneath the tree (or the scratch copy they work on) and their
//! own scratch folder, which is their HOME, and nowhere else. Each route a
//! real service takes out of its tree is tried: an env.py that writes
//! beside the tree, a settings module that makes its folders in HOME, an
//! app that writes elsewhere when it starts.
use std::{fs, path::Path};

use predicates::{prelude::*, str::contains};

use crate::{breakage::half_apply_phase4_head, digest, root, run, run_in, sandbox, xtask};

fn prepend(path: &Path, code: &str) {
    let text = fs::read_to_string(path).unwrap();
    fs::write(path, format!("{code}\n{text}")).unwrap();
}

#[test]
fn the_kernel_offers_landlock_here() {
    // The guarantees below are the kernel's on this machine; --version says
    // which the tool found.
    let version = run(xtask().arg("--version"));
    version.exits(0).stdout_has(contains("Landlock ABI"));
}

#[test]
fn an_env_py_that_writes_beside_the_tree_is_stopped_before_anything_changes() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    half_apply_phase4_head(&root);
    let outside = dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let escape = outside.join("written-by-env.py");
    prepend(
        &root.join("migrations/env.py"),
        &format!("open({:?}, 'w').write('escaped')", escape.display().to_string()),
    );
    let before = digest(&root);
    let rollback = run_in(&root, &["rollback", "--scenario", "migration", "--yes"]);
    rollback.exits(4).stderr_has(contains("Permission denied").or(contains("PermissionError")));
    assert_eq!(digest(&root), before, "the rollback changed the tree");
    let check = run_in(&root, &["post-check", "--only", "migrations", "--expect-revision", "head"]);
    let refusal = format!("the confinement refused alembic a write to {}", escape.display());
    check.exits(4).stdout_has(contains("migrations.current").and(contains(refusal.as_str())));
    assert!(!escape.exists(), "a program the tool ran wrote outside the tree");
}

#[test]
fn a_settings_module_that_makes_its_folders_in_home_makes_them_in_scratch() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let home = dir.path().join("home");
    fs::create_dir_all(&home).unwrap();
    // As a pydantic settings class does on import: a data folder and a
    // secret key under ~/.tmws.
    let settings = "import os as _os\n\
                    _data = _os.path.expanduser('~/.tmws/data')\n\
                    _os.makedirs(_data, exist_ok=True)\n\
                    open(_os.path.expanduser('~/.tmws/.secret_key'), 'w').write('k')";
    prepend(&root.join("migrations/env.py"), settings);
    prepend(&root.join("src/main.py"), settings);
    let rollback = run(xtask()
        .args(["rollback", "--scenario", "migration", "--yes", "--root"])
        .arg(&root)
        .env("HOME", &home));
    rollback.exits(0);
    let check = run(xtask()
        .args(["post-check", "--only", "migrations,server", "--root"])
        .arg(&root)
        .env("HOME", &home));
    check.stdout_has(contains("server.start").and(contains("answered on")));
    assert!(
        fs::read_dir(&home).unwrap().next().is_none(),
        "the programs wrote into the caller's HOME"
    );
}

#[test]
fn an_app_that_writes_elsewhere_is_refused_by_the_confinement_named_as_such() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let escape = dir.path().join("written-by-the-app");
    prepend(
        &root.join("src/main.py"),
        &format!("open({:?}, 'w').write('escaped')", escape.display().to_string()),
    );
    let check = run_in(&root, &["post-check", "--only", "server", "--expect-revision", "head"]);
    // The confinement's refusal, named as such (program, path), exit 4: not
    // the app's failure, and not Python's traceback alone.
    let refusal = format!("the confinement refused the app a write to {}", escape.display());
    check.exits(4).stdout_has(contains("server.start").and(contains(refusal.as_str())));
    check.stderr_has(contains(refusal.as_str()));
    assert!(!escape.exists(), "the app wrote outside the tree");
}

#[test]
fn without_landlock_the_tool_says_so_once_and_identity_still_holds() {
    let version = run(xtask().arg("--version").env("XTASK_PRETEND_NO_LANDLOCK", "1"));
    version.exits(0).stdout_has(contains("no Landlock"));
    let dir = sandbox("phase4");
    let root = root(&dir);
    half_apply_phase4_head(&root);
    let other = dir.path().join("other.db");
    fs::copy(root.join("data/tmws.db"), &other).unwrap();
    let env_py = root.join("migrations/env.py");
    let text = fs::read_to_string(&env_py).unwrap();
    let hard = format!("url = \"sqlite:///{}\"", other.display());
    fs::write(&env_py, text.replace("url = os.environ.get(\"TMWS_DATABASE_URL\")", &hard)).unwrap();
    let (other_before, tree_before) = (fs::read(&other).unwrap(), digest(&root));
    let mut cmd = xtask();
    cmd.args(["rollback", "--scenario", "migration", "--yes", "--root"]).arg(&root);
    let result = run(cmd.env("XTASK_PRETEND_NO_LANDLOCK", "1"));
    result.exits(4).stderr_has(contains("alembic would act on another database"));
    let warnings = result.stderr.matches("this kernel offers no Landlock").count();
    assert_eq!(warnings, 1, "the warning is said once: {}", result.stderr);
    assert_eq!(fs::read(&other).unwrap(), other_before, "the other database changed");
    assert_eq!(digest(&root), tree_before, "the tree changed");
}

/// A critical module, imported by post-check's import check on a terminal
/// (under `script`), with a descriptor 3 the xtask inherited, tries every
/// way out the kernel can close: open the terminal (to type into the
/// operator's shell), connect to a port on loopback, kill another process,
/// write through the descriptor 3 it inherited. Each is blocked: a session of its own has
/// no terminal, Landlock scopes signals and refuses TCP, and no descriptor
/// beyond 0-2 crosses exec.
#[test]
fn a_program_the_tool_runs_has_no_terminal_no_network_no_signals_and_no_stray_descriptor() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut bystander = std::process::Command::new("sleep").arg("60").spawn().unwrap();
    let module = root.join("src/domain/value_objects/tool_category.py");
    prepend(
        &module,
        &format!(
            r#"import os, signal, socket
_seen = []
for _name, _try in [
    ("tty", lambda: os.open("/dev/tty", os.O_RDWR)),
    ("net", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2)),
    ("signal", lambda: os.kill({pid}, signal.SIGKILL)),
    ("fd", lambda: [os.write(int(fd), b"escaped") for fd in os.listdir("/proc/self/fd")
                    if os.path.realpath(f"/proc/self/fd/{{fd}}") == {leaked:?}] or os.stat("/nonexistent")),
]:
    try:
        _try()
        _seen.append(_name + ":done")
    except OSError:
        _seen.append(_name + ":blocked")
# SIGHUP, SIGINT and SIGTERM neither blocked nor ignored: a stopped run's
# signal ends its programs at once.
_status = dict(l.split(":", 1) for l in open("/proc/self/status"))
_held = (int(_status["SigBlk"], 16) | int(_status["SigIgn"], 16)) & 0x4003
_seen.append("signals:" + ("held" if _held else "default"))
raise RuntimeError("ways out: " + " ".join(_seen))"#,
            pid = bystander.id(),
            leaked = dir.path().join("fd3").display().to_string(),
        ),
    );
    let leaked = dir.path().join("fd3");
    let command = format!(
        "exec 3>{}; {} post-check --only imports --format json --root {}",
        leaked.display(),
        crate::xtask_path().display(),
        root.display()
    );
    let run = crate::with_test_env(&mut std::process::Command::new("script"))
        .args(["-qec", &format!("bash -c '{command}'"), "/dev/null"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&run.stdout).into_owned();
    let alive = bystander.try_wait().unwrap().is_none();
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert!(
        said.contains(
            "ways out: tty:blocked net:blocked signal:blocked fd:blocked signals:default"
        ),
        "{said}"
    );
    assert!(alive, "the bystander was killed");
    assert_eq!(fs::read_to_string(&leaked).unwrap(), "", "descriptor 3 was written");
    drop(listener);
}

/// An env.py that takes a while (a slow settings source) is waited for,
/// and the helper says so after 30 s instead of sitting silent.
#[test]
fn a_slow_env_py_is_waited_for_and_said_to_be_slow() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    prepend(&root.join("migrations/env.py"), "import time; time.sleep(31)");
    let check = run_in(&root, &["post-check", "--only", "migrations", "--after", "deploy"]);
    check.exits(0).stderr_has(contains(
        "the Python helper has not answered for 30 s (alembic); it is stopped at 120 s",
    ));
}
