#!/usr/bin/env python3
"""Parses Prometheus text exposition with the prometheus-client package's own parser and
prints what it found as JSON, for vigil's integration tests to assert on.

    parse-metrics.py URL    fetch URL (GET), check the Content-Type, parse the body
    parse-metrics.py -      parse stdin (the output of `vigil metrics`)

Prints {"content_type": ..., "families": [{"name", "type", "help", "samples": [{"name",
"labels", "value"}]}]}. Exits 1 with the parser's error if the text is not valid."""
import json
import sys
import urllib.request

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit("parse-metrics.py: the prometheus-client Python package is missing; run Scripts/setup.sh")

source = sys.argv[1] if len(sys.argv) > 1 else "-"
content_type = None
if source == "-":
    text = sys.stdin.read()
else:
    with urllib.request.urlopen(source, timeout=10) as response:
        content_type = response.headers.get("Content-Type")
        text = response.read().decode("utf-8")

try:
    families = [
        {"name": f.name, "type": f.type, "help": f.documentation,
         "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]}
        for f in text_string_to_metric_families(text)
    ]
except Exception as e:  # the parser raises ValueError (and others) on malformed text
    sys.exit(f"parse-metrics.py: not valid Prometheus text: {e}")
json.dump({"content_type": content_type, "families": families}, sys.stdout)
