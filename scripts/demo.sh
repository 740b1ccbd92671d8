#!/usr/bin/env bash
# The main job on embedded defaults (README: `npm run demo`): installs what is missing (MariaDB from Debian's
# packages, npm packages), builds, and runs the demo. Extra arguments go to `a2b-gateway demo` (e.g. --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
A2B_DEMO_ONLY=1 bash scripts/install-deps.sh
npx tsc -p tsconfig.json
exec node dist/src/cli/main.js demo "$@"
