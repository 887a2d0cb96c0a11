"""What the benchmarks share: the study's params and -p overrides as their one input, the
machine's state beside every figure, and a JSON result printed and optionally written."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    import lorastudy  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "lib"))

from lorastudy.study.load import load_config, parse_overrides  # noqa: E402
from lorastudy.study.schema import ConfigError, StudyConfig  # noqa: E402
from lorastudy.util.files import atomic_write_json  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_times() -> dict[str, float] | None:
    """The machine's CPU seconds so far by kind (Linux /proc/stat), for `steal_share`."""
    try:
        fields = Path("/proc/stat").read_text().split("\n")[0].split()[1:9]
    except OSError:
        return None
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return {name: int(value) / os.sysconf("SC_CLK_TCK") for name, value in zip(names, fields)}


def steal_share(before: dict[str, float] | None, after: dict[str, float] | None) -> float | None:
    """The share of the machine's CPU time between two cpu_times() that a virtual machine's host
    took for others (steal): a run with much of it had fewer cores than it counts."""
    if before is None or after is None:
        return None
    total = sum(after.values()) - sum(before.values())
    return (after["steal"] - before["steal"]) / total if total > 0 else None


def matmul_gflops(size: int = 1024, repeats: int = 20) -> float:
    """The machine's float32 matmul speed now, in GFLOP/s (torch, all its threads): a probe beside
    a run's time, on a virtual machine whose speed drifts (this project's: 114 to 199 in half an hour)."""
    import time

    import torch

    a = torch.randn(size, size)
    a @ a
    start = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def versions(*packages: str) -> dict:
    out = {"python": platform.python_version()}
    for package in packages or ("torch", "transformers", "peft", "bitsandbytes", "accelerate"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def study_parser(description: str) -> argparse.ArgumentParser:
    """An entry point like `lorastudy run`: a params file and -p overrides, then the benchmark's own options."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("params", type=Path, help="a study's params file, e.g. params/smoke.yaml")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="override a parameter")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    return parser


def load_study(parser: argparse.ArgumentParser, args: argparse.Namespace, problems: list[str]) -> StudyConfig | None:
    """The validated study, or None with its problems added (the caller reports them all at once)."""
    args.overrides = parse_overrides(args.param, problems)
    try:
        return load_config(args.params, args.overrides, root=ROOT)
    except ConfigError as exc:
        problems += exc.problems
        return None


def needs_bench_extra(module: str, name: str, problems: list[str]) -> None:
    """Add a problem where a peer tool of the bench extra is not installed (the caller reports
    every problem at once, before any model loads)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        problems.append(f"{name} is not installed: pip install -e '.[bench]'")


def emit(report: dict, path: Path | None) -> None:
    print(json.dumps(report, indent=2, default=str), flush=True)
    if path is not None:
        atomic_write_json(path, report)
        log(f"wrote {path}")
