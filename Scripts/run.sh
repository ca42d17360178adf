#!/usr/bin/env bash
# Sets up, builds and runs the reference trading tree in the foreground.
# Ctrl-C stops it in reverse start order. Extra arguments go to `vigil up`.
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
swift build -c release
exec .build/release/vigil up Topology/trading.yaml "$@"
