#!/usr/bin/env bash
# The runbook's "Verification Tests" section as one script, the baseline that
# `cargo xtask bench` compares `post-check` with. Run it in a TMWS root with
# alembic, pytest and uvicorn on PATH; PORT (default 8001) is the server's.
#
# Two changes from the runbook, both to keep the machine safe while timing:
# the server is stopped by its own pid instead of by a broad name match, and it listens
# on 127.0.0.1 only. The runbook's fixed wait stays: it is what is measured.
set -uo pipefail
port=${PORT:-8001}

# 1. Database integrity
ls -lh data/tmws.db
sqlite3 data/tmws.db "SELECT name FROM sqlite_master WHERE type='table';"
sqlite3 data/tmws.db "SELECT version_num FROM alembic_version;"
sqlite3 data/tmws.db "PRAGMA integrity_check;"

# 2. Migration consistency
alembic current
alembic history
ls -1 migrations/versions/ | wc -l

# 3. Import validation
python -c "import src.domain.value_objects.tool_category"
python -c "import src.services.verification_service"
python -c "import src.services.learning_trust_integration"
python -m py_compile src/domain/value_objects/tool_category.py
python -m py_compile src/services/verification_service.py

# 4. Unit tests
pytest tests/unit/services/test_verification_service.py -v
pytest tests/unit/services/test_verification_learning_integration.py -v
pytest tests/integration/test_go_python_category_sync.py -v

# 5. Functional validation
TMWS_ENVIRONMENT=development uvicorn src.main:app --reload --host 127.0.0.1 --port "$port" &
server=$!
sleep 3
if command -v jq >/dev/null; then
  curl -s "http://127.0.0.1:$port/health" | jq .
else
  curl -s "http://127.0.0.1:$port/health"
fi
kill "$server"
wait "$server" 2>/dev/null
exit 0
