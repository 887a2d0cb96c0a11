#!/usr/bin/env python3
"""Whether two runs of a study gave the same results: metrics.csv, comparisons.csv and
resources.csv compared cell by cell, leaving out what a machine's load moves (times, throughput,
latency, memory). For a change that should not change behaviour (a refactoring, say): run the
study before and after it into two roots, then

    python scripts/compare_results.py BEFORE_ROOT/runs/smoke/results AFTER_ROOT/runs/smoke/results

Exits 1 and names every differing cell where they differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

FILES = ("metrics.csv", "comparisons.csv", "resources.csv")
# What load and the machine move between two runs of the same code; and the adapter folder's
# size, whose config names the study's folder (a longer root path is a few bytes more).
MEASURED = ("wall_s", "tokens_per_s", "latency", "ttft", "tpot", "peak", "memory", "rss", "items_per_s", "_mb")
KEPT = {"memory_kind", "latency_tokens", "weights_mb", "weights_after_prepare_mb", "weights_with_adapters_mb"}


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    drop = [c for c in frame.columns if c not in KEPT and any(m in c for m in MEASURED)]
    return frame.drop(columns=drop)


def differences(before: Path, after: Path) -> list[str]:
    found = []
    for name in FILES:
        a, b = comparable(pd.read_csv(before / name)), comparable(pd.read_csv(after / name))
        if list(a.columns) != list(b.columns) or len(a) != len(b):
            found.append(
                f"{name}: columns or rows differ ({list(a.columns)} x {len(a)} vs {list(b.columns)} x {len(b)})"
            )
            continue
        for column in a.columns:
            for row, (x, y) in enumerate(zip(a[column], b[column])):
                same = (pd.isna(x) and pd.isna(y)) or x == y
                if not same:
                    found.append(f"{name} row {row} {column}: {x!r} then {y!r}")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    found = differences(Path(argv[0]), Path(argv[1]))
    print("\n".join(found) if found else f"the same results: {', '.join(FILES)} (times and memory left out)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
