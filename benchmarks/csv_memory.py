"""Peak memory of reading CSV logits, against the bytes the values really need.

    python benchmarks/csv_memory.py                 # 1 x 1,000,000 and 20,000 x 1,000
    python benchmarks/csv_memory.py --shape 1x4000000

Each CSV is written once (17 significant digits: every float64 exactly) to a temporary
folder, then read by ``softmax_cli.load.text.read_logits`` in a fresh process that prints
its resident memory after importing the loader (``VmRSS``) and its peak after reading
(``VmHWM``, Linux). The difference is what the read cost; the float64 array alone is
``rows x classes x 8`` bytes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_SHAPES = ["1x1000000", "20000x1000"]

CHILD = """
import sys, time
from softmax_cli.load import text

def status(key):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith(key))

with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # VmHWM starts again from here
before = status("VmRSS:")
start = time.perf_counter()
result = text.read_logits(sys.argv[1], None)
seconds = time.perf_counter() - start
print(before, status("VmHWM:"), seconds, result[0].shape[0], result[0].shape[1])
"""


def write_csv(path: Path, rows: int, classes: int) -> None:
    """Standard-normal logits written a block of rows at a time (the writer stays small)."""
    rng = np.random.default_rng(0)
    block = max(1, min(rows, (1 << 22) // classes))
    with open(path, "w") as out:
        for start in range(0, rows, block):
            values = rng.standard_normal((min(block, rows - start), classes))
            np.savetxt(out, values, delimiter=",", fmt="%.17g")


def measure(path: Path) -> tuple[float, float, float, tuple[int, int]] | str:
    env_path = str(HERE.parent)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": env_path},
        check=False,
    )
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or ["(no message)"]
        return f"failed: {last[0][-70:]}"
    before, after, seconds, rows, classes = done.stdout.split()
    return int(before) / 1024, int(after) / 1024, float(seconds), (int(rows), int(classes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", action="append", help="ROWSxCLASSES (repeatable)")
    shapes = parser.parse_args().shape or DEFAULT_SHAPES
    with tempfile.TemporaryDirectory() as folder:
        print(f"{'shape':>14} {'file MiB':>9} {'array MiB':>10} {'read MiB':>9} {'seconds':>8}")
        for shape in shapes:
            rows, classes = (int(n) for n in shape.lower().split("x"))
            path = Path(folder) / f"logits_{rows}x{classes}.csv"
            write_csv(path, rows, classes)
            file_mib = path.stat().st_size / (1 << 20)
            array_mib = rows * classes * 8 / (1 << 20)
            measured = measure(path)
            if isinstance(measured, str):
                print(f"{shape:>14} {file_mib:9.1f} {array_mib:10.1f}  {measured}")
            else:
                before, after, seconds, got = measured
                assert got == (rows, classes), got
                read = after - before
                print(f"{shape:>14} {file_mib:9.1f} {array_mib:10.1f} {read:9.1f} {seconds:8.2f}")
            path.unlink()


if __name__ == "__main__":
    main()
