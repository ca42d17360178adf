#!/usr/bin/env bash
# Sets up, builds and runs every test: the pure core, the wire format, the trading domain,
# the host pieces, and the integration tests that run real vigil and real workers.
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
swift build --build-tests
swift test --skip-build
# The capital-safety scenario, short: kill -9 runners and the gateway, then liquidate;
# positions must equal the fills, no fill twice, every veto journaled.
Scripts/capital-safety-scenario.py --kills 40 --build debug
