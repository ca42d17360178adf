#!/usr/bin/env bash
# The benchmark in one command: installs what it needs (Scripts/setup.sh; the anchors'
# supervisord, runit, s6 and Erlang through their own --install, as shared/bench does),
# builds release, runs every row and writes BENCHMARKS.md. Needs root (apt-get).
#
#   Benchmarks/run.sh                      # the full run (about 40 min on 2 cores)
#   Benchmarks/run.sh --quick              # a smoke test (< 60 s, no throttled anchors)
#   Benchmarks/run.sh --only tree,idle     # some rows; any vigil-bench option passes through
#
# Output goes to BENCHMARKS.md unless --out is given (--quick writes nothing unless asked).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
Scripts/setup.sh
swift build -c release --product vigil >/dev/null
swift build -c release >/dev/null
out=(--out "$REPO/BENCHMARKS.md")
for a in "$@"; do case $a in --quick|--out) out=() ;; esac; done
exec .build/release/vigil-bench "${out[@]}" "$@"
