#!/usr/bin/env python3
"""Medians of perf/cluster-results.csv as a Markdown table: one row per figure and metric, one
column per system, and the runs each median is taken over.

    table.py [perf/cluster-results.csv]"""

import csv
import statistics
import sys
from collections import defaultdict

SYSTEMS = ["weir-r3", "weir-r3-tls", "weir-single", "nats-r3"]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "perf/cluster-results.csv"
    values = defaultdict(list)
    order = []
    with open(path) as f:
        for r in csv.DictReader(f):
            key = (r["figure"], r["metric"])
            if key not in order:
                order.append(key)
            values[key + (r["system"],)].append(float(r["value"]))
    systems = [s for s in SYSTEMS if any(k[2] == s for k in values)]
    print("| figure | metric | " + " | ".join(systems) + " | r3 / single |")
    print("| --- | --- |" + " ---: |" * (len(systems) + 1))
    for fig, metric in order:
        cells, med = [], {}
        for s in systems:
            v = values.get((fig, metric, s))
            if v:
                med[s] = statistics.median(v)
                spread = " (%s–%s, n=%d)" % (fmt(min(v)), fmt(max(v)), len(v)) if len(v) > 1 else ""
                cells.append(fmt(med[s]) + spread)
            else:
                cells.append("")
        ratio = ""
        if med.get("weir-single"):
            ratio = "%.2f" % (med.get("weir-r3", 0) / med["weir-single"])
        print("| %s | %s | %s | %s |" % (fig, metric, " | ".join(cells), ratio))


def fmt(x):
    if abs(x) >= 1000:
        return "{:,.0f}".format(x)
    if abs(x) >= 10:
        return "%.1f" % x
    return "%.3g" % x


if __name__ == "__main__":
    main()
