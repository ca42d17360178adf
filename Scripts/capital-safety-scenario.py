#!/usr/bin/env python3
"""Capital-safety scenario: kill -9 strategy runners and the exchange gateway at random
moments, a few hundred times, then liquidate while killing the gateway, and check that no
money was lost or made up on the way.

Runs a real `vigil up` on Topology/scenarios/capital-safety.yaml (PAPER TRADING) in
private runtime and state directories, then checks, and exits 1 on any violation:

  * no client order id has more than one fill, no order more than one outcome;
  * every runner's own positions (its FINAL report when stopped) equal its fills in the
    trading database, with nothing left in flight;
  * no runner had to repair its book from the database after a restart (its checkpoint,
    written ahead of every order, was never behind);
  * every question vigil put to the guardian has a verdict in the journal;
  * the liquidation finished (even with the gateway killed during it) and left every
    strategy's book and the venue flat;
  * vigil exits 0 on SIGINT and no process of the tree is left.

    Scripts/capital-safety-scenario.py [--kills 300] [--seed N] [--build debug|release]

Prints what it did and one line per check; exit 0 when every check passed.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

from scenario_support import ROOT, Checks, owner, vigil_binary
RUNNERS = ["strategy-runner.1", "strategy-runner.2", "strategy-runner.3"]
TARGETS = ["exchange-gateway"] + RUNNERS


class Tree:
    """One vigil process and the CLI pointed at its directories."""

    def __init__(self, vigil, topology, directory):
        self.vigil = vigil
        self.env = dict(os.environ, VIGIL_RUNTIME_DIR=directory + "/run", VIGIL_STATE_DIR=directory + "/state")
        self.env.pop("NOTIFY_SOCKET", None)
        self.state_dir = directory + "/state"
        self.log = open(directory + "/vigil.log", "w")
        self.process = subprocess.Popen([vigil, "up", topology], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        self.pids_seen = set()

    def cli(self, *words, check=True):
        r = subprocess.run([self.vigil, *words], env=self.env, capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError(f"vigil {' '.join(words)} exited {r.returncode}: {r.stderr.strip() or r.stdout.strip()}")
        return r

    def status(self):
        r = self.cli("status", "--json", check=False)
        if r.returncode != 0:
            return None
        tree = json.loads(r.stdout)
        nodes = {n["name"]: n for n in tree["nodes"]}
        for n in nodes.values():
            if n.get("pid"):
                self.pids_seen.add(n["pid"])
        return tree, nodes

    def wait(self, what, condition, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.status()
            if s and condition(*s):
                return s
            time.sleep(0.02)
        raise RuntimeError(f"timed out after {timeout}s waiting for {what}; status:\n" + self.cli("status", check=False).stdout)

    def all_ready(self, names):
        return self.wait("all of " + ", ".join(names) + " READY",
                         lambda tree, nodes: all(nodes.get(n, {}).get("state") == "ready" for n in names))

    def journal(self):
        db = sqlite3.connect(f"file:{self.state_dir}/journal.db?mode=ro", uri=True)
        try:
            return db.execute("SELECT id, kind, node, detail FROM events ORDER BY id").fetchall()
        finally:
            db.close()

    def trading(self):
        return sqlite3.connect(f"file:{self.state_dir}/trading.db?mode=ro", uri=True)


def nets_by_owner(db):
    out = {}
    for cid, symbol, q in db.execute(
            "SELECT client_order_id, symbol, CASE side WHEN 'BUY' THEN quantity ELSE -quantity END FROM fills"):
        o = owner(cid) or ""
        out.setdefault(o, {}).setdefault(symbol, 0)
        out[o][symbol] += q
    flat_left_out = {o: {s: q for s, q in nets.items() if q} for o, nets in out.items()}
    return {o: nets for o, nets in flat_left_out.items() if nets}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=300, help="kill -9s of runners and the gateway (default 300)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock; printed)")
    ap.add_argument("--build", choices=["debug", "release"], default="release", help="which build of vigil (default release)")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    vigil = vigil_binary(args.build, "scenario")
    directory = tempfile.mkdtemp(prefix="vigil-capital-safety-")
    print(f"scenario: seed {seed}, {args.kills} kills, vigil {vigil}, directory {directory}", flush=True)
    tree = Tree(vigil, f"{ROOT}/Topology/scenarios/capital-safety.yaml", directory)
    check = Checks()
    failures = check.failures

    try:
        tree.all_ready(TARGETS + ["risk-guardian", "db-watchdog"])
        time.sleep(1.0)  # some trading before the first kill

        # Phase 1: kill -9 at random moments, including while a victim is still recovering.
        started = time.monotonic()
        kills = {t: 0 for t in TARGETS}
        attempts = 0
        while sum(kills.values()) < args.kills and attempts < args.kills * 5:
            attempts += 1
            target = rng.choice(TARGETS)
            _, nodes = tree.status() or (None, {})
            pid = nodes.get(target, {}).get("pid")
            if not pid:
                continue  # down or being restarted right now: pick again
            try:
                os.kill(pid, signal.SIGKILL)
                kills[target] += 1
            except ProcessLookupError:
                continue
            time.sleep(rng.uniform(0.005, 0.25))
            if sum(kills.values()) % 50 == 0:
                tree.all_ready(TARGETS)
                print(f"scenario: {sum(kills.values())} kills, healed", flush=True)
        tree.all_ready(TARGETS)
        print(f"scenario: {sum(kills.values())} kills in {time.monotonic() - started:.1f}s: "
              + ", ".join(f"{t} {n}" for t, n in kills.items()), flush=True)
        time.sleep(1.0)

        # Stop the runners: each answers what it has in flight and reports FINAL positions.
        tree.cli("stop", "strategy-runner")
        events = tree.journal()
        finals = {}
        for _, kind, node, detail in events:
            m = re.search(r"FINAL (\S+) positions=(\S*) inflight=(\S*) realised=", detail) if kind == "report" else None
            if m:
                finals[m.group(1)] = ({s: int(q) for s, q in (p.split(":") for p in m.group(2).split(",") if p)}, m.group(3))
        db = tree.trading()
        dup_ids = db.execute("SELECT count(*) FROM (SELECT client_order_id FROM fills GROUP BY 1 HAVING count(*) > 1)").fetchone()[0]
        dup_orders = db.execute("SELECT count(*) FROM (SELECT order_id FROM fills GROUP BY 1 HAVING count(*) > 1)").fetchone()[0]
        both = db.execute("SELECT count(*) FROM fills f JOIN order_rejections r USING (client_order_id)").fetchone()[0]
        fills = db.execute("SELECT count(*) FROM fills").fetchone()[0]
        nets = nets_by_owner(db)
        db.close()
        check(fills > 0, f"{fills} fills recorded")
        check(dup_ids == 0 and dup_orders == 0 and both == 0,
              f"no client order id filled twice ({dup_ids}), no order with two fills ({dup_orders}), none both filled and rejected ({both})")
        for r in RUNNERS:
            positions, inflight = finals.get(r, (None, None))
            believed = {s: q for s, q in (positions or {}).items() if q}
            check(positions is not None and believed == nets.get(r, {}) and inflight == "",
                  f"{r} believes {believed} with {inflight or 'nothing'} in flight; its fills say {nets.get(r, {})}")
        repairs = [d for _, kind, _, d in events if kind == "report" and d.startswith("reconcile:")]
        check(not repairs, f"no runner repaired its book from the database after a restart ({len(repairs)})"
              + ("".join("\n      " + d for d in repairs[:5])))
        asked = {m.group(1) for _, kind, _, d in events if kind == "guardian_asked" for m in [re.match(r"question (\d+):", d)] if m}
        answered = {m.group(1) for _, kind, _, d in events if kind == "verdict" for m in [re.match(r"question (\d+):", d)] if m}
        check(asked and asked <= answered, f"every one of {len(asked)} guardian questions has a verdict in the journal"
              + (f" (unanswered: {sorted(asked - answered)[:10]})" if asked - answered else ""))
        check(sum(kills.values()) == args.kills, f"{sum(kills.values())} of {args.kills} kills landed")

        # Phase 2: liquidate with the runners back, killing the gateway during it.
        tree.cli("start", "strategy-runner")
        tree.all_ready(TARGETS)
        time.sleep(1.0)
        tree.cli("liquidate", "--confirm")
        for _ in range(3):
            time.sleep(rng.uniform(0.0, 0.02))
            _, nodes = tree.status()
            if nodes["exchange-gateway"].get("pid"):
                os.kill(nodes["exchange-gateway"]["pid"], signal.SIGKILL)
        tree.all_ready(["exchange-gateway"])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            db = tree.trading()
            open_liquidations = db.execute("SELECT count(*) FROM liquidations WHERE finished_ns IS NULL").fetchone()[0]
            nets = nets_by_owner(db)
            db.close()
            if open_liquidations == 0 and not nets:
                break
            time.sleep(0.1)
        check(open_liquidations == 0 and not nets,
              f"liquidation finished with the gateway killed during it; positions left: {nets or 'none'}")
        tree.cli("safe-mode", "off", "scenario", "done")
        tree.all_ready(RUNNERS)
        tree.cli("stop", "strategy-runner")
        finals = {}
        for _, kind, node, detail in tree.journal():
            m = re.search(r"FINAL (\S+) positions=(\S*) inflight=", detail) if kind == "report" else None
            if m:
                finals[m.group(1)] = {s: int(q) for s, q in (p.split(":") for p in m.group(2).split(",") if p)}
        db = tree.trading()
        nets = nets_by_owner(db)
        db.close()
        for r in RUNNERS:
            believed = {s: q for s, q in finals.get(r, {"?": 1}).items() if q}
            check(believed == nets.get(r, {}),
                  f"after the liquidation and more trading, {r} believes {believed or 'flat'}; its fills say {nets.get(r, {}) or 'flat'}")
    except Exception as e:  # a step that could not be carried out is a failure, with why
        check(False, f"scenario step failed: {e}")
    finally:
        if tree.process.poll() is None:
            tree.process.send_signal(signal.SIGINT)
            try:
                code = tree.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                tree.process.kill()
                code = None
        else:
            code = tree.process.returncode
        check(code == 0, f"vigil exited {code} on SIGINT")
        alive = [p for p in tree.pids_seen if os.path.exists(f"/proc/{p}") and
                 open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"]
        check(not alive, f"no process of the tree left ({len(tree.pids_seen)} pids seen; alive: {alive})")
    if failures:
        print(f"scenario: FAILED ({len(failures)}); seed {seed}; vigil log and state kept in {directory}")
    else:
        shutil.rmtree(directory, ignore_errors=True)
        print(f"scenario: PASSED; seed {seed}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
