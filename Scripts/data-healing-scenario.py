#!/usr/bin/env python3
"""Data-healing scenario: damage the trading database three ways in the middle of trading
(garbage over its pages, truncation, deletion) and watch the tree heal each time.

Runs a real `vigil up` on Topology/scenarios/data-healing.yaml (PAPER TRADING) in private
runtime and state directories. For each kind of damage it waits for a fresh snapshot,
damages the file, and prints what happened: when db-watchdog noticed (its quick_check runs
every 500 ms), what it reported to vigil's journal while restoring, how long until the
database and the cache warmer were READY again. Then it checks, and exits 1 on any
violation:

  * the damage was noticed within the check interval (plus 1 s of slack for a busy machine);
  * db-watchdog restored from the newest snapshot, and the database passes integrity_check;
  * every fill in the fill journal is in the database, under its own fill id;
  * the cache warmer was restarted by rest_for_one (its incarnation went up), and its
    positions equal the database's (as of the last fill it has);
  * the gateway and the strategy runners were not restarted, and trading went on;
  * vigil exits 0 on SIGINT and no process of the tree is left.

    Scripts/data-healing-scenario.py [--build debug|release]

Takes about 20 s.
"""
import argparse
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

from scenario_support import ROOT, Checks, owner, vigil_binary
CHECK_INTERVAL = 0.5  # db-watchdog --interval in the scenario's topology
RUNNERS = ["strategy-runner.1", "strategy-runner.2", "strategy-runner.3"]
ALL = ["db-watchdog", "cache-warmer", "risk-guardian", "exchange-gateway"] + RUNNERS
SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD"]


class Tree:
    """One vigil process and the CLI pointed at its directories."""

    def __init__(self, vigil, topology, directory):
        self.vigil = vigil
        self.env = dict(os.environ, VIGIL_RUNTIME_DIR=directory + "/run", VIGIL_STATE_DIR=directory + "/state")
        self.env.pop("NOTIFY_SOCKET", None)
        self.state_dir = directory + "/state"
        self.runtime_dir = directory + "/run"
        self.db = self.state_dir + "/trading.db"
        self.log = open(directory + "/vigil.log", "w")
        self.process = subprocess.Popen([vigil, "up", topology], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        self.pids_seen = set()

    def nodes(self):
        r = subprocess.run([self.vigil, "status", "--json"], env=self.env, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            return None
        nodes = {n["name"]: n for n in json.loads(r.stdout)["nodes"]}
        self.pids_seen.update(n["pid"] for n in nodes.values() if n.get("pid"))
        return nodes

    def wait(self, what, condition, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nodes = self.nodes()
            if nodes and condition(nodes):
                return nodes
            time.sleep(0.02)
        raise RuntimeError(f"timed out after {timeout}s waiting for {what}")

    def journal_since(self, last_id):
        db = sqlite3.connect(f"file:{self.state_dir}/journal.db?mode=ro", uri=True)
        try:
            return db.execute("SELECT id, kind, node, incarnation, detail FROM events WHERE id > ? ORDER BY id",
                              (last_id,)).fetchall()
        finally:
            db.close()

    def last_journal_id(self):
        rows = self.journal_since(0)
        return rows[-1][0] if rows else 0


def snapshots(tree):
    d = tree.state_dir + "/snapshots"
    names = [n for n in os.listdir(d) if n.startswith("trading-") and n.endswith(".db")] if os.path.isdir(d) else []
    return sorted(names)


def fills(tree):
    """Every fill in the trading database: {client order id: (fill id, symbol, signed quantity)}."""
    db = sqlite3.connect(f"file:{tree.db}?mode=ro", uri=True, timeout=5)
    try:
        return {c: (i, s, q) for i, c, s, q in db.execute(
            "SELECT id, client_order_id, symbol, CASE side WHEN 'BUY' THEN quantity ELSE -quantity END FROM fills")}
    finally:
        db.close()


def journal_fills(tree):
    """The fill journal's whole lines: {client order id: fill id} (torn lines left out)."""
    out = {}
    path = tree.state_dir + "/fills.journal"
    with open(path) as f:
        for line in f:
            w = line.split()
            if line.endswith("\n") and len(w) == 9 and w[0] == "F1":
                out[w[2]] = int(w[1])
    return out


def lookup(tree, requests):
    """One batch of cache requests on one connection; one answer line each."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(tree.runtime_dir + "/cache.sock")
    s.sendall("".join(r + "\n" for r in requests).encode())
    data = b""
    while data.count(b"\n") < len(requests):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.decode().splitlines()


def damage(kind, path):
    if kind == "garbage":
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.seek(4096)
            f.write(os.urandom(max(8192, size - 4096)))
        return f"overwrote {max(8192, size - 4096)} bytes after the first page with random bytes"
    if kind == "truncate":
        size = os.path.getsize(path)
        os.truncate(path, size // 3)
        return f"truncated from {size} to {size // 3} bytes"
    os.unlink(path)
    return "deleted the file"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", choices=["debug", "release"], default="release", help="which build of vigil (default release)")
    args = ap.parse_args()
    vigil = vigil_binary(args.build, "scenario")
    directory = tempfile.mkdtemp(prefix="vigil-data-healing-")
    print(f"scenario: vigil {vigil}, directory {directory}", flush=True)
    tree = Tree(vigil, f"{ROOT}/Topology/scenarios/data-healing.yaml", directory)
    check = Checks()
    failures = check.failures

    try:
        start = tree.wait("every worker READY", lambda n: all(n.get(w, {}).get("state") == "ready" for w in ALL))
        time.sleep(1.0)
        print(f"tree up; {len(fills(tree))} fills so far, snapshots {snapshots(tree)}", flush=True)

        for kind in ["garbage", "truncate", "delete"]:
            print(f"\n== {kind} ==", flush=True)
            before = snapshots(tree)
            deadline = time.monotonic() + 5
            while snapshots(tree) == before and time.monotonic() < deadline:
                time.sleep(0.02)
            newest = snapshots(tree)[-1]
            nodes0 = tree.nodes()
            mark = tree.last_journal_id()
            print(f"fresh snapshot {newest}; {len(fills(tree))} fills; db-watchdog incarnation "
                  f"{nodes0['db-watchdog']['incarnation']}, cache-warmer incarnation {nodes0['cache-warmer']['incarnation']}", flush=True)

            t0 = time.monotonic()
            print(f"damage: {damage(kind, tree.db)}", flush=True)
            tree.wait("db-watchdog to notice", lambda n: n["db-watchdog"]["incarnation"] > nodes0["db-watchdog"]["incarnation"])
            noticed = time.monotonic() - t0
            healed = tree.wait("database and cache READY again", lambda n:
                               n["db-watchdog"]["state"] == "ready" and n["cache-warmer"]["state"] == "ready"
                               and n["cache-warmer"]["incarnation"] > nodes0["cache-warmer"]["incarnation"])
            recovered = time.monotonic() - t0
            for _, kind_, node, inc, detail in tree.journal_since(mark):
                if node in ("db-watchdog", "cache-warmer", "exchange-gateway", "data") and kind_ != "heartbeat":
                    print(f"  journal: {kind_:<10} {node:<17} inc={inc or '-'} {detail[:170]}", flush=True)
            check(noticed < CHECK_INTERVAL + 1.0, f"{kind}: noticed after {noticed * 1000:.0f} ms (quick_check every {CHECK_INTERVAL * 1000:.0f} ms)")
            print(f"      database and cache READY again {recovered * 1000:.0f} ms after the damage", flush=True)
            restores = [d for _, k, n, _, d in tree.journal_since(mark) if "newest snapshot that verifies" in d]
            check(any(newest in d for d in restores), f"{kind}: restored from the newest snapshot {newest}: {restores[:1]}")
            ok = sqlite3.connect(f"file:{tree.db}?mode=ro", uri=True).execute("PRAGMA integrity_check").fetchone()[0]
            check(ok == "ok", f"{kind}: the restored database passes integrity_check ({ok})")

            # Trading goes on; then every journaled fill must be in the database, same id.
            highest = max(journal_fills(tree).values(), default=0)
            deadline = time.monotonic() + 10
            while max((i for i, _, _ in fills(tree).values()), default=0) <= highest and time.monotonic() < deadline:
                time.sleep(0.05)
            journaled, stored = journal_fills(tree), fills(tree)
            lost = [c for c, i in journaled.items() if stored.get(c, (None,))[0] != i]
            check(not lost, f"{kind}: all {len(journaled)} journaled fills in the database under their ids"
                  + (f"; LOST {lost[:5]}" if lost else ""))
            newer = max((i for i, _, _ in stored.values()), default=0)
            check(newer > highest, f"{kind}: trading went on (fill ids up to {newer}, journal had {highest} at the restore)")

            # The cache answers from the restored database.
            requests = ["INFO"] + [f"GET position {r} {s}" for r in RUNNERS for s in SYMBOLS] + ["INFO"]
            deadline = time.monotonic() + 5
            while True:
                answers = lookup(tree, requests)
                last = int(answers[0].split("last_fill=")[1]) if answers and "last_fill=" in answers[0] else 0
                if last > highest or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            stored = fills(tree)
            expected = []
            for r in RUNNERS:
                for s in SYMBOLS:
                    net = sum(q for c, (i, sym, q) in stored.items() if i <= last and sym == s and owner(c) == r)
                    expected.append(f"POSITION {r} {s} {net}")
            check(answers[1:-1] == expected and answers[0] == answers[-1],
                  f"{kind}: the rebuilt cache ({answers[0] if answers else 'no answer'}) equals the database: "
                  + " ".join(a.split(" ", 1)[1] for a in answers[1:4]) + " ...")
            check(healed["cache-warmer"]["incarnation"] > nodes0["cache-warmer"]["incarnation"],
                  f"{kind}: cache-warmer restarted by rest_for_one (incarnation {nodes0['cache-warmer']['incarnation']} -> {healed['cache-warmer']['incarnation']})")
            same = [w for w in ["exchange-gateway"] + RUNNERS if healed[w]["pid"] == start[w]["pid"]]
            check(len(same) == 1 + len(RUNNERS), f"{kind}: the gateway and the runners kept running (same pids: {', '.join(same)})")

        print("", flush=True)
        tree.process.send_signal(signal.SIGINT)
        code = tree.process.wait(timeout=30)
        check(code == 0, f"vigil exited {code} on SIGINT")
        time.sleep(0.2)
        left = [p for p in tree.pids_seen if os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split(") ")[1][0] != "Z"]
        check(not left, f"no process of the tree left ({len(tree.pids_seen)} pids seen)" + (f"; LEFT {left}" if left else ""))
    except Exception as e:  # noqa: BLE001 - reported as a failure, with vigil's log kept
        check(False, f"scenario error: {e}")
        if tree.process.poll() is None:
            tree.process.kill()
            tree.process.wait()
    print(f"\n{'FAILED' if failures else 'passed'}: {len(failures)} violations; vigil's log: {directory}/vigil.log", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
