"""Benchmark a bfloat16 safetensors dump against the float32 .npy dump of the same logits.

    python benchmarks/bf16_bench.py                  # 4096 x 32000, 3 repeats
    python benchmarks/bf16_bench.py --repeats 5 --rounding

Writes the logits of benchmarks/bench.py's 4096 x 32000 float32 dump as bfloat16 into
benchmarks/data/logits_4096x32000_bf16.safetensors (with PyTorch, as training code does),
then times ``check_loaded`` in-process on each (``--dtype auto``: float32 for one,
bfloat16 for the other), interleaved, as the command line makes it (``listed_only``; with
``--all``, the full check that ``--all`` makes), and prints the medians and the bfloat16
speed as a fraction of the float32 one (the target is at least 0.8x).

``--rounding`` shows where the emulated dtypes' time goes: the cost per element of
``ComputeDtype.round`` on one L2-sized piece, for bfloat16 and float16 (both on the bits,
see softmax_cli/dtypes.py) and, beside them, float32 ``np.exp`` (the work every dtype
shares), the widening of the file's bfloat16 to float32 (``to_work``), and the ml_dtypes
cast that the rounding replaces (tests/test_dtypes.py holds them equal bit for bit).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench import DATA, make_dump  # noqa: E402

from softmax_cli.classify import check_loaded  # noqa: E402
from softmax_cli.dtypes import COMPUTE_DTYPES  # noqa: E402
from softmax_cli.load import ArrayKeys, load_inputs  # noqa: E402
from softmax_cli.options import CheckOptions  # noqa: E402

ROWS, CLASSES = 4096, 32000


def write_bf16(logits: Path, targets: Path) -> Path:
    """The float32 dump's logits rounded to bfloat16 by torch, saved with safetensors."""
    import torch
    from safetensors.torch import save_file

    path = DATA / f"logits_{ROWS}x{CLASSES}_bf16.safetensors"
    if not path.exists():
        x = torch.from_numpy(np.load(logits)).to(torch.bfloat16)
        t = torch.from_numpy(np.load(targets))
        save_file({"logits": x, "targets": t}, str(path))
    return path


def per_element(run, size: int, repeats: int = 30) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / size * 1e9


def rounding() -> None:
    rows = max(1, (1 << 20) // (CLASSES * 4))
    rng = np.random.default_rng(0)
    # Small enough that exp stays finite: overflow is not what this times.
    piece = (rng.standard_normal((rows, CLASSES)) * 20).astype(np.float32)
    work = piece.copy()
    size = piece.size
    print(f"\nper element, one {rows} x {CLASSES} float32 piece (in L2), medians of 30")
    exp = per_element(lambda: np.exp(piece, out=work), size)
    print(f"  np.exp float32            {exp:6.2f} ns")
    for name in ("bfloat16", "float16"):
        dtype = COMPUTE_DTYPES[name]
        scratch = np.empty(piece.shape, dtype=dtype.storage)

        def run(dtype=dtype, scratch=scratch) -> None:
            np.copyto(work, piece)
            dtype.round(work, scratch=scratch)

        copy = per_element(lambda: np.copyto(work, piece), size)
        print(f"  round to {name:9s} (bits)  {per_element(run, size) - copy:6.2f} ns")
    # What the bit-level routes replace: ml_dtypes' casts, timed on the same piece.
    bf16 = COMPUTE_DTYPES["bfloat16"].storage
    cast = per_element(lambda: np.copyto(work, piece.astype(bf16)), size)
    print(f"  round to bfloat16 (cast)  {cast:6.2f} ns")
    stored = piece.astype(bf16)
    widen = per_element(lambda: COMPUTE_DTYPES["bfloat16"].to_work(stored, out=work), size)
    print(f"  widen bfloat16 (to_work)  {widen:6.2f} ns")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounding", action="store_true", help="cost of rounding per element")
    parser.add_argument("--all", action="store_true", help="time the check --all makes")
    args = parser.parse_args()
    listed_only = not args.all
    logits, targets = make_dump(ROWS, CLASSES)
    bf16 = write_bf16(logits, targets)
    inputs = {
        "float32 .npy": load_inputs(str(logits), str(targets), ArrayKeys()),
        "bfloat16 .safetensors": load_inputs(str(bf16), None, ArrayKeys()),
    }
    options = CheckOptions.of()  # --dtype auto: each in its own dtype
    for loaded in inputs.values():
        check_loaded(loaded, options, listed_only=listed_only)  # warm-up: page cache, pool
    times: dict[str, list[float]] = {name: [] for name in inputs}
    for _ in range(args.repeats):
        for name, loaded in inputs.items():
            start = time.perf_counter()
            report = check_loaded(loaded, options, listed_only=listed_only)
            times[name].append(time.perf_counter() - start)
            assert report.compute_dtype == ("bfloat16" if "bfloat16" in name else "float32")
    median = {name: statistics.median(t) for name, t in times.items()}
    made = "with --all" if args.all else "as the command line makes it"
    print(f"{ROWS} x {CLASSES}, --dtype auto, {made}, medians of {args.repeats} interleaved runs")
    for name, seconds in median.items():
        rate = ROWS * CLASSES / seconds / 1e6
        shown = " ".join(f"{t:.2f}" for t in times[name])
        print(f"  {name:22s} {seconds:6.2f} s  {rate:7.0f} M logits/s   (runs: {shown})")
    speed = median["float32 .npy"] / median["bfloat16 .safetensors"]
    print(f"  bfloat16 speed / float32 speed  {speed:.2f}x   (target >= 0.8x)")
    if args.rounding:
        rounding()


if __name__ == "__main__":
    main()
