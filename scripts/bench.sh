#!/usr/bin/env bash
# Reproduces BENCHMARKS.md: starts the real peers, then runs
#   radgate bench        (whole order→report path beside bare session.Run)
#   go test -bench       (inference micro-benchmarks)
# and stops the peers. Extra arguments go to `radgate bench` (e.g. --orders
# 100 --json). With --day it runs the compressed day (radgate bench --day,
# default 8,000 orders) and no micro-benchmarks; the FHIR test server, which
# holds every result in memory, then gets a larger heap
# (RADGATE_FHIR_HEAP_MB, default here 12288).
set -euo pipefail
cd "$(dirname "$0")/.."

day=0
for a in "$@"; do
  [ "$a" = --day ] && day=1
done
if [ "$day" = 1 ]; then
  export RADGATE_FHIR_HEAP_MB="${RADGATE_FHIR_HEAP_MB:-12288}"
fi

bash testenv/setup.sh >/dev/null
bash testenv/start.sh >/dev/null
trap 'bash testenv/stop.sh >/dev/null' EXIT
# shellcheck disable=SC1091
source testenv/run/env.sh

mkdir -p bin
go build -o bin/radgate ./cmd/radgate
echo "== radgate bench (whole path, $(nproc) cores)"
bin/radgate bench "$@"
if [ "$day" = 1 ]; then exit 0; fi
echo
echo "== go test -bench (inference)"
go test -run '^$' -bench . -benchmem -benchtime 20x ./inference/
