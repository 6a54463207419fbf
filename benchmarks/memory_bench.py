"""Peak working memory of whole CLI runs, per sample and per listed row (issue 15.4).

    python benchmarks/memory_bench.py                      # 100 M rows, 10 M flagged rows
    python benchmarks/memory_bench.py --rows 10000000 --flagged 1000000   # quicker

(a) ``--rows`` x 2 classes float32 (800 MB at 100 M rows) with int64 targets, memory-mapped
    and checked with ``--format json -o /dev/null``: nothing is flagged, so what grows with
    the dump is the per-sample state (the report's columns and masks).
(b) ``--flagged`` x 2 float32 rows that are all flagged, ``--format json -o /dev/null``: the
    report streams its rows, so what grows is the per-sample state plus the listing order.

Each run is a subprocess whose /proc/<pid>/status is read every few milliseconds: the
peak RssAnon is the run's own memory (the memory-mapped file's pages are RssFile, page
cache shared with the kernel). A 1,000-row run of the same kind gives the fixed cost
(interpreter, NumPy, the block buffers), subtracted before dividing by the rows.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from proc_memory import run_sampled

HERE = Path(__file__).resolve().parent


def make_dump(directory: Path, rows: int, flagged: bool) -> tuple[Path, Path]:
    """Logits and targets written in pieces, never a whole float64 or int64 copy."""
    logits = directory / f"{'flagged' if flagged else 'clean'}_{rows}.npy"
    targets = directory / f"targets_{rows}.npy"
    rng = np.random.default_rng(0)
    x = np.lib.format.open_memmap(logits, "w+", np.float32, (rows, 2))
    t = np.lib.format.open_memmap(targets, "w+", np.int64, (rows,))
    piece = 1 << 22
    for start in range(0, rows, piece):
        stop = min(rows, start + piece)
        block = rng.standard_normal((stop - start, 2), dtype=np.float32)
        if flagged:
            block *= 100.0  # exp overflows in float32: the naive path breaks on every row
            block[:, 0] = 100.0
        x[start:stop] = block
        t[start:stop] = rng.integers(0, 2, stop - start)
    x.flush()
    t.flush()
    del x, t
    return logits, targets


def peak(logits: Path, targets: Path) -> tuple[float, dict[str, int]]:
    command = [sys.executable, "-m", "softmax_cli", str(logits), "--targets", str(targets),
               "--format", "json", "-o", os.devnull, "--fail-on", "none"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    code, elapsed, found = run_sampled(command, env)
    if code not in (0, 1):
        sys.exit(f"{command} exited {code}")
    return elapsed, found


def measure(directory: Path, rows: int, flagged: bool, what: str) -> None:
    base = peak(*make_dump(directory, 1000, flagged))[1]["RssAnon"]
    logits, targets = make_dump(directory, rows, flagged)
    elapsed, found = peak(logits, targets)
    grown = (found["RssAnon"] - base) * 1024
    print(
        f"{what}: {rows:,} rows x 2 float32 ({logits.stat().st_size / 1e6:.0f} MB), "
        f"{elapsed:.1f} s, peak RssAnon {found['RssAnon'] / 1024:.0f} MiB "
        f"({base / 1024:.0f} MiB fixed), {grown / rows:.1f} B per {what.split()[-1]}; "
        f"VmHWM {found['VmHWM'] / 1024:.0f} MiB",
        flush=True,
    )
    logits.unlink()
    targets.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--flagged", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the dumps")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as name:
        directory = Path(name)
        if args.rows:
            measure(directory, args.rows, False, "(a) clean dump, per sample")
        if args.flagged:
            measure(directory, args.flagged, True, "(b) every row flagged, per listed row")


if __name__ == "__main__":
    main()
