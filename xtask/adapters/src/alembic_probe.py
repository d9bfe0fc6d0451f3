# Asks alembic which database file its connection would open, without
# opening it: every SQLAlchemy engine gets a "do_connect" hook that records
# the file the DBAPI would be given (its path, device and inode), then
# refuses the connection, so SQLite never opens (or creates) the file.
# argv[1] is alembic's argv as JSON (`-c INI ... current`). What alembic and
# env.py print is not the answer and goes to stderr. Prints a marker line,
# then JSON {"targets": [{"dialect", "file", "dev", "ino"}], "error": ...}.
import json
import os
import sys
from urllib.parse import unquote

from sqlalchemy import event
from sqlalchemy.engine import Engine

from alembic.config import main

MARKER = "--- tmws alembic-probe result ---"
targets = []


class Probed(Exception):
    """The connection was recorded and refused on purpose."""


@event.listens_for(Engine, "do_connect")
def probe(dialect, record, cargs, cparams):
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
    targets.append(entry)
    raise Probed()


error = None
real_out = os.dup(1)
os.dup2(2, 1)
try:
    main(argv=json.loads(sys.argv[1]), prog="alembic")
except Probed:
    pass
except SystemExit as exit:
    if exit.code not in (None, 0) and not targets:
        error = f"alembic exited with {exit.code}"
except BaseException as failure:
    if not targets:
        error = f"{type(failure).__name__}: {failure}"
finally:
    sys.stdout.flush()
    os.dup2(real_out, 1)
sys.stdout.write("\n" + MARKER + "\n" + json.dumps({"targets": targets, "error": error}) + "\n")
