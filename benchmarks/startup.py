"""Start-up time of the command, the whole process: what a user waits for on every run.

Times ``softmax-check --version`` (no NumPy needed) and a JSON run on the bundled
``sample_logits/seed.csv`` (three samples: nearly all of it is start-up), each as a fresh
subprocess, and prints the median and the spread of N runs. ``--python`` picks the
interpreter (another virtual environment, e.g. one with a newer Typer); the package is taken
from this checkout through PYTHONPATH either way.

    python benchmarks/startup.py --runs 15
    python benchmarks/startup.py --python /tmp/newtyper/bin/python --runs 15
    python benchmarks/startup.py --importtime   # the slowest imports of a JSON run
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "sample_logits" / "seed.csv"

CASES = {
    "--version": ["--version"],
    "json run (seed.csv)": [str(SEED), "--format", "json", "--no-config"],
    "table run (seed.csv)": [str(SEED), "--no-config"],
}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}


def _time(python: str, args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [python, "-m", "softmax_cli", *args],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - started


def _versions(python: str) -> str:
    code = "import typer, sys; print(f'Python {sys.version.split()[0]}, Typer {typer.__version__}')"
    return subprocess.run(
        [python, "-c", code], env=_env(), capture_output=True, text=True, check=True
    ).stdout.strip()


def _importtime(python: str, top: int) -> None:
    """The modules whose import (with what they import) took longest, from ``-X importtime``."""
    result = subprocess.run(
        [python, "-X", "importtime", "-m", "softmax_cli", *CASES["json run (seed.csv)"]],
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, cumulative, name = line.split("|")
        rows.append((int(cumulative), int(own.split(":")[1]), name.rstrip()))
    for cumulative, own, name in sorted(rows, reverse=True)[:top]:
        print(f"  {cumulative / 1000:8.1f} ms cumulative {own / 1000:7.1f} ms own  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter to run")
    parser.add_argument("--runs", type=int, default=11, help="runs per case (median)")
    parser.add_argument("--importtime", action="store_true", help="list the slowest imports")
    parser.add_argument("--top", type=int, default=25, help="with --importtime: how many")
    options = parser.parse_args()
    print(f"{_versions(options.python)} ({options.python}), median of {options.runs} runs")
    if options.importtime:
        _importtime(options.python, options.top)
        return
    for label, args in CASES.items():
        _time(options.python, args)  # warm the file cache
        times = [_time(options.python, args) for _ in range(options.runs)]
        print(
            f"  {label:22} median {statistics.median(times) * 1000:7.0f} ms"
            f"   min {min(times) * 1000:6.0f} ms   max {max(times) * 1000:6.0f} ms"
        )


if __name__ == "__main__":
    main()
