# The tool's Python helper: one process per command that imports Alembic and
# SQLAlchemy once (most of an alembic start) and then answers the command's
# questions, one JSON request a line on stdin, one JSON answer a line on the
# stdout it was started with. What alembic, env.py or the service's code
# prints is captured per request at the file descriptors (alembic binds
# sys.stdout when it is imported), never mixed with the answers.
#
# Requests:
#   {"op": "alembic", "argv": [...], "app": "module:attr"}
#                                              alembic ARGV, as the CLI runs it
#                                              (inside the app's context when
#                                              env.py needs one: Flask-Migrate)
#   {"op": "probe", "argv": [...], "app": ...} the same, every connection refused
#   {"op": "imports", "modules": [...], "files": [...]}
#                                              import modules, compile files
#   {"op": "scripts", "argv": [...]}           where alembic reads the revisions:
#                                              its version locations, and the
#                                              file of each revision it loads
#   {"op": "collect"}                          pytest --collect-only -q, run in
#                                              this process: the tests pytest's
#                                              own collection finds
#   {"op": "app", "spec": "module:attr"}       import the app (a factory with
#                                              `()` is called): its interface,
#                                              its route table's paths, and the
#                                              files outside the tree that the
#                                              import and the call read
# Any request may carry "env": {NAME: VALUE} and "unset": [NAME], applied
# for that request alone.
# Every answer: {"code", "stdout", "stderr", "connections"}: each database
# connection the request opened (or, probing, would have opened), with the
# file SQLite was given, and its device and inode when it exists.
#
# Each request sees the process as it was after start-up: the modules the
# service's code imported are forgotten, and sys.path, os.environ and the
# working folder are put back, so one request's imports (a settings module
# read at import time) never answer for the next.
import gc

# The collector runs many times while SQLAlchemy and alembic are imported,
# and finds nothing to free: a fifth of the start-up. It runs again once
# they are in (their objects frozen out of its way), for the service's code.
gc.disable()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import traceback  # noqa: E402
from urllib.parse import unquote  # noqa: E402

# alembic first: without it, that is what the error names.
import alembic.command  # noqa: E402,F401  (imported once, for every request)
import alembic.config  # noqa: E402,F401
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402


class Probed(Exception):
    """A connection recorded and refused on purpose."""


state = {"probing": False, "connections": []}


@event.listens_for(Engine, "do_connect")
def record(dialect, conn_rec, cargs, cparams):
    name = cargs[0] if cargs else cparams.get("database", "")
    if isinstance(name, str) and name.startswith("file:"):
        name = unquote(name[len("file:"):].split("?", 1)[0])
    entry = {"dialect": dialect.name, "file": None, "dev": None, "ino": None}
    if dialect.name == "sqlite" and isinstance(name, str) and name not in ("", ":memory:"):
        entry["file"] = os.path.abspath(name)
        try:
            stat = os.stat(entry["file"])
            entry["dev"], entry["ino"] = stat.st_dev, stat.st_ino
        except OSError:
            pass
    state["connections"].append(entry)
    if state["probing"]:
        raise Probed()


def exit_code(exit):
    # As the process's exit status would be: sys.exit(-1) is 255.
    if exit.code is None:
        return 0
    return exit.code % 256 if isinstance(exit.code, int) else 1


class NeedsApp(Exception):
    """An env.py that needs a Flask application context, with no app named."""


def located(config):
    """Resolves a relative script_location against the ini's folder when
    that is where the scripts are (Flask-Migrate keeps `alembic.ini` in the
    migrations folder and says `script_location = .`); alembic itself would
    read it from the working folder."""
    location = config.get_main_option("script_location")
    if not location or os.path.isabs(location) or not config.config_file_name:
        return
    if os.path.isfile(os.path.join(location, "env.py")):
        return
    beside = os.path.join(os.path.dirname(os.path.abspath(config.config_file_name)), location)
    if os.path.isfile(os.path.join(beside, "env.py")):
        config.set_main_option("script_location", os.path.normpath(beside).replace("%", "%%"))


def made_app(spec):
    """The app a profile's `app` names (`module:attr`, or a factory
    `module:create_app()` called once), imported from the working folder."""
    import importlib

    module_name, _, attribute = spec.partition(":")
    factory = attribute.endswith("()")
    attribute = attribute[:-2] if factory else attribute
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    made = getattr(importlib.import_module(module_name), attribute)
    return made() if factory else made


def in_app_context(run, request):
    """Runs `run()`; an env.py that needs a Flask application context (as
    Flask-Migrate's does, at its first line) runs again inside the profile
    app's context, as `flask db` runs it."""
    try:
        return run()
    except RuntimeError as error:
        if "application context" not in str(error):
            raise
        if not request.get("app"):
            raise NeedsApp() from None
        app = made_app(request["app"])
        if not hasattr(app, "app_context"):
            raise
        with app.app_context():
            return run()


def alembic_cli(argv, run_cmd):
    """Alembic's command line on `argv`, with `run_cmd(plain, config,
    options)` in place of its own (`plain` runs the command as alembic
    would), once the ini's script_location is located; its exit status."""
    from alembic.config import CommandLine

    cli = CommandLine(prog="alembic")
    plain = cli.run_cmd

    def located_run_cmd(config, options):
        located(config)
        run_cmd(plain, config, options)

    cli.run_cmd = located_run_cmd
    try:
        cli.main(argv=argv)
        return 0
    except SystemExit as exit:
        return exit_code(exit)


def run_alembic(request):
    def run_cmd(plain, config, options):
        in_app_context(lambda: plain(config, options), request)

    try:
        return alembic_cli(request["argv"], run_cmd)
    except Probed:
        return 0
    except NeedsApp:
        print(
            "error: the env.py needs a Flask application context (Flask-Migrate): "
            "name the Flask app or its factory as the profile's app (app = \"module:create_app()\")",
            file=sys.stderr,
        )
        return 1


def file_of(error):
    """The file of the tree where an import failed, relative to the tree:
    the file a SyntaxError names, else the innermost frame in the tree."""
    root = os.getcwd() + os.sep
    files = [frame.filename for frame in traceback.extract_tb(error.__traceback__)]
    if isinstance(error, SyntaxError) and error.filename:
        files.append(error.filename)
    ours = [f for f in files if os.path.abspath(f).startswith(root)]
    return os.path.relpath(os.path.abspath(ours[-1]), root) if ours else None


def run_imports(request):
    import importlib

    bad = 0
    for name in request.get("modules", []):
        try:
            importlib.import_module(name)
        except BaseException as error:
            bad += 1
            print(f"{name}: {error.__class__.__name__}: {error}")
            where = file_of(error)
            if where:
                print(f"  in {where}")
    for path in request.get("files", []):
        try:
            with open(path, "rb") as source:
                compile(source.read(), path, "exec", dont_inherit=True)
        except SyntaxError as error:
            bad += 1
            print(f"{path}:{error.lineno}: SyntaxError: {error.msg}")
    return 1 if bad else 0


# Files and folders the system keeps for every program, which libraries
# read for themselves (time zones, OS release, MIME types, certificates,
# shared libraries and their data): never a service's settings.
SYSTEM_FILES = ("/etc/localtime", "/etc/timezone", "/etc/os-release", "/etc/mime.types")
SYSTEM_FOLDERS = ("/proc", "/sys", "/dev", "/etc/ssl", "/etc/pki", "/etc/ca-certificates",
                  "/usr/share", "/usr/lib", "/usr/lib64", "/lib", "/lib64")

reads = {"on": False, "paths": []}


def audit(event, args):
    """Records each file opened for reading while `reads` is on: the path
    as the code gave it, made absolute against the working folder of the
    moment. Cheap and silent: it runs for every event of the process."""
    if event != "open" or not reads["on"]:
        return
    try:
        path, mode, flags = args
        if isinstance(path, int):
            return
        if isinstance(flags, int):
            if flags & os.O_ACCMODE != os.O_RDONLY:
                return
        elif isinstance(mode, str) and any(c in mode for c in "wax+"):
            return
        reads["paths"].append(os.path.abspath(os.fsdecode(path)))
    except Exception:
        pass


def beneath(path, folders):
    return any(f and f != os.sep and (path == f or path.startswith(f.rstrip(os.sep) + os.sep))
               for f in folders)


def read_outside(paths):
    """The regular files of `paths` that are the service's own reading
    outside the tree: not the tree's (the working folder), the
    interpreter's (its prefixes, standard library and site-packages), the
    system's (/proc, /sys, /dev, and SYSTEM_FILES), or this process's
    scratch (HOME and TMPDIR). Returns (elsewhere, under the home folder of
    the user the app runs as)."""
    import pwd
    import site
    import sysconfig

    # The folders as the helper started: the app may have moved or changed them.
    skipped = [baseline_cwd, sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
               tempfile.gettempdir(), baseline_env.get("HOME", "")]
    skipped += [sysconfig.get_paths().get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    skipped += list(getattr(site, "getsitepackages", lambda: [])())
    skipped = [os.path.realpath(f) for f in skipped if f] + [f for f in skipped if f]
    skipped += list(SYSTEM_FOLDERS)
    try:
        home = os.path.realpath(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        home = None
    elsewhere, in_home = [], []
    for path in dict.fromkeys(paths):
        real = os.path.realpath(path)
        if any(beneath(p, skipped) or p in SYSTEM_FILES for p in (path, real)):
            continue
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            continue
        if not os.path.isfile(path):
            continue
        in_a_home = home and home != os.sep and any(beneath(p, [home]) for p in (path, real))
        (in_home if in_a_home else elsewhere).append(path)
    return elsewhere, in_home


def run_app(request):
    """Imports the app a profile names (calling a factory once) and prints
    what it is: its interface, the paths of its route table, and the files
    outside the tree that its import and its factory read."""
    import asyncio
    import inspect

    if not reads.get("hooked"):
        sys.addaudithook(audit)
        reads["hooked"] = True
    reads["paths"] = []
    reads["on"] = True
    try:
        app = made_app(request["spec"])
    finally:
        reads["on"] = False
    read, read_in_home = read_outside(reads["paths"])
    if inspect.isclass(app):
        asgi = True
    else:
        call = app if inspect.isfunction(app) or inspect.ismethod(app) else type(app).__call__
        asgi = asyncio.iscoroutinefunction(call)
    routes = [getattr(r, "path", None) for r in (getattr(app, "routes", None) or [])]
    url_map = getattr(app, "url_map", None)
    if url_map is not None:
        routes += [rule.rule for rule in url_map.iter_rules()]
    facts = {"interface": "asgi" if asgi else "wsgi", "routes": [r for r in routes if isinstance(r, str)],
             "read": read, "read_in_home": read_in_home}
    print("TMWS-APP " + json.dumps(facts))
    return 0


def run_scripts(request):
    """Where alembic itself reads the revisions, as its own configuration
    says once interpolated (`%(here)s`, the path separator, the ini
    section `-n` names): the folders of its version locations, whether it
    walks them recursively, and the file of every revision it loads."""
    from alembic.script import ScriptDirectory

    def run_cmd(_plain, config, _options):
        script = ScriptDirectory.from_config(config)
        folders = getattr(script, "_version_locations", None)
        if folders is None:
            folders = script.version_locations or [os.path.join(script.dir, "versions")]
        facts = {
            "versions": [os.path.abspath(folder) for folder in folders],
            "recursive": bool(getattr(script, "recursive_version_locations", False)),
            "files": None,
        }
        try:
            facts["files"] = sorted(os.path.abspath(s.path) for s in script.walk_revisions())
        except Exception as error:  # a broken history: the folders still answer
            print(f"revisions not walked: {error}", file=sys.stderr)
        print("TMWS-SCRIPTS " + json.dumps(facts))

    return alembic_cli(request["argv"], run_cmd)


def run_collect(_request):
    """pytest's own collection, as `pytest --collect-only -q` prints it,
    without a process of its own: the libraries the tests import are
    mostly imported here already. Its cache is not written."""
    import pytest

    return int(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider"]))


OPS = {
    "alembic": run_alembic,
    "probe": run_alembic,
    "imports": run_imports,
    "app": run_app,
    "scripts": run_scripts,
    "collect": run_collect,
}

gc.freeze()
gc.enable()

# The answers go out on a descriptor far from the low numbers the service's
# code might write to by mistake (3, 4...), never inherited by its programs.
import fcntl  # noqa: E402
import importlib  # noqa: E402

answers = os.fdopen(fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 200), "w", encoding="utf-8")
os.dup2(2, 1)
baseline_modules = set(sys.modules)
baseline_path = list(sys.path)
baseline_env = dict(os.environ)
baseline_cwd = os.getcwd()
real_out, real_err = os.dup(1), os.dup(2)

for line in sys.stdin:
    if not line.strip():
        continue
    request = json.loads(line)
    # Files written since the last request (a deploy's new modules) are
    # found even where the folder's time did not move.
    importlib.invalidate_caches()
    # A request may set and unset environment variables for itself (init
    # asks which variable moves alembic's connection); they are put back
    # with the rest after it.
    for name in request.get("unset", []):
        os.environ.pop(name, None)
    os.environ.update(request.get("env", {}))
    state["probing"] = request["op"] == "probe"
    state["connections"] = []
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            code = OPS[request["op"]](request)
        except Probed:
            code = 0
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(real_out, 1)
            os.dup2(real_err, 2)
        out.seek(0)
        err.seek(0)
        answer = {
            "code": code,
            "stdout": out.read().decode("utf-8", "replace"),
            "stderr": err.read().decode("utf-8", "replace"),
            "connections": state["connections"],
        }
    for name in [m for m in sys.modules if m not in baseline_modules]:
        del sys.modules[name]
    sys.path[:] = baseline_path
    os.environ.clear()
    os.environ.update(baseline_env)
    os.chdir(baseline_cwd)
    answers.write(json.dumps(answer) + "\n")
    answers.flush()
