"""What verifying a stored .npz member's CRC-32 costs: the whole CLI with and without it.

    python benchmarks/npz_crc.py                    # 4096 x 32000 float32, np.savez
    python benchmarks/npz_crc.py --rows 1024 --repeat 3

Times ``softmax-check dump.npz --format json -o /dev/null`` as a whole process (page cache
warm), once as shipped and once with the background CRC check replaced by a no-op, and
prints medians; also zlib.crc32's own throughput over the member, on one thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "data"

# The CLI with every CRC check stubbed out: what the run costs without verification.
_UNVERIFIED = """
import sys
from softmax_cli.load import integrity
class _Skipped:
    def wait(self): pass
integrity.CrcCheck.start = classmethod(lambda cls, *args: _Skipped())
from softmax_cli.cli import main
sys.argv[0] = "softmax-check"
main()
"""


def make_dump(rows: int, classes: int) -> Path:
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"stored_{rows}x{classes}.npz"
    if not path.exists():
        rng = np.random.default_rng(0)
        np.savez(path, logits=rng.standard_normal((rows, classes), dtype=np.float32) * 3)
    return path


def timed(command: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        sys.exit(f"{command} failed: {done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    path = make_dump(args.rows, args.classes)
    size = path.stat().st_size
    data = path.read_bytes()  # also warms the page cache
    start = time.perf_counter()
    zlib.crc32(data)
    crc_seconds = time.perf_counter() - start
    del data
    tail = [str(path), "--format", "json", "-o", os.devnull]
    runs = {"verified": [], "unverified": []}
    timed([sys.executable, "-m", "softmax_cli", *tail])  # warm-up
    for _ in range(args.repeat):
        runs["verified"].append(timed([sys.executable, "-m", "softmax_cli", *tail]))
        runs["unverified"].append(timed([sys.executable, "-c", _UNVERIFIED, *tail]))
    print(f"dump: {path.name}, {size / 2**20:.0f} MiB, {os.cpu_count()} CPUs")
    print(
        f"zlib.crc32 alone (one thread): {crc_seconds:.3f} s, {size / crc_seconds / 1e9:.2f} GB/s"
    )
    for name, times in runs.items():
        print(
            f"{name:>10}: median {statistics.median(times):.3f} s  (runs: "
            + ", ".join(f"{t:.2f}" for t in times)
            + ")"
        )
    extra = statistics.median(runs["verified"]) - statistics.median(runs["unverified"])
    print(f"verification costs {extra:+.3f} s per run")


if __name__ == "__main__":
    main()
