#!/usr/bin/env bash
# The whole test suite on the embedded SQLite store, then again on PostgreSQL.
# The PostgreSQL run creates a database of its own on 127.0.0.1:5432 (user postgres) and
# drops it afterwards; set EIGENDOSSIER_TEST_PG to use another server. Without a reachable
# server those tests are skipped, with the reason.
set -euo pipefail
python -m pytest "$@"
python -m pytest --database postgresql "$@"
