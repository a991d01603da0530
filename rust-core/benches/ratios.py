#!/usr/bin/env python3
"""Ratios of the storage benches against their targets, from criterion's output.

Reads every `<group>/<member>/<param>/new/{benchmark,estimates}.json` under the
criterion directory ($CARGO_TARGET_DIR/criterion, else target/criterion) and
prints, as markdown, each member's throughput (from criterion's median time
per iteration) and the ratios the targets are stated in: MantisDB over the raw
SkipMap, 2 threads over 1, 64 writers over 1.

    ratios.py                          table of the last run
    ratios.py --save run1.json         ... and keep its figures
    ratios.py --median run*.json       medians over saved runs

Ratios are truncated, never rounded up, so a printed figure never passes a
target the measurement missed.
"""

import argparse
import json
import math
import os
import statistics
import sys
from pathlib import Path

# (group, numerator member, denominator member, target, what it checks)
TARGETS = [
    ("get_cached", "mantisdb/1t", "skipmap/1t", 0.8, "get, cached, vs SkipMap"),
    ("get_cached", "mantisdb/2t", "skipmap/2t", 0.8, "get, cached, 2 threads, vs SkipMap"),
    ("get_inline", "mantisdb/1t", "skipmap/1t", 0.8, "get, inline, vs SkipMap"),
    ("get_inline", "mantisdb/2t", "skipmap/2t", 0.8, "get, inline, 2 threads, vs SkipMap"),
    ("get_disk", "mantisdb/1t", "skipmap/1t", 0.8, "get, from disk, vs SkipMap"),
    ("get_disk", "mantisdb/2t", "skipmap/2t", 0.8, "get, from disk, 2 threads, vs SkipMap"),
    ("put", "mantisdb/1t", "skipmap/1t", 0.5, "put, vs SkipMap"),
    ("put", "mantisdb/2t", "skipmap/2t", 0.5, "put, 2 threads, vs SkipMap"),
    ("batch_put", "mantisdb/1t", "skipmap/1t", 0.5, "batch put, vs SkipMap"),
    ("prefix_scan", "mantisdb/1t", "skipmap/1t", 0.5, "prefix scan, vs SkipMap"),
    ("get_cached", "mantisdb/2t", "mantisdb/1t", 1.7, "get, cached, 2 threads vs 1"),
    ("get_inline", "mantisdb/2t", "mantisdb/1t", 1.7, "get, inline, 2 threads vs 1"),
    ("get_disk", "mantisdb/2t", "mantisdb/1t", 1.7, "get, from disk, 2 threads vs 1"),
    ("put", "mantisdb/2t", "mantisdb/1t", 1.7, "put, 2 threads vs 1"),
    ("group_commit", "mantisdb/64w", "mantisdb/1w", 20.0, "group commit, 64 writers vs 1"),
]

# Context printed beside the targets: the baseline's own scaling (the
# machine's ceiling) and one writer against the device's bare fdatasync rate.
REFERENCES = [
    ("get_cached", "skipmap/2t", "skipmap/1t", "SkipMap get, 2 threads vs 1"),
    ("put", "skipmap/2t", "skipmap/1t", "SkipMap put, 2 threads vs 1"),
    ("group_commit", "mantisdb/1w", "fdatasync/1w", "1 writer vs bare write+fdatasync"),
]


def criterion_dir(arg):
    if arg:
        return Path(arg)
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        return Path(target) / "criterion"
    here = Path(__file__).resolve().parent.parent / "target" / "criterion"
    return here if here.is_dir() else Path("target/criterion")


def load(root):
    """{group: {member/param: elements per second}} of the last run."""
    figures = {}
    for bench in sorted(root.glob("**/new/benchmark.json")):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())
        elements = (meta.get("throughput") or {}).get("Elements")
        if not elements:
            continue
        member = "/".join(x for x in (meta.get("function_id"), meta.get("value_str")) if x)
        ns = est["median"]["point_estimate"]
        figures.setdefault(meta["group_id"], {})[member] = elements * 1e9 / ns
    return figures


def trunc(x, digits):
    f = 10**digits
    return math.floor(x * f) / f


def human(rate):
    for unit, scale in (("M", 1e6), ("K", 1e3)):
        if rate >= scale:
            return f"{trunc(rate / scale, 3):.3f} {unit}/s"
    return f"{trunc(rate, 1):.1f} /s"


def ratio(figures, group, num, den):
    g = figures.get(group, {})
    if num in g and den in g:
        return g[num] / g[den]
    return None


def print_tables(runs, title):
    """Prints the members and the checks; with several runs, their medians."""
    print(f"### {title}\n")
    groups = {}
    for run in runs:
        for g, members in run.items():
            for m in members:
                groups.setdefault(g, set()).add(m)
    print("| group | member | throughput (median) | vs skipmap |")
    print("|---|---|---:|---:|")
    for g in sorted(groups):
        for m in sorted(groups[g]):
            rates = [r[g][m] for r in runs if m in r.get(g, {})]
            base = "skipmap/" + m.split("/", 1)[1] if "/" in m else None
            vs = [r[g][m] / r[g][base] for r in runs if m in r.get(g, {}) and base in r.get(g, {})]
            vs_s = f"{trunc(statistics.median(vs), 3):.3f}x" if vs and not m.startswith("skipmap/") else ""
            print(f"| {g} | {m} | {human(statistics.median(rates))} | {vs_s} |")
    print()
    print("| check | ratio (median) | per run | target | result |")
    print("|---|---:|---|---:|---|")
    missed = 0
    for g, num, den, target, what in TARGETS:
        rs = [x for x in (ratio(r, g, num, den) for r in runs) if x is not None]
        if not rs:
            continue
        med = statistics.median(rs)
        ok = med >= target
        missed += not ok
        per = ", ".join(f"{trunc(x, 3):.3f}" for x in rs)
        print(f"| {what} (`{g}` {num} / {den}) | {trunc(med, 3):.3f}x | {per} | >= {target}x | {'met' if ok else 'MISSED'} |")
    for g, num, den, what in REFERENCES:
        rs = [x for x in (ratio(r, g, num, den) for r in runs) if x is not None]
        if rs:
            per = ", ".join(f"{trunc(x, 3):.3f}" for x in rs)
            print(f"| {what} (`{g}` {num} / {den}) | {trunc(statistics.median(rs), 3):.3f}x | {per} | (reference) | |")
    print()
    return missed


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", help="criterion output directory")
    p.add_argument("--save", metavar="FILE", help="also write this run's figures as JSON")
    p.add_argument("--median", nargs="+", metavar="RUN", help="saved runs to take medians over")
    args = p.parse_args()
    if args.median:
        runs = [json.loads(Path(f).read_text()) for f in args.median]
        print_tables(runs, f"Medians over {len(runs)} runs")
        return 0
    root = criterion_dir(args.dir)
    figures = load(root)
    if not figures:
        print(f"no criterion results under {root}", file=sys.stderr)
        return 1
    if args.save:
        Path(args.save).write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    print_tables([figures], f"Run read from {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
