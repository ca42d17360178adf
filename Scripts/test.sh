#!/usr/bin/env bash
# Sets up, builds and runs every test: the capital-safety scenario and a chaos soak (short), then the pure
# core, the wire format, the trading domain, the host pieces, and the integration tests
# that run real vigil and real workers (swift test, whose closing lines end the output).
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
swift build --build-tests
# kill -9 runners and the gateway, then liquidate: positions must equal the fills, no
# fill twice, every veto journaled, nothing left running.
Scripts/capital-safety-scenario.py --kills 40 --build debug
# 45 s of chaos on the trading tree: kill -9, SIGSTOP, handoffs, vigil SIGKILLed and re-adopting, database damage.
Scripts/chaos.py --duration 45s --build debug
# Deploy/vigil.service under a real systemd user manager: active only once READY, restarted
# with Result=watchdog when vigil's loop is frozen, nothing left after stop.
Scripts/check-systemd-unit.sh debug
swift test --skip-build
