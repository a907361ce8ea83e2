#!/usr/bin/env bash
# Runs every test against the real peers. Installs what is missing, starts
# Orthanc and the FHIR server on 127.0.0.1, runs go vet and go test, and fails
# if any test was skipped (a skipped integration test is a failure here).
set -euo pipefail
cd "$(dirname "$0")/.."

bash testenv/setup.sh
bash testenv/start.sh
trap 'bash testenv/stop.sh' EXIT
# shellcheck disable=SC1091
source testenv/run/env.sh
export RADGATE_REQUIRE_PEERS=1

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './testenv/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...

mkdir -p testenv/run
log=testenv/run/go-test.log
# Heavy packages get their own go test invocation with their own timeout:
# the console's browser tests (headless Chromium, about 30 s; TESTENV.md);
# the NATS cluster proof (three nats-server processes, two hubs, 300 orders,
# a leader killed: about 2 min under -race on 2 cores); the hub and edges
# proof (a hub of three nats-server processes, three leaf-node edges, one
# link cut for 60 s; then radgate serve in roles hub and edge, 2 hub and 3
# edge processes: about 30 s more; 2.5-3.5 min in all under -race on 2 cores).
heavy=(./console/consoletest)
heavy_timeout=4m
cluster=(./internal/clustertest)
cluster_timeout=6m
edges=(./internal/edgetest)
edges_timeout=8m
mapfile -t pkgs < <(go list ./... | grep -vxF -f <(go list "${heavy[@]}" "${cluster[@]}" "${edges[@]}"))
show() { grep -E '^(ok|FAIL|---|panic|\?|=== RUN.*FAIL)|^\s+--- (FAIL|SKIP)'; }
set +e
go test -race -count=1 -shuffle=on -timeout 30m -v "${pkgs[@]}" 2>&1 | tee "$log" | show
status=${PIPESTATUS[0]}
go test -race -count=1 -shuffle=on -timeout "$heavy_timeout" -v "${heavy[@]}" 2>&1 | tee -a "$log" | show
heavy_status=${PIPESTATUS[0]}
go test -race -count=1 -timeout "$cluster_timeout" -v "${cluster[@]}" 2>&1 | tee -a "$log" | show
cluster_status=${PIPESTATUS[0]}
go test -race -count=1 -timeout "$edges_timeout" -v "${edges[@]}" 2>&1 | tee -a "$log" | show
edges_status=${PIPESTATUS[0]}
set -e
[ "$status" -ne 0 ] || status=$heavy_status
[ "$status" -ne 0 ] || status=$cluster_status
[ "$status" -ne 0 ] || status=$edges_status
skipped=$(grep -E '^\s*--- SKIP' "$log" || true)
if [ -n "$skipped" ]; then
  echo "skipped tests are failures under the test command:" >&2
  echo "$skipped" >&2
  exit 1
fi
passed=$(grep -cE '^\s*--- PASS' "$log" || true)
failed=$(grep -cE '^\s*--- FAIL' "$log" || true)
echo "tests: $passed passed, $failed failed"
exit "$status"
