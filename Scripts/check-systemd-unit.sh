#!/usr/bin/env bash
# Checks Deploy/vigil.service under a real systemd (a *user* manager, in a private mount
# namespace, so it runs on a machine where systemd is not PID 1 and never touches the
# real /run or /tmp): the unit goes active only once the whole tree is READY, shows the
# tree's status, is restarted by systemd with Result=watchdog when vigil's event loop is
# frozen (SIGSTOP), the new vigil re-adopts the workers (same pids, none restarted), and
# the unit leaves no worker behind when stopped.
#
#   Scripts/check-systemd-unit.sh [debug|release]   (default release; build it first; root
#                                 needed for unshare; one line per check, exit 1 on a failure)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
build=${1:-release}
[ -x ".build/$build/vigil" ] || { echo "check-systemd-unit: build first: swift build -c $build" >&2; exit 2; }
command -v unshare >/dev/null && [ -x /lib/systemd/systemd ] || {
  echo "check-systemd-unit: needs unshare (util-linux) and systemd (Scripts/setup.sh installs it)" >&2; exit 2; }

box=$(mktemp -d /tmp/vigil-systemd.XXXXXX)
trap 'rm -rf "$box"' EXIT
mkdir -p "$box/run-systemd" "$box/runtime" "$box/home/.config/systemd/user"
chmod 700 "$box/runtime"

export BOX="$box" REPO="$repo" BUILD="$build"
unshare --mount --propagation private bash -s <<'INNER'
set -uo pipefail
# A private /run/systemd, so the user manager believes it is on a systemd machine.
mount --bind "$BOX/run-systemd" /run/systemd
mkdir -p /run/systemd/system
export HOME="$BOX/home" XDG_RUNTIME_DIR="$BOX/runtime" XDG_CONFIG_HOME="$BOX/home/.config"
export DBUS_SESSION_BUS_ADDRESS="unix:path=$XDG_RUNTIME_DIR/bus"
/lib/systemd/systemd --user --log-target=console --log-level=info >"$BOX/manager.log" 2>&1 &
manager=$!
for _ in $(seq 100); do
  state=$(systemctl --user is-system-running 2>/dev/null || true)
  [ "$state" = running ] || [ "$state" = degraded ] && break
  sleep 0.1
done

failures=0
check() { if eval "$2"; then echo "ok    $1"; else echo "FAIL  $1"; failures=$((failures + 1)); fi; }
show() { systemctl --user show -p "$1" --value vigil; }
vigil_status() { VIGIL_RUNTIME_DIR="$XDG_RUNTIME_DIR/vigil" "$REPO/.build/$BUILD/vigil" status --json 2>/dev/null; }
all_ready() { vigil_status | python3 -c 'import json,sys; n=json.load(sys.stdin)["nodes"]; sys.exit(0 if n and all(x["state"] in ("ready", "running") for x in n) else 1)'; }

# The repository's unit, with this build's paths, the user manager's directories and a
# short watchdog so the check is quick.
sed -e "s|^ExecStart=.*|ExecStart=$REPO/.build/$BUILD/vigil up $REPO/Topology/trading.yaml|" \
    -e "s|/run/vigil|%t/vigil|; s|/var/lib/vigil|%S/vigil|" -e "s|^WatchdogSec=.*|WatchdogSec=2s|; s|^TimeoutAbortSec=.*|TimeoutAbortSec=2s|" \
    -e "/^After=network-online.target/d; /^Wants=network-online.target/d" \
    "$REPO/Deploy/vigil.service" > "$XDG_CONFIG_HOME/systemd/user/vigil.service"
systemctl --user daemon-reload

check "systemctl start returns once vigil says READY=1" "systemctl --user start vigil"
check "active (running) right after start" '[ "$(show ActiveState)/$(show SubState)" = active/running ]'
check "every worker is READY when the unit is active" "all_ready"
check "STATUS= shows the tree: '$(show StatusText)'" '[[ "$(show StatusText)" == *"8/8 workers running"* ]]'

worker_pids() { vigil_status | python3 -c 'import json,sys; print(" ".join(n["name"] + "=" + str(n["pid"]) for n in json.load(sys.stdin)["nodes"] if n.get("pid")))'; }
before=$(worker_pids)
first=$(show MainPID)
[ "$first" -gt 0 ] 2>/dev/null && kill -STOP "$first"
restarted=0 result=""
for _ in $(seq 200); do
  r=$(show Result); [ "$r" = success ] || result=$r   # watchdog, while it restarts
  [ "$(show NRestarts)" -ge 1 ] 2>/dev/null && [ "$(show ActiveState)" = active ] && { restarted=1; break; }
  sleep 0.1
done
check "a frozen event loop (SIGSTOP) is restarted by systemd's watchdog" '[ "$restarted" = 1 ] && [ "$(show MainPID)" != "$first" ]'
check "the unit failed with Result=watchdog before the restart (${result:-not seen})" '[ "$result" = watchdog ]'
check "the frozen vigil is gone" '! kill -0 "$first" 2>/dev/null'
for _ in $(seq 100); do all_ready && break; sleep 0.1; done
check "the tree is READY again under the new vigil" "all_ready"
after=$(worker_pids)
check "the new vigil re-adopted every worker: same pids (KillMode=process)" '[ -n "$before" ] && [ "$before" = "$after" ]'
state_dir=$(dirname "$(find "$HOME" -name journal.db -path '*vigil*' | head -n 1)")
check "the journal says all 8 were adopted, not spawned again" '[ "$("$REPO/.build/$BUILD/vigil" events -n 200 --state-dir "$state_dir" 2>/dev/null | grep -c " adopted ")" -ge 8 ]'

pids=$(vigil_status | python3 -c 'import json,sys; print(" ".join(str(n["pid"]) for n in json.load(sys.stdin)["nodes"] if n.get("pid")))')
check "systemctl stop succeeds" "systemctl --user stop vigil"
left=""
for p in $pids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
check "no worker is left after stop (${left:-none})" '[ -z "$left" ]'

systemctl --user stop default.target >/dev/null 2>&1 || true
kill -TERM "$manager" 2>/dev/null; wait "$manager" 2>/dev/null
if [ "$failures" -gt 0 ]; then echo "--- user manager log"; tail -n 40 "$BOX/manager.log"; fi
echo "check-systemd-unit: $([ "$failures" = 0 ] && echo PASSED || echo "FAILED ($failures)")"
exit $(( failures > 0 ))
INNER
