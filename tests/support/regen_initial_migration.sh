#!/usr/bin/env bash
# Rebuild the initial migration from the current models (only while the schema is unreleased).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec 9>/tmp/regen_initial_migration.lock
flock 9
db="tmpl_regen_$$_$RANDOM"
server="${TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test}"
psql "$server" -qc "CREATE DATABASE $db"
backup="$(mktemp -d)"
trap 'psql "$server" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"; rm -rf "$backup"' EXIT
mv migrations/versions/*initial_schema.py "$backup/" 2>/dev/null || true
if ! APP_ENV=testing DATABASE_URL="${server%/*}/$db" .venv/bin/flask --app wsgi db revision \
  -m "initial schema" --rev-id 0001 >/dev/null; then
  mv "$backup"/*.py migrations/versions/ 2>/dev/null || true
  exit 1
fi
new="$(ls migrations/versions/*_0001_initial_schema.py)"
sed -i 's/^Create Date: .*/Create Date: (regenerated)/' "$new"
mv "$new" migrations/versions/0001_initial_schema.py
echo "regenerated migrations/versions/0001_initial_schema.py"
