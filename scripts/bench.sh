#!/usr/bin/env bash
# Reproduces BENCHMARKS.md: starts the real peers, then runs
#   radgate bench        (whole order→report path beside bare session.Run)
#   go test -bench       (inference micro-benchmarks)
# Extra arguments go to `radgate bench` (e.g. --orders 100 --json).
set -euo pipefail
cd "$(dirname "$0")/.."

bash testenv/setup.sh >/dev/null
bash testenv/start.sh >/dev/null
trap 'bash testenv/stop.sh >/dev/null' EXIT
# shellcheck disable=SC1091
source testenv/run/env.sh

mkdir -p bin
go build -o bin/radgate ./cmd/radgate
echo "== radgate bench (whole path, $(nproc) cores)"
bin/radgate bench "$@"
echo
echo "== go test -bench (inference)"
go test -run '^$' -bench . -benchmem -benchtime 20x ./inference/
