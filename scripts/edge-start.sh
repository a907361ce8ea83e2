#!/usr/bin/env bash
# An edge radgate serve's start-up time and memory (BENCHMARKS.md, "An edge
# loads no ONNX session"): starts `BIN serve` in role edge RUNS times (each
# on a fresh data directory, the repository's models, its hub unreachable:
# the leaf link retries in the background), and prints for each run the
# milliseconds from exec to the first 200 from /readyz and the process's
# VmRSS and VmHWM 2 s later.
#
#   scripts/edge-start.sh BIN [RUNS]
#
# RADGATE_ONNXRUNTIME_LIB names ONNX Runtime (a radgate that opens ONNX
# sessions at an edge needs it).
set -euo pipefail
bin=$(realpath "$1")
runs=${2:-5}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cat >"$work/sites.yaml" <<EOF
facilities:
  - id: site-a
EOF
"$bin" sites nats-config --config "$work/sites.yaml" --out "$work/creds" --leaf-listen 127.0.0.1:7422 >/dev/null 2>&1

for i in $(seq 1 "$runs"); do
  http=$(port)
  cat >"$work/edge.yaml" <<EOF
role: edge
edge:
  facility: site-a
  hub_urls: [nats-leaf://127.0.0.1:$(port)]
  credential_file: $work/creds/site-site-a.nk
facilities:
  - id: site-a
listen: 127.0.0.1:$http
data_dir: $work/data-$i
models_dir: $repo/models
inference:
  onnxruntime_library: ${RADGATE_ONNXRUNTIME_LIB:-}
nats:
  embedded_listen: 127.0.0.1:$(port)
pacs:
  dicomweb_url: http://127.0.0.1:1/dicom-web
fhir:
  base_url: http://127.0.0.1:1/fhir/R4
  pdf_report: false
EOF
  start=$(date +%s%N)
  "$bin" serve --config "$work/edge.yaml" >"$work/log-$i" 2>&1 &
  pid=$!
  until curl -sf "http://127.0.0.1:$http/readyz" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "run $i: serve exited:" >&2
      tail -5 "$work/log-$i" >&2
      exit 1
    fi
    sleep 0.01
  done
  ready=$((($(date +%s%N) - start) / 1000000))
  sleep 2
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  kill -TERM "$pid"
  wait "$pid" || true
  printf 'run %d: ready %d ms, VmRSS %.1f MiB, VmHWM %.1f MiB\n' "$i" "$ready" "$(echo "$rss/1024" | bc -l)" "$(echo "$hwm/1024" | bc -l)"
done
