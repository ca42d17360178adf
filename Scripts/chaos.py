#!/usr/bin/env python3
"""Chaos soak: for a bounded time, at random, kill -9 workers, SIGSTOP them (hangs the
watchdog must catch), hand strategy runners off, SIGKILL vigil itself and start it again
(it must re-adopt its running workers, same pids), and damage the trading database (the
db-watchdog must restore it); then check the tree's invariants.

Runs a real `vigil up` on Topology/trading.yaml (PAPER TRADING) in private runtime and
state directories. Faults are paced from the topology's own budgets (at most 60% of each
supervisor's restart intensity, 3 per child per minute, what the guardian's --max-restarts
allows), so every fault must heal and none may take the tree down. Guarded children are
faulted only while the guardian is READY (a hung guardian plus a dead gateway is the
fail-safe's safe mode by design); should safe mode be entered anyway, the runner turns it
off after 2 s as an operator would, and says so.

Then it prints one line per invariant, ok or FAIL, and exits 1 on any violation:

  * the tree is healthy at the end: every worker READY, no safe mode;
  * no supervisor escalated and the tree never failed;
  * no orphan and no zombie: every pid the tree ever had (status snapshots, the journal's
    runs table, /proc processes whose environment names this tree's runtime directory) is
    gone after the final stop, and vigil never left a zombie unreaped for 2 s;
  * no child had two live instances: in the journal's runs, the [started, exited)
    intervals of one child overlap only for an overlapping handoff that the journal records,
    and no /proc sample saw two live processes with the same VIGIL_NAME outside one;
  * every fault is journaled: each killed or stopped pid has an `exited` record (a death
    while vigil was down as "ended while no vigil was running"), each stopped one how it
    was replaced (watchdog, or not re-adopted), each damage a db-watchdog exit and a
    restore; and every `exited` record is explained by a fault or a decision of vigil's;
  * re-adoption: each worker READY when vigil was killed, and not faulted while vigil was
    down, is taken back by the next vigil with the same pid (or stopped for a reason the
    journal gives and the runner caused: a rest_for_one sibling died, it was SIGSTOPped);
  * no checkpoint lost: each runner's FINAL positions equal its fills in the trading
    database with nothing in flight, and no runner had to repair its book from the database;
  * no duplicate fill: no client order id or order with two fills, none both filled and
    rejected; every fill in the fill journal is in the database under its id; the database
    passes integrity_check;
  * vigil exits 0 on SIGINT.

    Scripts/chaos.py [--duration 10m] [--seed N] [--build debug|release] [--no-corrupt-db]

Prints the seed (rerun with --seed N to replay the same choices; timing still varies).
"""
import argparse
import collections
import ctypes
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

try:
    import yaml
except ImportError:  # Scripts/setup.sh installs it
    sys.exit("chaos: needs PyYAML (python3 -m pip install pyyaml, or apt-get install python3-yaml)")

from scenario_support import ROOT, owner
SHARE = 0.6          # of a supervisor's intensity the runner may use
PER_CHILD = 3        # faults per child per minute at most
DAMAGE_EVERY = 30.0  # seconds between two damages of the trading database at least


def seconds(text):
    """`10m`, `45s`, `1m30s`, `250ms`, or a bare number of seconds."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r}")
    return sum(float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[u] for n, u in parts)


def now_ns():
    return time.time_ns()


def proc_stat(pid):
    """(state, ppid, pgrp, starttime ticks) or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    f = text.rsplit(")", 1)[1].split()
    return f[0], int(f[1]), int(f[2]), int(f[19])


def proc_environ(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    out = {}
    for item in raw.split(b"\0"):
        k, _, v = item.partition(b"=")
        if k:
            out[k.decode(errors="replace")] = v.decode(errors="replace")
    return out


class Topology:
    """What pacing needs from the topology file: each worker's supervisor, budgets, flags."""

    def __init__(self, path):
        with open(path) as f:
            doc = yaml.safe_load(f)
        self.budget = {}    # supervisor -> (max_restarts, period seconds)
        self.parent = {}    # worker (pool instances by instance name) -> supervisor
        self.guarded, self.overlap, self.watchdog = set(), set(), {}
        self.guardian, self.guardian_limit = None, (5, 60.0)
        defaults = doc.get("defaults", {}) or {}

        def walk(node, name):
            self.budget[name] = (int(node.get("max_restarts", 5)), seconds(str(node.get("period", "10s"))))
            for c in node.get("children", []) or []:
                if "supervisor" in c:
                    walk(c, c["supervisor"])
                    continue
                spec = dict(defaults, **c)
                names = [c["worker"]] if "instances" not in c else [f"{c['worker']}.{i}" for i in range(1, int(c["instances"]) + 1)]
                for n in names:
                    self.parent[n] = name
                    if spec.get("guarded"):
                        self.guarded.add(n)
                    if spec.get("handoff") == "overlap":
                        self.overlap.add(n)
                    if spec.get("watchdog") not in (None, "none"):
                        self.watchdog[n] = seconds(str(spec["watchdog"]))
                    if spec.get("role") == "guardian":
                        self.guardian = n
                        argv = [str(a) for a in spec.get("argv", [])]
                        limit, window = self.guardian_limit
                        if "--max-restarts" in argv:
                            limit = int(argv[argv.index("--max-restarts") + 1])
                        if "--restart-window" in argv:
                            window = seconds(argv[argv.index("--restart-window") + 1])
                        self.guardian_limit = (limit, window)

        walk(doc, doc["name"])
        self.root = doc["name"]
        self.adopt_window = seconds(str(doc.get("adopt_window", "10s")))
        self.workers = list(self.parent)


class Soak:
    def __init__(self, args, seed):
        self.args, self.seed, self.rng = args, seed, random.Random(seed)
        self.vigil = f"{ROOT}/.build/{args.build}/vigil"
        self.topology_path = os.path.abspath(args.topology)
        self.topo = Topology(self.topology_path)
        self.dir = tempfile.mkdtemp(prefix="vigil-chaos-")
        self.run_dir, self.state_dir = self.dir + "/run", self.dir + "/state"
        self.env = dict(os.environ, VIGIL_RUNTIME_DIR=self.run_dir, VIGIL_STATE_DIR=self.state_dir)
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "JOURNAL_STREAM"):
            self.env.pop(k, None)
        self.log = open(self.dir + "/vigil.log", "ab")
        self.process = None
        self.launches = []          # (pid, wall ns) of every vigil started
        self.seen = {}              # pid -> (starttime ticks or None, node)
        self.classified = {}        # (pid, starttime) -> VIGIL_NAME or "" (ours, no name) or None (not ours)
        self.faults = []            # dicts: kind, node, pid, at, vigil_up
        self.counts = collections.Counter()
        self.hung = {}              # node -> pid we SIGSTOPped, until replaced
        self.handing_off = {}       # node -> (old pid, deadline) of a handoff in flight
        self.restarts = []          # vigil restarts: {"at": ns, "expect": {pid: node}, "excused": {pid: why}}
        self.twins, self.zombies, self.first_zombie = [], [], {}
        self.safe_modes, self.safe_since = [], None
        self.last_damage = 0.0
        self.nodes = {}
        self.safe_mode = None
        self.failures = []

    # ---- vigil and its CLI ----

    def start_vigil(self):
        self.process = subprocess.Popen([self.vigil, "up", self.topology_path], env=self.env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        self.launches.append((self.process.pid, now_ns()))

    def kill_vigil(self):
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def cli(self, *words, timeout=60):
        return subprocess.run([self.vigil, *words], env=self.env, capture_output=True, text=True, timeout=timeout)

    def status(self):
        try:
            r = self.cli("status", "--json", timeout=15)
        except subprocess.TimeoutExpired:
            return None
        if r.returncode != 0:
            return None
        tree = json.loads(r.stdout)
        self.nodes = {n["name"]: n for n in tree["nodes"]}
        self.safe_mode = tree.get("safe_mode")
        for n in tree["nodes"]:
            if n.get("pid"):
                st = proc_stat(n["pid"])
                self.seen.setdefault(n["pid"], (st[3] if st else None, n["name"]))
        return self.nodes

    def wait_status(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vigil exited {self.process.returncode} (see {self.dir}/vigil.log)")
            if self.status() is not None:
                return self.nodes
            self.sample()
            time.sleep(0.05)
        raise RuntimeError(f"vigil did not answer status within {timeout}s")

    def ready(self, name):
        return self.nodes.get(name, {}).get("state") == "ready"

    def all_ready(self):
        return all(self.ready(w) for w in self.topo.workers)

    # ---- /proc ----

    def sample(self):
        """Every process of this tree by its environment: zombies, two live instances."""
        me = os.getpid()
        vigils = {p for p, _ in self.launches}
        live = collections.defaultdict(set)
        try:
            entries = os.listdir("/proc")
        except OSError:
            return
        t = time.monotonic()
        zombies_now = set()
        for e in entries:
            if not e.isdigit():
                continue
            pid = int(e)
            if pid == me or pid in vigils:
                continue
            st = proc_stat(pid)
            if st is None:
                continue
            state, ppid, _, start = st
            key = (pid, start)
            if key not in self.classified:
                if state == "Z":
                    if pid not in self.seen:
                        continue  # environ is gone for a zombie: judge it by a pid seen alive
                    self.classified[key] = self.seen[pid][1]
                else:
                    env = proc_environ(pid)
                    if env is None:
                        continue
                    ours = env.get("VIGIL_RUNTIME_DIR") == self.run_dir and "VIGIL_NAME" in env
                    self.classified[key] = env["VIGIL_NAME"] if ours else None
            name = self.classified[key]
            if name is None:
                continue
            self.seen.setdefault(pid, (start, name))
            if state == "Z":
                zombies_now.add(pid)
                if ppid == me:
                    try:  # orphans of a killed vigil come to us (a subreaper, as systemd is)
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        pass
                elif self.process and ppid == self.process.pid and self.process.poll() is None:
                    first = self.first_zombie.setdefault(pid, t)
                    if t - first > 2.0 and pid not in self.zombies:
                        self.zombies.append(pid)
                continue
            live[name].add(pid)
        for pid in list(self.first_zombie):
            if pid not in zombies_now:
                del self.first_zombie[pid]
        for name, pids in live.items():
            if len(pids) > 1 and name not in self.handing_off:
                # A worker's own helpers would share its group; two group leaders are two instances.
                leaders = {p for p in pids if (proc_stat(p) or (None, None, None))[2] == p}
                if len(leaders) > 1:
                    self.twins.append((time.strftime("%H:%M:%S"), name, sorted(leaders)))

    # ---- pacing ----

    def recent(self, window, pred):
        cut = time.monotonic() - window
        return sum(1 for f in self.faults if f["mono"] >= cut and pred(f))

    def may_fault(self, name, restarts=True):
        """Whether one more failure of `name` stays inside every budget it touches."""
        if not self.ready(name) or name in self.hung or name in self.handing_off:
            return False
        if self.safe_mode:
            return False
        if self.recent(60, lambda f: f["node"] == name) >= PER_CHILD:
            return False
        sup = self.topo.parent[name]
        limit, period = self.topo.budget[sup]
        if self.recent(period, lambda f: f.get("restart") and self.topo.parent.get(f["node"]) == sup) + 1 > max(1, int(limit * SHARE)):
            return False
        g = self.topo.guardian
        if name in self.topo.guarded:
            glimit, gwindow = self.topo.guardian_limit
            if self.recent(gwindow, lambda f: f["node"] == name) + 1 > max(1, glimit - 2):
                return False
            if not g or not self.ready(g) or g in self.hung:
                return False  # a guarded death with no guardian is the fail-safe, by design
        if name == g and any(w in self.hung or not self.ready(w) for w in self.topo.guarded):
            return False
        return True

    def note(self, kind, name, pid, vigil_up=True, restart=True, **extra):
        f = dict(kind=kind, node=name, pid=pid, at=now_ns(), mono=time.monotonic(), vigil_up=vigil_up, restart=restart, **extra)
        self.faults.append(f)
        self.counts[kind] += 1
        return f

    # ---- faults ----

    def kill9(self):
        choices = [w for w in self.topo.workers if self.may_fault(w)]
        if not choices:
            return False
        name = self.rng.choice(choices)
        pid = self.nodes[name]["pid"]
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        self.note("kill -9", name, pid)
        return True

    def sigstop(self):
        choices = [w for w in self.topo.workers if w in self.topo.watchdog and self.may_fault(w) and len(self.hung) < 2]
        if not choices:
            return False
        name = self.rng.choice(choices)
        pid = self.nodes[name]["pid"]
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            return False
        self.hung[name] = pid
        self.note("SIGSTOP", name, pid)
        return True

    def handoff(self):
        choices = [w for w in self.topo.overlap if self.may_fault(w) and not self.handing_off]
        if not choices:
            return False
        name = self.rng.choice(sorted(choices))
        pid = self.nodes[name]["pid"]
        r = self.cli("restart", "--handoff", "--no-block", name)
        if r.returncode != 0:
            print(f"chaos: restart --handoff {name} refused: {(r.stderr or r.stdout).strip()}", flush=True)
            return False
        self.handing_off[name] = (pid, time.monotonic() + 30)
        self.note("handoff", name, pid, restart=False)
        return True

    def damage(self):
        if self.args.no_corrupt_db or time.monotonic() - self.last_damage < DAMAGE_EVERY:
            return False
        if not (self.may_fault("db-watchdog") and self.ready("cache-warmer")):
            return False
        path = self.state_dir + "/trading.db"
        if not os.path.exists(path):
            return False
        how = self.rng.choice(["garbage", "truncate", "delete"])
        size = os.path.getsize(path)
        if how == "garbage":
            with open(path, "r+b") as f:
                f.seek(4096)
                f.write(self.rng.randbytes(max(8192, size - 4096)))
        elif how == "truncate":
            os.truncate(path, size // 3)
        else:
            os.unlink(path)
        self.last_damage = time.monotonic()
        self.note("damage", "db-watchdog", self.nodes["db-watchdog"]["pid"], how=how)
        self.counts["damage"] -= 1
        self.counts[f"damage ({how})"] += 1
        return True

    def restart_vigil(self):
        if any(not self.ready(w) for w in self.topo.workers) and self.rng.random() < 0.5:
            return False  # mostly from a healed tree, sometimes in the middle of healing
        before = {w: self.nodes[w]["pid"] for w in self.topo.workers if self.nodes.get(w, {}).get("pid")}
        readies = {w for w in before if self.ready(w)}
        self.kill_vigil()
        self.note("vigil SIGKILL", "vigil", self.launches[-1][0], restart=False)
        # Hung by the runner or in a handoff: such a process cannot be vouched for (it does
        # not reconnect) or is one of two; the next vigil may stop it.
        excused = {pid: "SIGSTOPped before vigil was killed" for pid in self.hung.values()}
        excused.update({before[n]: "in a handoff" for n in self.handing_off if n in before})
        excused.update({p: "in a handoff" for n, (p, _) in self.handing_off.items()})
        down = self.rng.uniform(0.05, 3.0)
        t_end = time.monotonic() + down
        time.sleep(self.rng.uniform(0.0, down / 2))
        if self.rng.random() < 0.3 and before:  # a death nobody sees
            name = self.rng.choice(sorted(before))
            try:
                os.kill(before[name], signal.SIGKILL)
                self.note("kill -9 (vigil down)", name, before[name], vigil_up=False, restart=False)
                excused[before[name]] = "killed while vigil was down"
            except ProcessLookupError:
                pass
        elif self.rng.random() < 0.2 and before:  # a hang nobody sees: it cannot reconnect
            name = self.rng.choice(sorted(w for w in before if w in self.topo.watchdog) or sorted(before))
            try:
                os.kill(before[name], signal.SIGSTOP)
                self.hung[name] = before[name]
                self.note("SIGSTOP (vigil down)", name, before[name], vigil_up=False, restart=False)
                excused[before[name]] = "stopped while vigil was down"
            except ProcessLookupError:
                pass
        while time.monotonic() < t_end:
            self.sample()
            time.sleep(0.02)
        self.restarts.append({"at": now_ns(), "expect": {before[w]: w for w in readies}, "excused": excused})
        self.start_vigil()
        if self.rng.random() < 0.2:  # and once more, while it is re-adopting
            time.sleep(self.rng.uniform(0.01, 0.5))
            self.kill_vigil()
            self.note("vigil SIGKILL (adopting)", "vigil", self.launches[-1][0], restart=False)
            time.sleep(self.rng.uniform(0.0, 0.5))
            self.restarts[-1]["twice"] = True
            self.start_vigil()
        self.wait_status()
        return True

    # ---- the run ----

    def tidy(self):
        """Forgets hangs and handoffs that are over; plays the operator for safe mode."""
        for name, pid in list(self.hung.items()):
            if self.nodes.get(name, {}).get("pid") != pid and (proc_stat(pid) or ("Z",))[0] == "Z":
                del self.hung[name]
        for name, (pid, deadline) in list(self.handing_off.items()):
            n = self.nodes.get(name, {})
            if (n.get("state") == "ready" and n.get("pid") != pid and (proc_stat(pid) or ("Z",))[0] == "Z") or time.monotonic() > deadline:
                del self.handing_off[name]
        if self.safe_mode:
            if self.safe_since is None:
                self.safe_since = time.monotonic()
            elif time.monotonic() - self.safe_since > 2.0:
                self.safe_modes.append(str(self.safe_mode))
                print(f"chaos: safe mode ({self.safe_mode}); turning it off as the operator", flush=True)
                self.cli("safe-mode", "off", "chaos runner")
                self.safe_since = None
        else:
            self.safe_since = None

    def soak(self):
        actions = [(self.kill9, 40), (self.sigstop, 12), (self.restart_vigil, 10), (self.damage, 8), (self.handoff, 6)]
        end = time.monotonic() + self.args.duration
        next_at = time.monotonic() + 2.0
        last_print = time.monotonic()
        while time.monotonic() < end:
            if self.status() is None:
                if self.process.poll() is not None:
                    raise RuntimeError(f"vigil exited {self.process.returncode} during the soak")
            self.sample()
            self.tidy()
            if time.monotonic() >= next_at and self.nodes:
                fn = self.rng.choices([a for a, _ in actions], weights=[w for _, w in actions])[0]
                fn()
                next_at = time.monotonic() + self.rng.uniform(0.3, 3.0)
            if time.monotonic() - last_print > 30:
                last_print = time.monotonic()
                print(f"chaos: {int(self.args.duration - (end - time.monotonic()))}s: "
                      + ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()) if v), flush=True)
            time.sleep(0.1)

    def heal(self, timeout=120.0):
        """Every worker READY and no safe mode, waiting out hangs, backoffs and handoffs."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            self.status()
            self.sample()
            self.tidy()
            if (self.nodes and self.all_ready() and not self.safe_mode and not self.hung and not self.handing_off
                    and not self.unrestored_damage()):
                return time.monotonic() - t0
            time.sleep(0.1)
        return None

    def unrestored_damage(self):
        """A damage of the database db-watchdog has not restored yet (it notices at its next
        check, so a tree that looks READY right after a damage is not healed)."""
        damages = [f for f in self.faults if f["kind"].startswith("damage")]
        if not damages:
            return False
        try:
            db = sqlite3.connect(f"file:{self.state_dir}/journal.db?mode=ro", uri=True, timeout=10)
            try:
                restores = [at for (at,) in db.execute(
                    "SELECT at_ns FROM events WHERE kind = 'report' AND node = 'db-watchdog' AND detail LIKE 'db-restore%'")]
            finally:
                db.close()
        except sqlite3.Error:
            return True
        return any(not any(at > f["at"] for at in restores) for f in damages)

    # ---- the checks ----

    def check(self, ok, line):
        print(("ok    " if ok else "FAIL  ") + line, flush=True)
        if not ok:
            self.failures.append(line)

    def journal(self):
        db = sqlite3.connect(f"file:{self.state_dir}/journal.db?mode=ro", uri=True, timeout=10)
        try:
            events = db.execute("SELECT id, at_ns, kind, node, pid, incarnation, detail FROM events ORDER BY id").fetchall()
            runs = db.execute("SELECT node, incarnation, pid, started_ns, ready_ns, exited_ns, exit FROM runs").fetchall()
            starts = db.execute("SELECT pid, at_ns FROM vigil_starts ORDER BY id").fetchall()
        finally:
            db.close()
        return events, runs, starts

    def check_books(self):
        """The capital-safety scenario's checks: FINAL positions against fills, duplicates."""
        r = self.cli("stop", "strategy-runner", timeout=90)
        self.check(r.returncode == 0, "vigil stop strategy-runner: " + ((r.stderr or r.stdout).strip().splitlines() or ["stopped"])[0])
        events, runs, _ = self.journal()
        finals = {}
        for _, _, kind, node, _, _, detail in events:
            m = re.search(r"FINAL (\S+) positions=(\S*) inflight=(\S*) realised=", detail) if kind == "report" else None
            if m:
                finals[m.group(1)] = ({s: int(q) for s, q in (p.split(":") for p in m.group(2).split(",") if p)}, m.group(3))
        db = sqlite3.connect(f"file:{self.state_dir}/trading.db?mode=ro", uri=True, timeout=10)
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        dup_ids = db.execute("SELECT count(*) FROM (SELECT client_order_id FROM fills GROUP BY 1 HAVING count(*) > 1)").fetchone()[0]
        dup_orders = db.execute("SELECT count(*) FROM (SELECT order_id FROM fills GROUP BY 1 HAVING count(*) > 1)").fetchone()[0]
        both = db.execute("SELECT count(*) FROM fills f JOIN order_rejections r USING (client_order_id)").fetchone()[0]
        stored = {c: i for i, c in db.execute("SELECT id, client_order_id FROM fills")}
        nets = {}
        for cid, symbol, q in db.execute("SELECT client_order_id, symbol, CASE side WHEN 'BUY' THEN quantity ELSE -quantity END FROM fills"):
            o = owner(cid) or ""
            nets.setdefault(o, collections.Counter())[symbol] += q
        db.close()
        nets = {o: {s: q for s, q in c.items() if q} for o, c in nets.items()}
        journaled = {}
        if os.path.exists(self.state_dir + "/fills.journal"):
            with open(self.state_dir + "/fills.journal") as f:
                for line in f:
                    w = line.split()
                    if line.endswith("\n") and len(w) == 9 and w[0] == "F1":
                        journaled[w[2]] = int(w[1])
        lost = [c for c, i in journaled.items() if stored.get(c) != i]
        self.check(integrity == "ok", f"the trading database passes integrity_check ({integrity})")
        self.check(len(stored) > 0 and dup_ids == 0 and dup_orders == 0 and both == 0,
                   f"no duplicate fill: {len(stored)} fills; client order ids filled twice {dup_ids}, "
                   f"orders with two fills {dup_orders}, both filled and rejected {both}")
        self.check(not lost, f"every one of {len(journaled)} fills in the fill journal is in the database under its id"
                   + (f"; LOST {lost[:5]}" if lost else ""))
        runners = sorted(w for w in self.topo.workers if w.startswith("strategy-runner"))
        for r in runners:
            positions, inflight = finals.get(r, (None, None))
            believed = {s: q for s, q in (positions or {}).items() if q}
            self.check(positions is not None and believed == nets.get(r, {}) and inflight == "",
                       f"no checkpoint lost: {r} believes {believed or 'flat'} with {inflight or 'nothing'} in flight; "
                       f"its fills say {nets.get(r, {}) or 'flat'}")
        repairs = [(node, inc, d) for _, _, kind, node, _, inc, d in events if kind == "report" and d.startswith("reconcile:")]
        # A runner killed (or hung) while no vigil ran held its latest checkpoint only in its
        # own memory (no vigil to keep it, so it sent no new order meanwhile): its successor
        # repairs from the database, which is the design. Any other repair is a lost checkpoint.
        unseen = {(f["node"], f["pid"]) for f in self.faults if not f.get("vigil_up", True)}
        pid_of = {(n, i): p for n, i, p, *_ in runs}
        def excused(node, inc):
            before = [i for (n, i) in pid_of if n == node and i < inc]
            return bool(before) and (node, pid_of[(node, max(before))]) in unseen
        unexplained = [(n, i, d) for n, i, d in repairs if not excused(n, i)]
        self.check(not unexplained, f"no runner repaired its book from the database after a restart, but for "
                   f"{len(repairs) - len(unexplained)} whose predecessor was killed while no vigil ran ({len(unexplained)} others)"
                   + "".join(f"\n      {n} incarnation {i}: {d[:200]}" for n, i, d in unexplained[:5]))

    def check_journal(self):
        events, runs, starts = self.journal()
        by_pid = collections.defaultdict(list)
        for e in events:
            if e[4]:
                by_pid[e[4]].append(e)

        kinds = collections.Counter(e[2] for e in events)
        print("chaos: journal: " + ", ".join(f"{k} {kinds[k]}" for k in (
            "spawned", "adopted", "exited", "restart", "watchdog", "terminate", "kill", "handoff", "ready_timeout",
            "spawn_failed", "protocol_violation", "safe_mode", "guardian_asked", "verdict") if kinds[k]), flush=True)
        self.check(kinds["escalate"] == 0 and kinds["tree_failed"] == 0,
                   f"no supervisor escalated ({kinds['escalate']}), the tree never failed ({kinds['tree_failed']})")
        self.check(len(starts) == len(self.launches) and [p for p, _ in starts] == [p for p, _ in self.launches],
                   f"every vigil started is in vigil_starts ({len(starts)} of {len(self.launches)})")

        # Two live instances: per node, [started, exited) must not overlap but in a journaled handoff.
        beside = set()
        for _, _, kind, node, _, _, d in events:
            m = re.match(r"starting incarnation (\d+) beside incarnation (\d+)", d) if kind == "handoff" else None
            if m:
                beside.add((node, int(m.group(2)), int(m.group(1))))
        overlaps, allowed = [], 0
        per = collections.defaultdict(list)
        for node, inc, pid, started, ready, exited, ex in runs:
            if pid is not None:
                per[node].append((started, exited if exited is not None else float("inf"), inc, pid))
        for node, rs in per.items():
            rs.sort()
            for i, a in enumerate(rs):
                for b in rs[i + 1:]:
                    if b[0] >= a[1]:
                        continue
                    if node in self.topo.overlap and (node, a[2], b[2]) in beside:
                        allowed += 1
                    else:
                        overlaps.append(f"{node} incarnations {a[2]} (pid {a[3]}) and {b[2]} (pid {b[3]})")
        self.check(not overlaps, f"no child had two runs at once in the journal ({len(runs)} runs; {allowed} overlapping handoffs journaled)"
                   + "".join(f"\n      {o}" for o in overlaps[:5]))
        self.check(not self.twins, "no /proc sample saw two live processes with one VIGIL_NAME outside a handoff"
                   + "".join(f"\n      {t} {n}: pids {p}" for t, n, p in self.twins[:5]))
        self.check(not self.zombies, f"vigil never left a zombie unreaped for 2 s ({self.zombies[:10]})")

        # Every fault journaled.
        missing = []
        for f in self.faults:
            if f["kind"].startswith("vigil"):
                continue
            after = [e for e in by_pid.get(f["pid"], []) if e[1] >= f["at"] - 1_000_000_000]
            exited = [e for e in after if e[2] == "exited"]
            if f["kind"] == "handoff":
                if not any(e[2] == "exited" or e[2] == "handoff" for e in after) and not any(
                        e[2] == "handoff" and e[3] == f["node"] and e[1] >= f["at"] - 10**9 for e in events):
                    missing.append(f"handoff of {f['node']} (pid {f['pid']}): no handoff record")
                continue
            if not exited:
                missing.append(f"{f['kind']} of {f['node']} pid {f['pid']}: no exited record")
                continue
            if f["kind"] == "kill -9 (vigil down)" and not any("no vigil was running" in e[6] or "while vigil was starting" in e[6]
                                                                 or "not adopted" in e[6] for e in exited):
                missing.append(f"{f['kind']} of {f['node']} pid {f['pid']}: exited but not as a death while vigil was down: {exited[0][6]}")
            if f["kind"].startswith("SIGSTOP") and not any(e[2] in ("watchdog", "terminate", "kill") for e in after):
                missing.append(f"{f['kind']} of {f['node']} pid {f['pid']}: no watchdog or terminate record")
            if f["kind"] == "damage":
                later = [e for e in events if e[1] >= f["at"]]
                if not any(e[2] == "report" and e[3] == "db-watchdog" and "db-restore" in e[6] for e in later):
                    missing.append(f"damage ({f['how']}): no db-restore report after it")
        explained = set(f["pid"] for f in self.faults)
        unexplained = []
        for pid, es in by_pid.items():
            for i, e in enumerate(es):
                if e[2] != "exited" or pid in explained:
                    continue
                earlier = [x for x in es[:i] if x[2] in ("terminate", "kill", "watchdog", "handoff", "ready_timeout", "protocol_violation")]
                if earlier or "not adopted" in e[6] or "stopped:" in e[6]:
                    continue
                if e[3] == "db-watchdog" and re.match(r"exit 65\b", e[6]):
                    continue  # a check found the damage
                unexplained.append(f"{e[3]} pid {pid}: {e[6][:150]}")
        self.check(not missing, f"every fault is journaled ({sum(1 for f in self.faults if not f['kind'].startswith('vigil'))} faults)"
                   + "".join(f"\n      {m}" for m in missing[:8]))
        self.check(not unexplained, "every exit in the journal is explained by a fault or a decision of vigil's"
                   + "".join(f"\n      {u}" for u in unexplained[:8]))

        # Re-adoption: same pids.
        bad, adopted, expected = [], 0, 0
        cut_points = [r["at"] for r in self.restarts] + [float("inf")]
        for i, r in enumerate(self.restarts):
            for pid, node in r["expect"].items():
                es = [e for e in by_pid.get(pid, []) if r["at"] <= e[1] < cut_points[i + 1]]
                expected += 1
                if any(e[2] == "adopted" for e in es):
                    adopted += 1
                    if r["excused"].get(pid, "").startswith("SIGSTOPped"):
                        bad.append(f"vigil restart {i + 1}: {node} pid {pid} was hung (SIGSTOP) and the next vigil adopted it")
                    continue
                why = next((e[6] for e in es if e[2] in ("terminate", "exited")), "no record of it")
                if pid in r["excused"]:
                    continue
                if "died while no vigil was running" in why and r["excused"]:
                    continue  # a sibling the runner killed meanwhile: its strategy stops this one
                if ("did not reconnect" in why or "ended while" in why) and r.get("twice"):
                    continue  # a second SIGKILL in the middle of adopting
                bad.append(f"vigil restart {i + 1}: {node} pid {pid}: {why[:160]}")
        self.check(not bad, f"re-adoption: {adopted} of {expected} workers READY at {len(self.restarts)} vigil kills "
                   "taken back with the same pid, the rest for a reason the runner caused"
                   + "".join(f"\n      {b}" for b in bad[:8]))
        return runs

    def check_gone(self, runs):
        for _, _, pid, started, _, _, _ in runs:
            if pid:
                self.seen.setdefault(pid, (None, "?"))
        time.sleep(0.3)
        self.sample()
        alive, zombies = [], []
        for pid, (start, name) in self.seen.items():
            st = proc_stat(pid)
            if st is None:
                continue
            if start is not None and st[3] != start:
                continue  # the pid belongs to someone else now
            env = proc_environ(pid)
            if start is None and (env is None or env.get("VIGIL_RUNTIME_DIR") != self.run_dir):
                continue
            (zombies if st[0] == "Z" else alive).append(f"{name}:{pid}")
        strays = []
        for e in os.listdir("/proc"):
            if e.isdigit() and int(e) != os.getpid():
                env = proc_environ(int(e))
                if env and env.get("VIGIL_RUNTIME_DIR") == self.run_dir:
                    strays.append(f"{env.get('VIGIL_NAME', '?')}:{e}")
        self.check(not alive and not zombies and not strays,
                   f"no orphan or zombie: {len(self.seen)} pids of the tree seen, none left"
                   + (f"; alive {alive[:10]}" if alive else "") + (f"; zombies {zombies[:10]}" if zombies else "")
                   + (f"; processes with this runtime dir {strays[:10]}" if strays else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=seconds, default=seconds("10m"), help="how long to inject faults (default 10m)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock; printed)")
    ap.add_argument("--build", choices=["debug", "release"], default="release", help="which build of vigil (default release)")
    ap.add_argument("--topology", default=f"{ROOT}/Topology/trading.yaml", help="the tree (default Topology/trading.yaml)")
    ap.add_argument("--no-corrupt-db", action="store_true", help="do not damage the trading database")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    s = Soak(args, seed)
    if not os.access(s.vigil, os.X_OK):
        sys.exit(f"chaos: {s.vigil} is missing: build it first with `swift build -c {args.build}`")
    # Orphans of a SIGKILLed vigil come to this process (as they would to systemd), which reaps them.
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    print(f"chaos: seed {seed}, {args.duration:.0f}s, vigil {s.vigil}, topology {s.topology_path}, directory {s.dir}", flush=True)
    started = time.monotonic()
    code = None
    try:
        s.start_vigil()
        s.wait_status()
        if s.heal(timeout=60) is None:
            raise RuntimeError("the tree did not come up")
        s.soak()
        print(f"chaos: faults for {time.monotonic() - started:.0f}s: "
              + ", ".join(f"{k} {v}" for k, v in sorted(s.counts.items()) if v), flush=True)
        healed = s.heal()
        s.check(healed is not None, "the tree is healthy at the end: every worker READY, no safe mode"
                + (f" ({healed:.1f}s after the last fault)" if healed is not None else
                   ": " + ", ".join([f"{n} {s.nodes.get(n, {}).get('state')}" for n in s.topo.workers if not s.ready(n)]
                                    + [f"{n} (pid {p}) hung by the runner and never replaced" for n, p in s.hung.items()]
                                    + [f"{n} still handing off" for n in s.handing_off]
                                    + ([f"safe mode {s.safe_mode}"] if s.safe_mode else []))))
        s.check(True, f"safe mode entered and turned off by the runner {len(s.safe_modes)} times"
                + "".join(f"\n      {m[:200]}" for m in s.safe_modes[:5]))
        s.check_books()
    except Exception as e:  # a step that could not be carried out is a failure, with why
        s.check(False, f"chaos step failed: {e}")
    finally:
        if s.process and s.process.poll() is None:
            s.process.send_signal(signal.SIGINT)
            try:
                code = s.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                s.process.kill()
                s.process.wait()
        elif s.process:
            code = s.process.returncode
    s.check(code == 0, f"vigil exited {code} on SIGINT")
    try:
        runs = s.check_journal()
    except Exception as e:
        s.check(False, f"journal checks failed: {e}")
        runs = []
    s.check_gone(runs)
    # Whatever of this tree is still alive after a failure: stopped (only pids of this tree).
    for pid, (start, _) in s.seen.items():
        st = proc_stat(pid)
        env = proc_environ(pid) if st else None
        if st and env and env.get("VIGIL_RUNTIME_DIR") == s.run_dir:
            os.kill(pid, signal.SIGKILL)
    print(f"chaos: {time.monotonic() - started:.0f}s in all; " + ", ".join(f"{k} {v}" for k, v in sorted(s.counts.items()) if v))
    if s.failures:
        print(f"chaos: FAILED ({len(s.failures)}); seed {seed}; vigil log and state kept in {s.dir}")
    else:
        shutil.rmtree(s.dir, ignore_errors=True)
        print(f"chaos: PASSED; seed {seed}")
    sys.exit(1 if s.failures else 0)


if __name__ == "__main__":
    main()
