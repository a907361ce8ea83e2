#!/usr/bin/env bash
# Stops the peers that testenv/start.sh started, by the PIDs in testenv/run/*.pid:
# SIGTERM, up to 10 s, then SIGKILL. Safe to call when nothing runs, and twice.
# A PID is signalled only while its command line still names testenv/run/ (so a
# PID reused by an unrelated process is left alone). Removes testenv/run/env.sh.
#
#   bash testenv/stop.sh [--quiet]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="$ROOT/testenv/run"
QUIET=0
[ "${1:-}" = --quiet ] && QUIET=1

say() { [ "$QUIET" = 1 ] || printf '==> %s\n' "$*"; }
ms() { echo $(($(date +%s%N) / 1000000)); }

alive() { # pid: running and not a zombie
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)
  [ -n "$state" ] && [ "$state" != Z ]
}

ours() { # pid: its command line names our run folder
  local cmd
  cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true)
  [[ "$cmd" == *"$RUN/"* ]]
}

stop_one() { # name
  local name=$1 pidfile="$RUN/$1.pid" pid t0
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" && ours "$pid"; then
    t0=$(ms)
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      say "$name (pid $pid) still running after 10 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 20); do
        alive "$pid" || break
        sleep 0.1
      done
    fi
    say "stopped $name (pid $pid) in $(($(ms) - t0)) ms"
  else
    say "$name: not running"
  fi
  rm -f "$pidfile"
}

[ -d "$RUN" ] || exit 0
# All at once: Orthanc takes 1-3 s to stop.
stop_one orthanc &
o=$!
stop_one orthanc-dimse &
d=$!
stop_one fhir
wait "$o" "$d"
rm -f "$RUN/env.sh" "$RUN/fhir/port"
