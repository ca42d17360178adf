#!/usr/bin/env python3
"""Precision and recall of the failure predictor, from vigil's journal.

vigil journals every forecast of the worker with role predictor as a `prediction` record
(`id=N model=M action=A forecast=Fs horizon=Hs: reason; what vigil did`) and settles each
exactly once with another (`outcome=confirmed|refuted|missed ... how=...`):

  confirmed  how=failed       the worker failed within the horizon, as forecast
  confirmed  how=forestalled  a planned restart the forecast set off replaced it first
  refuted    how=expired      the horizon passed with neither (a false alarm)
  missed     how=unforecast   a worker failed with no forecast open

    precision = confirmed / (confirmed + refuted)
    recall    = confirmed / (confirmed + missed)

A forestalled forecast cannot be checked against the failure it prevented: to measure the
models themselves, run the predictor with `--advise watch` (see
Scripts/prediction-scenario.py). Misses are shown for every failure and for memory-limit
kills alone (a random kill -9 is nothing a model could see coming).

    Scripts/prediction-report.py STATE_DIR|JOURNAL.db [--json]
"""
import argparse
import json
import os
import re
import sqlite3
import sys
from collections import Counter, defaultdict


def load(path):
    db = os.path.join(path, "journal.db") if os.path.isdir(path) else path
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    return con.execute("SELECT node, detail FROM events WHERE kind = 'prediction' ORDER BY id").fetchall()


def fields(detail):
    head = detail.split(":", 1)[0]
    return dict(f.split("=", 1) for f in head.split() if "=" in f)


def ratio(a, b):
    return None if b == 0 else a / b


def report(rows):
    forecasts, outcomes = {}, []
    for node, detail in rows:
        f = fields(detail)
        if "outcome" in f:
            f["reason"] = detail.split(":", 1)[1].strip() if ":" in detail else ""
            f["node"] = node
            outcomes.append(f)
        elif "id" in f and "model" in f:
            forecasts[f["id"]] = dict(f, node=node)
    settled = {o["id"] for o in outcomes if "id" in o}
    by_model = defaultdict(Counter)
    total = Counter()
    for o in outcomes:
        key = o["outcome"] if o["outcome"] != "confirmed" else f"confirmed_{o.get('how', '?')}"
        if o["outcome"] == "missed":
            total["missed"] += 1
            if o["reason"].startswith("killed for exceeding memory_limit"):
                total["missed_memory_limit"] += 1
            continue
        by_model[o.get("model", "?")][key] += 1
        total[key] += 1
    confirmed = total["confirmed_failed"] + total["confirmed_forestalled"]
    result = {
        "forecasts": len(forecasts),
        "unsettled": len(set(forecasts) - settled),
        "confirmed_failed": total["confirmed_failed"],
        "confirmed_forestalled": total["confirmed_forestalled"],
        "refuted": total["refuted"],
        "missed": total["missed"],
        "missed_memory_limit": total["missed_memory_limit"],
        "precision": ratio(confirmed, confirmed + total["refuted"]),
        "recall": ratio(confirmed, confirmed + total["missed"]),
        "recall_memory_limit": ratio(confirmed, confirmed + total["missed_memory_limit"]),
        "by_model": {m: dict(c) for m, c in sorted(by_model.items())},
        "forecast_workers": sorted({f["node"] for f in forecasts.values()}),
    }
    return result


def show(r):
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f}%"
    print(f"forecasts {r['forecasts']} ({r['unsettled']} not settled yet), on: {', '.join(r['forecast_workers']) or '-'}")
    print(f"confirmed {r['confirmed_failed']} by failure + {r['confirmed_forestalled']} forestalled, "
          f"refuted {r['refuted']}, missed {r['missed']} (of which memory-limit kills nobody forecast: {r['missed_memory_limit']})")
    for m, c in r["by_model"].items():
        print(f"  {m}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    print(f"precision {pct(r['precision'])}  recall {pct(r['recall'])}  "
          f"recall on memory-limit failures {pct(r['recall_memory_limit'])}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("journal", help="vigil's state directory, or its journal.db")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    r = report(load(a.journal))
    print(json.dumps(r, indent=2)) if a.json else show(r)


if __name__ == "__main__":
    sys.exit(main())
