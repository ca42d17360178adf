#!/usr/bin/env bash
# anchors/vigil.sh - Vigil as an anchor of shared/bench (same frame, same worker binary,
# same kill loop as supervisord, runit, s6 and Erlang). The worker is shared/bench's
# src/worker.c, supervised with `readiness: exec` (it speaks no protocol), one_for_one,
# in its own process group, SIGKILL remnants of the group before the restart.
#
# Restart settings: VIGIL_BACKOFF=off (default) sets backoff initial 0, so every restart
# is immediate, and max_restarts 1000000/1s so intensity never gives up: the raw
# resurrection path. VIGIL_BACKOFF=on is Vigil's backoff as a crash loop meets it: first
# restart immediate, then 100ms doubling, capped here at 1s (the default cap, 30s, is
# beyond the harness's 10s per kill) to compare with runit's and s6's fixed 1s throttle;
# reset after 1s of uptime.
# usage: vigil.sh [N] | --idle [WORKERS] [SECS] | --version
BENCH_NAME=vigil${VIGIL_BACKOFF:+-backoff-$VIGIL_BACKOFF}
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SHARED_BENCH="${SHARED_BENCH:-$REPO/../shared/bench}"
. "$SHARED_BENCH/lib/anchor.sh"

VIGIL="${VIGIL:-$REPO/.build/release/vigil}"

sup_install() { [ -x "$VIGIL" ] || return 77; }
sup_version() { echo "vigil $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?') (release build)"; }
sup_notes() { sed -n '6,11p' "$0"; }

sup_start() {
  local dir=$1 count=$2 backoff
  if [ "${VIGIL_BACKOFF:-off}" = on ]; then
    backoff="{initial: 100ms, max: 1s, reset_after: 1s}"
  else
    backoff="{initial: 0s, reset_after: 1s}"
  fi
  {
    echo "name: bench"
    echo "max_restarts: 1000000"
    echo "period: 1s"
    echo "children:"
    echo "  - worker: w"
    echo "    argv: [\"$WORKER\"]"
    echo "    readiness: exec"
    echo "    shutdown: brutal_kill"
    echo "    backoff: $backoff"
    [ "$count" -gt 1 ] && echo "    instances: $count"
  } > "$dir/bench.yaml"
  bench_spawn "$dir/vigil.out" env VIGIL_RUNTIME_DIR="$dir/run" VIGIL_STATE_DIR="$dir/state" \
    "$VIGIL" up "$dir/bench.yaml"
}

bench_anchor_main "$@"
