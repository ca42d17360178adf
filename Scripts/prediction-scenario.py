#!/usr/bin/env python3
"""Leak scenarios for the failure predictor: its precision and recall, measured.

Runs a real `vigil up` (private runtime and state directories) on a tree of SDK test
workers: some leak at a steady rate toward their memory_limit (TW_LEAK_KIB_PER_S), some
keep a noisy but flat RSS (TW_NOISE_KIB), one is quiet, and ml-predictor watches them all
(sample_interval 200ms). Twice:

  watch    the predictor only journals its forecasts (--advise watch), so the leakers hit
           their limits, are killed (memory_limit) and restarted, again and again: each
           forecast is checked against a real failure. This measures the models.
  restart  the predictor advises restarts: vigil hands the leakers off before their
           limit. Every forecast forestalled, and no memory-limit kill, is the goal.

Then prints Scripts/prediction-report.py's numbers for each run, and exits 1 if the
restart run let a leaker reach its limit or either run forecast a failure of a flat worker.

    Scripts/prediction-scenario.py [--seconds 60] [--build debug|release]
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Scripts"))
import importlib.util

spec = importlib.util.spec_from_file_location("prediction_report", os.path.join(ROOT, "Scripts", "prediction-report.py"))
prediction_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prediction_report)

LEAKERS = {"leak-2m": 2048, "leak-4m": 4096, "leak-8m": 8192}
FLAT = {"flat-4m": 4096, "flat-8m": 8192, "flat-16m": 16384, "quiet": 0}


def topology(products, advise):
    lines = [
        "name: prediction-scenario",
        "sample_interval: 200ms",
        "heartbeat_interval: 200ms",
        "max_restarts: 1000",
        "period: 1m",
        "defaults:",
        "  backoff: {initial: 100ms, max: 1s}",
        "children:",
        "  - worker: predictor",
        f"    argv: [{products}/ml-predictor, --horizon, 10s, --advise, {advise}]",
        "    role: predictor",
    ]
    for name, rate in LEAKERS.items():
        lines += [f"  - worker: {name}", f"    argv: [{products}/vigil-sdk-test-worker]",
                  f"    env: {{TW_LEAK_KIB_PER_S: \"{rate}\"}}", "    memory_limit: 64MiB", "    handoff: overlap"]
    for name, noise in FLAT.items():
        lines += [f"  - worker: {name}", f"    argv: [{products}/vigil-sdk-test-worker]",
                  f"    env: {{TW_NOISE_KIB: \"{noise}\"}}", "    memory_limit: 64MiB"]
    return "\n".join(lines) + "\n"


def run(products, advise, seconds):
    d = tempfile.mkdtemp(prefix="vigil-prediction-")
    try:
        path = os.path.join(d, "topology.yaml")
        with open(path, "w") as f:
            f.write(topology(products, advise))
        env = dict(os.environ, VIGIL_RUNTIME_DIR=os.path.join(d, "run"), VIGIL_STATE_DIR=os.path.join(d, "state"))
        env.pop("NOTIFY_SOCKET", None)
        with open(os.path.join(d, "vigil.log"), "w") as log:
            p = subprocess.Popen([os.path.join(products, "vigil"), "up", path], env=env, stdout=log, stderr=log)
            deadline = time.time() + seconds
            while time.time() < deadline and p.poll() is None:
                time.sleep(0.5)
            p.send_signal(signal.SIGINT)
            rc = p.wait(timeout=30)
        if rc != 0:
            print(f"vigil exited {rc}; its log:\n" + open(os.path.join(d, "vigil.log")).read()[-4000:])
            sys.exit(1)
        rows = prediction_report.load(os.path.join(d, "state"))
        import sqlite3
        con = sqlite3.connect(os.path.join(d, "state", "journal.db"))
        kills = Counter_of(con.execute("SELECT node FROM events WHERE kind = 'memory_limit'").fetchall())
        return prediction_report.report(rows), kills
    finally:
        if os.environ.get("KEEP"): print("kept", d)
        else: shutil.rmtree(d, ignore_errors=True)


def Counter_of(rows):
    from collections import Counter
    return Counter(r[0] for r in rows)


def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--seconds", type=float, default=60)
    a.add_argument("--build", default="debug", choices=["debug", "release"])
    args = a.parse_args()
    products = os.path.join(ROOT, ".build", args.build)
    if not os.access(os.path.join(products, "vigil"), os.X_OK):
        sys.exit(f"build first: swift build{' -c release' if args.build == 'release' else ''}")
    ok = True
    for advise in ["watch", "restart"]:
        r, kills = run(products, advise, args.seconds)
        print(f"== --advise {advise}, {args.seconds:.0f}s: leakers {', '.join(f'{k} {v} KiB/s' for k, v in LEAKERS.items())}; "
              f"flat {', '.join(FLAT)}; memory_limit 64MiB; horizon 10s")
        prediction_report.show(r)
        print(f"memory-limit kills: {dict(kills) or 'none'}")
        flat_forecasts = [w for w in r["forecast_workers"] if w in FLAT]
        if flat_forecasts:
            ok = False
            print(f"FAIL: forecasts on flat workers: {flat_forecasts}")
        if advise == "restart" and any(k in LEAKERS for k in kills):
            ok = False
            print("FAIL: a leaker reached its limit although restarts were advised")
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
