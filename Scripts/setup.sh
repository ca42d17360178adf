#!/usr/bin/env bash
# Installs what Vigil needs to build and test on Debian 12, and nothing when it is already
# there: the C libraries Vigil links (libsystemd, libsqlite3, libyaml, found with
# pkg-config) and the tools its tests use. Safe to run again; needs root (or sudo).
set -euo pipefail

packages=(pkg-config libsystemd-dev libsqlite3-dev libyaml-dev sqlite3 systemd python3 redis-server)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v swift >/dev/null || {
  echo "setup: swift is not on PATH; Vigil needs Swift 6 (this machine's toolchain is at /opt/swift/usr/bin)" >&2
  exit 1
}

# The metrics tests parse vigil's Prometheus text with the prometheus-client package's own
# parser (Scripts/parse-metrics.py). pip first (PyPI); a Debian python3 that refuses pip
# (PEP 668) or has none gets the Debian package instead.
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
  echo "setup: installing the prometheus-client Python package" >&2
  pip=(python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore prometheus-client)
  "${pip[@]}" 2>/dev/null || "${pip[@]}" --break-system-packages 2>/dev/null || {
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends python3-prometheus-client >/dev/null
  }
  python3 -c 'import prometheus_client' || { echo "setup: could not install prometheus-client for python3" >&2; exit 1; }
fi

# Scripts/chaos.py reads the topology with PyYAML: pip first, else the Debian package.
if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "setup: installing the PyYAML Python package" >&2
  pip=(python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore pyyaml)
  "${pip[@]}" 2>/dev/null || "${pip[@]}" --break-system-packages 2>/dev/null || {
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends python3-yaml >/dev/null
  }
  python3 -c 'import yaml' || { echo "setup: could not install PyYAML for python3" >&2; exit 1; }
fi
