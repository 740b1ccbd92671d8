#!/usr/bin/env bash
# System packages the tests and the demo use, from Debian's archive; npm packages from package-lock.json.
# --bench adds what `npm run bench` needs: Kamailio 5.6 with its MySQL modules (the side-by-side comparison) and
# tcpdump (the latency the proxy adds, from packet timestamps). Idempotent and quiet when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# crypto.hash (one-shot hashing on the hot path) arrived in Node.js 20.12.
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 12) ? 0 : 1)' \
  || { echo "a2b-gateway needs Node.js 20.12 or later (found $(node -v))" >&2; exit 1; }

want=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || want+=(mariadb-server mariadb-client)
if [ "${A2B_DEMO_ONLY:-0}" != 1 ]; then
  command -v sipsak >/dev/null 2>&1 || want+=(sipsak)
  command -v chromium >/dev/null 2>&1 || want+=(chromium)
  command -v svmap >/dev/null 2>&1 || want+=(sipvicious)
  command -v baresip >/dev/null 2>&1 || want+=(baresip-core)
fi
if [ "${1:-}" = --bench ]; then
  command -v kamailio >/dev/null 2>&1 || [ -x /usr/sbin/kamailio ] || want+=(kamailio)
  ls /usr/lib/*/kamailio/modules/db_mysql.so >/dev/null 2>&1 || want+=(kamailio-mysql-modules)
  command -v tcpdump >/dev/null 2>&1 || [ -x /usr/bin/tcpdump ] || want+=(tcpdump)
fi
if [ ${#want[@]} -gt 0 ]; then
  echo "installing from Debian packages: ${want[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
fi

# npm ci when node_modules is missing or older than the lock file.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
