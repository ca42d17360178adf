#!/usr/bin/env bash
# Resurrection latency and idle cost of Vigil beside the shared anchors, in one run on one
# machine, with shared/bench's method (kill -9 -> replacement running main(); see
# ../../shared/bench/README.md). Prints the tables; keeps raw rows in $BENCH_OUT.
#
# usage: Benchmarks/resurrect.sh [N]        (default N=100 kills per row)
# env:   ANCHORS="baseline vigil erlang s6 runit supervisord"  GAP=1.1  SKIP_IDLE=1
#        IDLE_WORKERS=100 IDLE_SECS=30
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SHARED_BENCH="${SHARED_BENCH:-$REPO/../shared/bench}"
N=${1:-100}
ANCHORS=${ANCHORS:-"baseline vigil erlang s6 runit supervisord"}
GAP=${GAP:-1.1}
export BENCH_OUT=${BENCH_OUT:-/tmp/vigil-resurrect.$(date +%Y%m%d-%H%M%S)}
mkdir -p "$BENCH_OUT"

(cd "$REPO" && Scripts/setup.sh && swift build -c release >/dev/null)

script_for() {
  case $1 in
    vigil|vigil-backoff) echo "$HERE/anchors/vigil.sh" ;;
    *) echo "$SHARED_BENCH/anchors/$1.sh" ;;
  esac
}

run_row() {  # name gap jitter
  local name=$1 script
  script=$(script_for "$name")
  [ "$name" = vigil-backoff ] && export VIGIL_BACKOFF=on || unset VIGIL_BACKOFF
  BENCH_GAP=$2 BENCH_JITTER=$3 "$script" "$N" 2>>"$BENCH_OUT/stderr.log" | sed "s/^[^ ]*/$name/" || echo "$name FAIL"
}

{
  echo "kill -9 -> replacement running main(), ms, N=$N, gap 0 (crash loop)"
  echo "supervisor p50 p90 p99 max"
  for a in $ANCHORS; do run_row "$a" 0 0; done
  echo
  echo "kill -9 -> replacement running main(), ms, N=$N, gap $GAP + 0..0.1 s"
  echo "supervisor p50 p90 p99 max"
  for a in $ANCHORS; do run_row "$a" "$GAP" 0.1; done
  if [ -z "${SKIP_IDLE:-}" ]; then
    echo
    echo "idle cost with ${IDLE_WORKERS:-100} workers over ${IDLE_SECS:-30} s (supervisor processes only)"
    echo "supervisor procs rss_kb_1w rss_kb pss_kb cpu_ms"
    for a in $ANCHORS; do
      [ "$a" = vigil-backoff ] && continue
      "$(script_for "$a")" --idle "${IDLE_WORKERS:-100}" "${IDLE_SECS:-30}" 2>>"$BENCH_OUT/stderr.log" || echo "$a FAIL"
    done
  fi
} | tee "$BENCH_OUT/table.txt" | column -t
echo "raw rows and logs: $BENCH_OUT" >&2
