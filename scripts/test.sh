#!/usr/bin/env bash
# The whole test suite on the embedded SQLite store, then again on PostgreSQL.
# The PostgreSQL run creates a database of its own on 127.0.0.1:5432 (user postgres) and
# drops it afterwards; set EIGENDOSSIER_TEST_PG to use another server. Without a reachable
# server those tests are skipped, with the reason.
# The portal's browser tests drive Debian's Chromium (/usr/bin/chromium) with Playwright; it
# is installed here when missing and this runs as root with apt-get (as on CI), else those
# tests are skipped with the reason (and fail under CI=true).
set -euo pipefail
if ! command -v chromium > /dev/null && command -v apt-get > /dev/null && [ "$(id -u)" = 0 ]; then
    apt-get install -y -q chromium > /dev/null 2>&1 \
        || { apt-get update -q > /dev/null && apt-get install -y -q chromium > /dev/null; }
fi
python -m pytest "$@"
python -m pytest --database postgresql "$@"
