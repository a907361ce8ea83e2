#!/usr/bin/env bash
# Installs everything radgate's tests need on a Debian 12 machine; idempotent and
# quick when everything is already there (it checks before installing).
#
#   bash testenv/setup.sh
#
# 1. Debian packages: Orthanc + DICOMweb plugin (test PACS), dcmtk (DIMSE tools),
#    python3-hl7 (MLLP sender/receiver), curl; and, to build radgate itself,
#    OpenJPEG (libopenjp2-7-dev) and libjpeg-turbo's TurboJPEG
#    (libturbojpeg0-dev), which inference/codec links through cgo for JPEG 2000
#    and for 8-bit JPEG, found with pkg-config; chromium (headless, with
#    fonts-liberation) for the console's browser tests (console/consoletest).
#    `apt-get update` only if one is missing.
# 2. ONNX Runtime 1.30.0 shared library into .tools/onnxruntime/lib/ (from the npm
#    package onnxruntime-node, without running its install script).
# 3. `npm ci` of the FHIR test server (testenv/fhir-server), skipped when
#    node_modules matches package-lock.json.
# 4. `go mod download`.
#
# Environment: RADGATE_TOOLS_DIR overrides where the ONNX Runtime goes (default
# <repo>/.tools; radgate looks there, so override it only to test this script).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${RADGATE_TOOLS_DIR:-$ROOT/.tools}"

APT_PACKAGES=(orthanc orthanc-dicomweb dcmtk dicom3tools python3-hl7 curl libopenjp2-7-dev libturbojpeg0-dev pkg-config poppler-utils chromium fonts-liberation)
ORT_VERSION=1.30.0
# sha256 of package/bin/napi-v6/linux/x64/libonnxruntime.so.1 in onnxruntime-node@1.30.0
ORT_SHA256_X64=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'setup.sh: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "not root and no sudo: run as root for apt-get"
  SUDO=(sudo)
fi

T0=$(now)

# ------------------------------------------------------------------ 1. Debian packages
t=$(now)
say "Debian packages: ${APT_PACKAGES[*]}"
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]; }
# One dpkg-query for all (a package it does not know is simply absent from its output).
have=" $(dpkg-query -W -f='${Package}=${Status};' "${APT_PACKAGES[@]}" 2>/dev/null | tr ';' ' ' || true) "
missing=()
for p in "${APT_PACKAGES[@]}"; do
  [[ "$have" == *" $p=install ok installed "* ]] || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  note "all installed"
else
  note "missing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  say "apt-get update"
  "${SUDO[@]}" apt-get update -qq
  say "apt-get install --no-install-recommends ${missing[*]}"
  # Never orthanc-gdcm: Orthanc 1.10 with it segfaults on JPEG 2000 (see shared/TESTENV.md).
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if installed orthanc-gdcm; then
  note "WARNING: orthanc-gdcm is installed; the test Orthanc does not load it (its config names only the DICOMweb plugin)"
fi
[ -x /usr/sbin/Orthanc ] || die "/usr/sbin/Orthanc missing after install"
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || die "DICOMweb plugin missing after install"
pkg-config --exists libopenjp2 || die "pkg-config finds no libopenjp2 after install (inference/codec needs it)"
command -v chromium >/dev/null 2>&1 || die "chromium not on PATH after install (the console's browser tests need it)"

# The Debian package may start a system Orthanc (config /etc/orthanc/, ports
# 8042/4242). radgate never uses it (start.sh picks free ports); stop it so that
# it holds no ports and no CPU. Not with `/etc/init.d/orthanc status|stop`:
# without its pid file they match any process named Orthanc, test peers included.
if [ "$(cat /proc/1/comm 2>/dev/null || true)" = systemd ] && command -v systemctl >/dev/null 2>&1; then
  if systemctl is-active --quiet orthanc 2>/dev/null; then
    say "stopping the system Orthanc service (not used by radgate)"
    "${SUDO[@]}" systemctl stop orthanc
  fi
elif [ -s /run/orthanc.pid ]; then
  sys_pid=$(cat /run/orthanc.pid 2>/dev/null || true)
  if [[ "$sys_pid" =~ ^[0-9]+$ ]] && [ -r "/proc/$sys_pid/cmdline" ] &&
    [[ "$(tr '\0' ' ' <"/proc/$sys_pid/cmdline")" == */etc/orthanc* ]]; then
    say "stopping the system Orthanc service, pid $sys_pid (not used by radgate)"
    "${SUDO[@]}" kill -TERM "$sys_pid" || true
  fi
fi
note "done in $(since "$t")"

# ------------------------------------------------------------------ tools we need but cannot apt-get
command -v node >/dev/null 2>&1 || die "node not found: Node.js 20 (>= 20.19) is needed (Debian 12's nodejs 18 is too old for @medplum 4.5.2)"
command -v npm >/dev/null 2>&1 || die "npm not found"
node_ok=$(node -e 'const [a,b]=process.versions.node.split(".").map(Number); console.log((a===20&&b>=19)||(a===22&&b>=12)||a>=23?"yes":"no")')
[ "$node_ok" = yes ] || die "Node.js $(node --version) is too old: @medplum 4.5.2 needs ^20.19.0 or >= 22.12.0"
command -v go >/dev/null 2>&1 || die "go not found: Go 1.26 is needed"

# ------------------------------------------------------------------ 2. ONNX Runtime
t=$(now)
case "$(uname -m)" in
  x86_64) ort_arch=x64 ;;
  aarch64 | arm64) ort_arch=arm64 ;;
  *) die "no ONNX Runtime build for $(uname -m)" ;;
esac
ORT_LIB_DIR="$TOOLS_DIR/onnxruntime/lib"
ORT_LIB="$ORT_LIB_DIR/libonnxruntime.so.$ORT_VERSION"
say "ONNX Runtime $ORT_VERSION -> $ORT_LIB_DIR/libonnxruntime.so"
if [ -s "$ORT_LIB" ] && [ "$(readlink "$ORT_LIB_DIR/libonnxruntime.so" || true)" = "libonnxruntime.so.$ORT_VERSION" ]; then
  note "present"
else
  if [ ! -s "$ORT_LIB" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    note "npm pack onnxruntime-node@$ORT_VERSION (the plain npm install fails on its postinstall)"
    (cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
    tgz="$tmp/onnxruntime-node-$ORT_VERSION.tgz"
    [ -s "$tgz" ] || die "npm pack produced no $tgz"
    member="package/bin/napi-v6/linux/$ort_arch/libonnxruntime.so.1"
    tar -xzf "$tgz" -C "$tmp" "$member"
    if [ "$ort_arch" = x64 ]; then
      sum=$(sha256sum "$tmp/$member" | cut -d' ' -f1)
      [ "$sum" = "$ORT_SHA256_X64" ] || die "sha256 of $member is $sum, expected $ORT_SHA256_X64"
    fi
    mkdir -p "$ORT_LIB_DIR"
    install -m 0644 "$tmp/$member" "$ORT_LIB.tmp"
    mv -f "$ORT_LIB.tmp" "$ORT_LIB"
    rm -rf "$tmp"
    trap - EXIT
  fi
  ln -sfn "libonnxruntime.so.$ORT_VERSION" "$ORT_LIB_DIR/libonnxruntime.so"
  note "installed $(du -h "$ORT_LIB" | cut -f1)"
fi
note "done in $(since "$t")"

# ------------------------------------------------------------------ 3. FHIR test server
t=$(now)
FHIR_DIR="$ROOT/testenv/fhir-server"
say "FHIR test server: npm ci in testenv/fhir-server"
stamp="$FHIR_DIR/node_modules/.radgate-npm-ci"
want="$(sha256sum "$FHIR_DIR/package-lock.json" | cut -d' ' -f1) node-$(node -p 'process.versions.node.split(".")[0]')"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$FHIR_DIR/node_modules/@medplum/fhir-router" ]; then
  note "node_modules up to date with package-lock.json"
else
  # --ignore-scripts: none of the pinned packages needs an install script.
  (cd "$FHIR_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  printf '%s\n' "$want" >"$stamp"
fi
note "done in $(since "$t")"

# ------------------------------------------------------------------ 4. Go modules
t=$(now)
say "go mod download"
(cd "$ROOT" && go mod download)
note "done in $(since "$t")"

say "setup complete in $(since "$T0"); start the peers with: bash testenv/start.sh"
