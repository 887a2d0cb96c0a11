#!/usr/bin/env python3
"""A folder of wheels to install lorastudy on a machine without a network.

Run it on a machine that reaches the package index, for the target's Python and platform:

    python scripts/wheelhouse.py --python 3.12 --platform manylinux_2_28_x86_64 --out wheels
    python scripts/wheelhouse.py --python 3.12 --exclude-from benchmarks/device-packages.txt \\
        --max-mb 60 --out .whl               # only what a GPU image lacks, to carry it there

pip resolves lorastudy's dependencies for the target (`pip install --dry-run --report`,
binary wheels only); packages the target already has (--exclude-from: one name or pattern
per line, e.g. torch and nvidia-*, which a GPU machine brings with its driver) are left out;
the rest are downloaded without further resolution. Then, on the target:

    make install WHEELS=wheels             # pip install --no-index --find-links wheels
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Linux platforms pip matches exactly: a wheel tagged with any of them is taken.
LINUX_PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (39, 35, 34, 31, 28, 27, 24, 17)] + [
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve(requirements: list[str], python: str, platforms: list[str]) -> list[dict]:
    """pip's resolution for the target: name, version and wheel URL of every package."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--ignore-installed",
            "--only-binary=:all:",
            "--python-version",
            python,
            "--target",
            str(Path(tmp) / "t"),
            "--report",
            str(report),
            *[f"--platform={p}" for p in platforms],
            *requirements,
        ]
        subprocess.run(command, check=True)
        items = json.loads(report.read_text())["install"]
    return [
        {"name": i["metadata"]["name"], "version": i["metadata"]["version"], "url": i["download_info"]["url"]}
        for i in items
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", required=True, help="the target's Python version, e.g. 3.12")
    parser.add_argument("--platform", action="append", help="wheel platform tags (default: x86-64 manylinux)")
    parser.add_argument("--extras", default="", help="lorastudy extras to include, e.g. dev")
    parser.add_argument("--exclude-from", type=Path, help="a file of package names the target already has")
    parser.add_argument("--max-mb", type=float, help="fail if the wheels take more than this")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the wheels to")
    args = parser.parse_args(argv)
    excluded = {"lorastudy"}
    if args.exclude_from:
        lines = (line.split("#")[0].strip() for line in args.exclude_from.read_text().splitlines())
        excluded |= {canonical(line) for line in lines if line}
    target = f"{ROOT}[{args.extras}]" if args.extras else str(ROOT)
    resolved = resolve([target], args.python, args.platform or LINUX_PLATFORMS)
    packages = [p for p in resolved if not any(fnmatch.fnmatch(canonical(p["name"]), x) for x in excluded)]
    args.out.mkdir(parents=True, exist_ok=True)
    for p in packages:
        # The wheel named by pip's own resolution, fetched as a file: no tag check against this interpreter.
        urllib.request.urlretrieve(p["url"], args.out / p["url"].rsplit("/", 1)[1].split("#")[0])
    size = sum(f.stat().st_size for f in args.out.glob("*.whl")) / 2**20
    print(
        f"{len(packages)} wheels, {size:,.1f} MB in {args.out}: "
        + ", ".join(f"{p['name']}=={p['version']}" for p in packages)
    )
    if args.max_mb is not None and size > args.max_mb:
        print(f"error: {size:,.1f} MB is more than --max-mb {args.max_mb}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
