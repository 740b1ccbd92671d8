#!/usr/bin/env bash
# What `npm run bench` needs beyond the test dependencies, from Debian's archive: Kamailio 5.6 with its MySQL
# modules (scenario d, the side-by-side comparison) and tcpdump (the latency the proxy adds, from packet
# timestamps). Idempotent and quiet when everything is there already.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

want=()
command -v kamailio >/dev/null 2>&1 || [ -x /usr/sbin/kamailio ] || want+=(kamailio)
ls /usr/lib/*/kamailio/modules/db_mysql.so >/dev/null 2>&1 || want+=(kamailio-mysql-modules)
command -v tcpdump >/dev/null 2>&1 || [ -x /usr/bin/tcpdump ] || want+=(tcpdump)
if [ ${#want[@]} -gt 0 ]; then
  echo "installing from Debian packages: ${want[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
fi
