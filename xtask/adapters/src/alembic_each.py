# Runs several alembic commands in one Python process, so that SQLAlchemy and
# alembic are imported once rather than once per command (most of an alembic
# start). argv[1] is a JSON list of {"argv": [...], "env": {...}}; each command
# runs as `alembic ARGV` would, with its own environment, its stdout and
# stderr captured at the file descriptors (alembic binds sys.stdout when it is
# imported, so swapping sys.stdout would not do). Prints a marker line, then a
# JSON list of {"code", "stdout", "stderr"}.
import json
import os
import sys
import tempfile
import traceback

from alembic.config import main

MARKER = "--- tmws alembic-each results ---"

real_out, real_err = os.dup(1), os.dup(2)
results = []
for run in json.loads(sys.argv[1]):
    saved = dict(os.environ)
    os.environ.update(run["env"])
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        code = 0
        try:
            main(argv=run["argv"], prog="alembic")
        except SystemExit as exit:
            # As the process's exit status would be: sys.exit(-1) is 255.
            code = exit.code % 256 if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        except Exception:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(real_out, 1)
            os.dup2(real_err, 2)
        out.seek(0)
        err.seek(0)
        results.append({
            "code": code,
            "stdout": out.read().decode("utf-8", "replace"),
            "stderr": err.read().decode("utf-8", "replace"),
        })
    os.environ.clear()
    os.environ.update(saved)
sys.stdout.write("\n" + MARKER + "\n" + json.dumps(results) + "\n")
