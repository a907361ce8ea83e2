#!/usr/bin/env bash
# The main job on embedded defaults: installs what is missing, starts Orthanc
# and the FHIR server on 127.0.0.1, runs radgate (embedded NATS), loads the
# sample radiographs into the PACS, files orders, and prints each resulting
# DiagnosticReport's confidence and tier; heatmaps go to demo-out/heatmaps.
set -euo pipefail
cd "$(dirname "$0")/.."

bash testenv/setup.sh
bash testenv/start.sh
# shellcheck disable=SC1091
source testenv/run/env.sh

mkdir -p bin
echo "building radgate…"
go build -o bin/radgate ./cmd/radgate
go build -o bin/radgate-demo ./cmd/radgate-demo

out=demo-out
rm -rf "$out/data" "$out/heatmaps"
mkdir -p "$out"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
natsport=$(free_port)
cat > "$out/radgate.yaml" <<YAML
# Written by scripts/demo.sh: radgate on embedded defaults, pointed at the
# peers testenv/start.sh started. See radgate.example.yaml for every key.
listen: 127.0.0.1:$port
data_dir: $out/data
nats:
  embedded_listen: 127.0.0.1:$natsport
pacs:
  dicomweb_url: $RADGATE_TEST_ORTHANC_URL/dicom-web
  username: $RADGATE_TEST_ORTHANC_USER
  password_env: RADGATE_TEST_ORTHANC_PASSWORD
fhir:
  base_url: $RADGATE_TEST_FHIR_URL
YAML

bin/radgate serve --config "$out/radgate.yaml" >"$out/radgate.log" 2>&1 &
pid=$!
cleanup() {
  kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  bash testenv/stop.sh
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { echo "radgate exited; its log:" >&2; tail -20 "$out/radgate.log" >&2; exit 1; }
  sleep 0.1
done
echo "radgate is serving on 127.0.0.1:$port (log: $out/radgate.log)"
bin/radgate-demo --radgate "http://127.0.0.1:$port" --heatmaps "$out/heatmaps"
