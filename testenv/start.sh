#!/usr/bin/env bash
# Starts radgate's real test peers in the background, each on 127.0.0.1 with a
# free port and its own fresh folder under testenv/run/:
#   - Orthanc (test PACS, DICOMweb at /dicom-web/), config from testenv/orthanc.json.tmpl
#   - a second Orthanc, the DIMSE-only PACS (no plugins: /dicom-web/ is 404;
#     DicomCheckCalledAet true), config from testenv/orthanc-dimse.json.tmpl
#   - the FHIR R4 test server (testenv/fhir-server), base /fhir/R4
# waits until all answer, writes testenv/run/{orthanc,orthanc-dimse,fhir}.pid and
# testenv/run/env.sh, which tests read:
#
#   bash testenv/start.sh && source testenv/run/env.sh && go test ./...
#   bash testenv/stop.sh
#
# Re-running it stops the peers it started before and starts fresh ones (empty
# PACS, empty FHIR store). Needs what testenv/setup.sh installs.
# RADGATE_PEERS_TIMEOUT (seconds, default 120) bounds the wait for readiness (a loaded 2-core machine can take 20 s).
# RADGATE_FHIR_HEAP_MB, when set, is the FHIR server's V8 heap limit (node --max-old-space-size):
# it keeps every resource in memory, and radgate bench --day's 8,000 results outgrow node's default.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="$ROOT/testenv/run"
TIMEOUT="${RADGATE_PEERS_TIMEOUT:-120}"

ORTHANC_BIN=/usr/sbin/Orthanc
DICOMWEB_PLUGIN=/usr/share/orthanc/plugins/libOrthancDicomWeb.so
ORTHANC_USER=radgate
ORTHANC_PASSWORD=radgate-test-password
ORTHANC_AET=ORTHANC
DIMSE_PACS_AET=DIMSE_PACS
FHIR_BASE=/fhir/R4
ORT_LIB="$ROOT/.tools/onnxruntime/lib/libonnxruntime.so"

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'start.sh: error: %s\n' "$*" >&2; exit 1; }
ms() { echo $(($(date +%s%N) / 1000000)); }

# ------------------------------------------------------------------ preflight
[ -x "$ORTHANC_BIN" ] || die "Orthanc is not installed: run bash testenv/setup.sh"
[ -f "$DICOMWEB_PLUGIN" ] || die "the Orthanc DICOMweb plugin is not installed: run bash testenv/setup.sh"
[ -d "$ROOT/testenv/fhir-server/node_modules/@medplum/fhir-router" ] ||
  die "testenv/fhir-server/node_modules is missing: run bash testenv/setup.sh"
command -v node >/dev/null 2>&1 || die "node not found"
command -v curl >/dev/null 2>&1 || die "curl not found: run bash testenv/setup.sh"

# ------------------------------------------------------------------ fresh run folder
bash "$ROOT/testenv/stop.sh" --quiet
rm -rf "$RUN/orthanc" "$RUN/orthanc-dimse" "$RUN/fhir" "$RUN/env.sh"
mkdir -p "$RUN/orthanc/storage" "$RUN/orthanc-dimse/storage" "$RUN/fhir"

# free_ports N prints N distinct TCP ports that are free on every interface
# (Orthanc binds 0.0.0.0), held open together so that they differ.
free_ports() {
  node -e '
    const net = require("net");
    const n = Number(process.argv[1]);
    const socks = [], ports = [];
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      socks.push(s);
      s.listen(0, "0.0.0.0", () => {
        ports.push(s.address().port);
        if (ports.length === n) { console.log(ports.join(" ")); socks.forEach((x) => x.close()); }
      });
    }' "$1"
}

alive() { # pid: running and not a zombie
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)
  [ -n "$state" ] && [ "$state" != Z ]
}

tail_log() { # file
  printf -- '---- last lines of %s ----\n' "$1" >&2
  tail -n 25 "$1" >&2 || true
  printf -- '----\n' >&2
}

fail_start() { # message, log file
  printf 'start.sh: error: %s\n' "$1" >&2
  [ -n "${2:-}" ] && tail_log "$2"
  bash "$ROOT/testenv/stop.sh" --quiet || true
  exit 1
}

# ------------------------------------------------------------------ launch
T0=$(ms)
ORTHANC_TRIES=0
start_orthanc() {
  ORTHANC_TRIES=$((ORTHANC_TRIES + 1))
  local ports
  ports=$(free_ports 2) || fail_start "cannot pick free ports (node failed)"
  read -r ORTHANC_HTTP_PORT ORTHANC_DICOM_PORT <<<"$ports"
  sed -e "s#@STORAGE_DIR@#$RUN/orthanc/storage#g" \
    -e "s#@DICOMWEB_PLUGIN@#$DICOMWEB_PLUGIN#g" \
    -e "s#@HTTP_PORT@#$ORTHANC_HTTP_PORT#g" \
    -e "s#@DICOM_PORT@#$ORTHANC_DICOM_PORT#g" \
    -e "s#@USER@#$ORTHANC_USER#g" \
    -e "s#@PASSWORD@#$ORTHANC_PASSWORD#g" \
    -e "s#@AET@#$ORTHANC_AET#g" \
    "$ROOT/testenv/orthanc.json.tmpl" >"$RUN/orthanc/orthanc.json"
  ORTHANC_T0=$(ms)
  nohup "$ORTHANC_BIN" "$RUN/orthanc/orthanc.json" >"$RUN/orthanc/orthanc.log" 2>&1 </dev/null &
  ORTHANC_PID=$!
  echo "$ORTHANC_PID" >"$RUN/orthanc.pid"
  say "Orthanc: pid $ORTHANC_PID, HTTP 127.0.0.1:$ORTHANC_HTTP_PORT, DICOM $ORTHANC_AET@127.0.0.1:$ORTHANC_DICOM_PORT (log testenv/run/orthanc/orthanc.log)"
}

start_orthanc

DIMSE_TRIES=0
start_dimse_pacs() {
  DIMSE_TRIES=$((DIMSE_TRIES + 1))
  local ports
  ports=$(free_ports 2) || fail_start "cannot pick free ports (node failed)"
  read -r DIMSE_PACS_HTTP_PORT DIMSE_PACS_PORT <<<"$ports"
  sed -e "s#@STORAGE_DIR@#$RUN/orthanc-dimse/storage#g" \
    -e "s#@HTTP_PORT@#$DIMSE_PACS_HTTP_PORT#g" \
    -e "s#@DICOM_PORT@#$DIMSE_PACS_PORT#g" \
    -e "s#@USER@#$ORTHANC_USER#g" \
    -e "s#@PASSWORD@#$ORTHANC_PASSWORD#g" \
    -e "s#@AET@#$DIMSE_PACS_AET#g" \
    "$ROOT/testenv/orthanc-dimse.json.tmpl" >"$RUN/orthanc-dimse/orthanc.json"
  DIMSE_T0=$(ms)
  nohup "$ORTHANC_BIN" "$RUN/orthanc-dimse/orthanc.json" >"$RUN/orthanc-dimse/orthanc.log" 2>&1 </dev/null &
  DIMSE_PID=$!
  echo "$DIMSE_PID" >"$RUN/orthanc-dimse.pid"
  say "DIMSE-only Orthanc: pid $DIMSE_PID, HTTP 127.0.0.1:$DIMSE_PACS_HTTP_PORT, DICOM $DIMSE_PACS_AET@127.0.0.1:$DIMSE_PACS_PORT (log testenv/run/orthanc-dimse/orthanc.log)"
}

start_dimse_pacs

FHIR_NODE_ARGS=()
FHIR_HEAP_NOTE=""
if [ -n "${RADGATE_FHIR_HEAP_MB:-}" ]; then
  [[ "$RADGATE_FHIR_HEAP_MB" =~ ^[1-9][0-9]*$ ]] ||
    fail_start "RADGATE_FHIR_HEAP_MB must be a number of MiB (node --max-old-space-size), got '$RADGATE_FHIR_HEAP_MB'"
  FHIR_NODE_ARGS=(--max-old-space-size="$RADGATE_FHIR_HEAP_MB")
  FHIR_HEAP_NOTE=", heap limit $RADGATE_FHIR_HEAP_MB MiB"
fi
FHIR_T0=$(ms)
nohup node "${FHIR_NODE_ARGS[@]}" "$ROOT/testenv/fhir-server/server.js" --host 127.0.0.1 --port 0 --base "$FHIR_BASE" \
  --port-file "$RUN/fhir/port" --data "$RUN/fhir/store.json" >"$RUN/fhir/fhir.log" 2>&1 </dev/null &
FHIR_PID=$!
echo "$FHIR_PID" >"$RUN/fhir.pid"
say "FHIR server: pid $FHIR_PID$FHIR_HEAP_NOTE (log testenv/run/fhir/fhir.log)"

# ------------------------------------------------------------------ wait for readiness (all at once)
ORTHANC_READY_MS=""
DIMSE_READY_MS=""
FHIR_READY_MS=""
FHIR_PORT=""
deadline=$(($(ms) + TIMEOUT * 1000))
while [ -z "$ORTHANC_READY_MS" ] || [ -z "$DIMSE_READY_MS" ] || [ -z "$FHIR_READY_MS" ]; do
  if [ -z "$DIMSE_READY_MS" ]; then
    if ! alive "$DIMSE_PID"; then
      if [ "$DIMSE_TRIES" -lt 3 ]; then
        tail_log "$RUN/orthanc-dimse/orthanc.log"
        note "the DIMSE-only Orthanc exited early; retrying with new ports"
        start_dimse_pacs
      else
        fail_start "the DIMSE-only Orthanc exited during start-up ($DIMSE_TRIES tries)" "$RUN/orthanc-dimse/orthanc.log"
      fi
    elif curl -sf -o /dev/null --max-time 2 -u "$ORTHANC_USER:$ORTHANC_PASSWORD" \
      "http://127.0.0.1:$DIMSE_PACS_HTTP_PORT/system"; then
      DIMSE_READY_MS=$(($(ms) - DIMSE_T0))
    fi
  fi
  if [ -z "$ORTHANC_READY_MS" ]; then
    if ! alive "$ORTHANC_PID"; then
      # Most likely another process took a port between our pick and Orthanc's bind.
      if [ "$ORTHANC_TRIES" -lt 3 ]; then
        tail_log "$RUN/orthanc/orthanc.log"
        note "Orthanc exited early; retrying with new ports"
        start_orthanc
      else
        fail_start "Orthanc exited during start-up ($ORTHANC_TRIES tries)" "$RUN/orthanc/orthanc.log"
      fi
    elif curl -sf -o /dev/null --max-time 2 -u "$ORTHANC_USER:$ORTHANC_PASSWORD" \
      "http://127.0.0.1:$ORTHANC_HTTP_PORT/system"; then
      ORTHANC_READY_MS=$(($(ms) - ORTHANC_T0))
    fi
  fi
  if [ -z "$FHIR_READY_MS" ]; then
    alive "$FHIR_PID" || fail_start "the FHIR server exited during start-up" "$RUN/fhir/fhir.log"
    if [ -z "$FHIR_PORT" ] && [ -s "$RUN/fhir/port" ]; then
      FHIR_PORT=$(cat "$RUN/fhir/port")
    fi
    if [ -n "$FHIR_PORT" ] && curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$FHIR_PORT$FHIR_BASE/metadata"; then
      FHIR_READY_MS=$(($(ms) - FHIR_T0))
    fi
  fi
  if [ "$(ms)" -ge "$deadline" ]; then
    [ -n "$ORTHANC_READY_MS" ] || fail_start "Orthanc not ready after ${TIMEOUT}s" "$RUN/orthanc/orthanc.log"
    [ -n "$DIMSE_READY_MS" ] || fail_start "the DIMSE-only Orthanc not ready after ${TIMEOUT}s" "$RUN/orthanc-dimse/orthanc.log"
    fail_start "the FHIR server not ready after ${TIMEOUT}s" "$RUN/fhir/fhir.log"
  fi
  sleep 0.1
done

plugins=$(curl -sf --max-time 5 -u "$ORTHANC_USER:$ORTHANC_PASSWORD" "http://127.0.0.1:$ORTHANC_HTTP_PORT/plugins" || true)
case "$plugins" in
  *dicom-web*) ;;
  *) fail_start "Orthanc runs but the DICOMweb plugin is not loaded (plugins: $plugins)" "$RUN/orthanc/orthanc.log" ;;
esac
dw=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -u "$ORTHANC_USER:$ORTHANC_PASSWORD" \
  "http://127.0.0.1:$DIMSE_PACS_HTTP_PORT/dicom-web/studies" || true)
[ "$dw" = 404 ] || fail_start "the DIMSE-only Orthanc answers /dicom-web/studies with $dw, not 404" "$RUN/orthanc-dimse/orthanc.log"

# ------------------------------------------------------------------ env.sh
{
  echo "# Written by testenv/start.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ); removed by testenv/stop.sh."
  echo "# Source it before go test: source testenv/run/env.sh"
  echo "export RADGATE_TEST_ORTHANC_URL=http://127.0.0.1:$ORTHANC_HTTP_PORT"
  echo "export RADGATE_TEST_ORTHANC_USER=$ORTHANC_USER"
  echo "export RADGATE_TEST_ORTHANC_PASSWORD=$ORTHANC_PASSWORD"
  echo "export RADGATE_TEST_ORTHANC_AET=$ORTHANC_AET"
  echo "export RADGATE_TEST_ORTHANC_DICOM_PORT=$ORTHANC_DICOM_PORT"
  echo "# The DIMSE-only PACS: DICOM at 127.0.0.1:_PORT as _AET (called AE checked); REST at _URL (same user)."
  echo "export RADGATE_TEST_DIMSE_PACS_PORT=$DIMSE_PACS_PORT"
  echo "export RADGATE_TEST_DIMSE_PACS_AET=$DIMSE_PACS_AET"
  echo "export RADGATE_TEST_DIMSE_PACS_URL=http://127.0.0.1:$DIMSE_PACS_HTTP_PORT"
  echo "export RADGATE_TEST_FHIR_URL=http://127.0.0.1:$FHIR_PORT$FHIR_BASE"
  echo "# To start a private FHIR server (e.g. to kill -9 and restart it): node \$RADGATE_TEST_FHIR_SERVER_JS --port 0 --port-file F --data FILE"
  echo "export RADGATE_TEST_FHIR_SERVER_JS=$ROOT/testenv/fhir-server/server.js"
  if [ -e "$ORT_LIB" ]; then
    echo "export RADGATE_ONNXRUNTIME_LIB=$ORT_LIB"
  fi
} >"$RUN/env.sh.tmp"
mv -f "$RUN/env.sh.tmp" "$RUN/env.sh"
[ -e "$ORT_LIB" ] || note "WARNING: $ORT_LIB is missing (run bash testenv/setup.sh); RADGATE_ONNXRUNTIME_LIB not set"

say "peers ready in $(($(ms) - T0)) ms (Orthanc ${ORTHANC_READY_MS} ms, DIMSE-only Orthanc ${DIMSE_READY_MS} ms, FHIR server ${FHIR_READY_MS} ms)"
note "Orthanc:  http://127.0.0.1:$ORTHANC_HTTP_PORT (DICOMweb /dicom-web, user $ORTHANC_USER)"
note "DIMSE-only PACS: $DIMSE_PACS_AET@127.0.0.1:$DIMSE_PACS_PORT (REST http://127.0.0.1:$DIMSE_PACS_HTTP_PORT)"
note "FHIR R4:  http://127.0.0.1:$FHIR_PORT$FHIR_BASE"
note "env:      source testenv/run/env.sh    stop: bash testenv/stop.sh"
