#!/usr/bin/env bash
# The test command (README: `npm test`). Installs what is missing, type-checks, runs every test
# against a private MariaDB (or A2B_TEST_DB_URL) on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npx tsc -p tsconfig.json --noEmit
npx vitest run "$@"
