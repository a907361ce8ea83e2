#!/usr/bin/env bash
# Runs a command with the real test peers up: starts them (testenv/start.sh),
# exports testenv/run/env.sh and RADGATE_REQUIRE_PEERS=1 (a test that cannot
# reach a peer fails instead of skipping), runs the command, and stops the
# peers whatever happens. Exits with the command's status.
#
#   bash testenv/with-peers.sh go test ./...
#
# One set of peers per checkout: two of these at once in the same checkout
# would stop each other's peers.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ "$#" -gt 0 ] || { echo "usage: bash testenv/with-peers.sh COMMAND [ARG...]" >&2; exit 2; }

trap 'bash "$ROOT/testenv/stop.sh"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bash "$ROOT/testenv/start.sh"
set -a
# shellcheck source=/dev/null
source "$ROOT/testenv/run/env.sh"
set +a
export RADGATE_REQUIRE_PEERS="${RADGATE_REQUIRE_PEERS:-1}"

status=0
"$@" || status=$?
exit "$status"
