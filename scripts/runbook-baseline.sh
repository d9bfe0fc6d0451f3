#!/usr/bin/env bash
# The runbook's own shell commands, as the baseline `cargo xtask bench`
# measures against. They are the runbook's steps as written, with its paths
# made arguments; they are NOT safe (see DESIGN.md, "Hazards") and exist only
# to be timed on sandboxes.
#
#   runbook-baseline.sh backup            ROOT BACKUP_DIR
#   runbook-baseline.sh verify            BACKUP_DIR
#   runbook-baseline.sh rollback-database ROOT BACKUP_DIR
#   runbook-baseline.sh rollback-migration ROOT REVISION   (alembic on PATH)
#   runbook-baseline.sh verify-restored DIR                (a restic restore)
set -euo pipefail

op=$1
case "$op" in
  backup)
    root=$2 backup=$3
    mkdir -p "$backup/database" "$backup/config" "$backup/migrations/alembic_versions" "$backup/critical_files"
    sqlite3 "$root/data/tmws.db" ".backup '$backup/database/tmws.db.backup'"
    cp "$root/pyproject.toml" "$root/.env.example" "$root/alembic.ini" "$backup/config/"
    cp "$root"/migrations/versions/*.py "$backup/migrations/alembic_versions/"
    cp "$root/src/domain/value_objects/tool_category.py" \
       "$root/src/services/verification_service.py" \
       "$root/src/services/learning_trust_integration.py" \
       "$root/tests/integration/test_go_python_category_sync.py" \
       "$root/tests/unit/services/test_verification_learning_integration.py" \
       "$backup/critical_files/"
    ;;
  verify)
    backup=$2
    (cd "$backup" && find . -type f -print0 | xargs -0 sha256sum >/dev/null)
    sqlite3 "$backup/database/tmws.db.backup" "PRAGMA integrity_check;" >/dev/null
    ;;
  rollback-database)
    root=$2 backup=$3
    # Step 2 of the runbook's emergency rollback.
    cp "$root/data/tmws.db" "$root/data/tmws.db.failed-phase4"
    cp "$backup/database/tmws.db.backup" "$root/data/tmws.db"
    ;;
  verify-restored)
    # The backup restic restored somewhere below DIR, checked as the
    # runbook would: every hash in SHA256SUMS, then integrity_check.
    sums=$(find "$2" -name SHA256SUMS -print -quit)
    backup=$(dirname "$sums")
    (cd "$backup" && sha256sum -c --quiet SHA256SUMS)
    sqlite3 "$backup/database/tmws.db.backup" "PRAGMA integrity_check;" >/dev/null
    ;;
  rollback-migration)
    root=$2 revision=$3
    # The runbook's "Database Rollback": the optional copy, then alembic.
    cp "$root/data/tmws.db" "$root/data/tmws.db.failed-phase4"
    (cd "$root" && alembic downgrade "$revision" >/dev/null && alembic current >/dev/null)
    ;;
  *)
    echo "usage: $0 backup|verify|verify-restored|rollback-database|rollback-migration ..." >&2
    exit 2
    ;;
esac
