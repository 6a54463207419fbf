"""Benchmark a bfloat16 safetensors dump against the float32 .npy dump of the same logits.

    python benchmarks/bf16_bench.py                  # 4096 x 32000, 3 repeats
    python benchmarks/bf16_bench.py --repeats 5 --rounding

Writes the logits of benchmarks/bench.py's 4096 x 32000 float32 dump as bfloat16 into
benchmarks/data/logits_4096x32000_bf16.safetensors (with PyTorch, as training code does),
then times ``check_loaded`` in-process on each (``--dtype auto``: float32 for one,
bfloat16 for the other), interleaved, and prints the medians and the bfloat16 speed as a
fraction of the float32 one (the target is at least 0.8x).

``--rounding`` shows where the emulated dtypes' time goes: the cost per element of
``ComputeDtype.round`` on one L2-sized piece, for bfloat16 and float16 and, beside them,
float32 ``np.exp`` (the work every dtype shares), a round-to-nearest-even on the integer
bits, the widening of the file's bfloat16 to float32 (``to_work``) and the same on the
bits (a 16-bit shift): candidate replacements for the ml_dtypes casts, checked bit for bit.
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


def rne_bfloat16(values: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """float32 ``values`` rounded to bfloat16 in place, on the integer bits: add half an
    ulp of bfloat16 (minus one when the kept part is even: ties to even), clear the low
    16 bits. NaN is kept NaN (a carry could turn its payload into infinity)."""
    u = values.view(np.uint32)
    np.right_shift(u, 16, out=bits)
    np.bitwise_and(bits, 1, out=bits)
    bits += 0x7FFF
    nan = np.isnan(values)
    u += bits
    u &= np.uint32(0xFFFF0000)
    values[nan] = np.nan
    return values


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
        print(f"  round to {name:9s} (casts) {per_element(run, size) - copy:6.2f} ns")
    bits = np.empty(piece.shape, dtype=np.uint32)

    def run_bits() -> None:
        np.copyto(work, piece)
        rne_bfloat16(work, bits)

    copy = per_element(lambda: np.copyto(work, piece), size)
    print(f"  round to bfloat16 (bits)  {per_element(run_bits, size) - copy:6.2f} ns")
    stored = piece.astype(COMPUTE_DTYPES["bfloat16"].storage)
    widen = per_element(lambda: COMPUTE_DTYPES["bfloat16"].to_work(stored, out=work), size)
    print(f"  widen bfloat16 (to_work)  {widen:6.2f} ns")

    def widen_bits() -> None:
        np.left_shift(stored.view(np.uint16), 16, out=work.view(np.uint32), dtype=np.uint32)

    print(f"  widen bfloat16 (bits)     {per_element(widen_bits, size):6.2f} ns")
    widen_bits()
    same = np.array_equal(work, stored.astype(np.float32), equal_nan=True)
    print(f"  widening on the bits equals the cast: {same}")
    expected = stored.astype(np.float32)
    np.copyto(work, piece)
    same = np.array_equal(rne_bfloat16(work, bits).view(np.uint32), expected.view(np.uint32))
    print(f"  bit trick equals the ml_dtypes cast on this piece: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounding", action="store_true", help="cost of rounding per element")
    args = parser.parse_args()
    logits, targets = make_dump(ROWS, CLASSES)
    bf16 = write_bf16(logits, targets)
    inputs = {
        "float32 .npy": load_inputs(str(logits), str(targets), ArrayKeys()),
        "bfloat16 .safetensors": load_inputs(str(bf16), None, ArrayKeys()),
    }
    options = CheckOptions.of()  # --dtype auto: each in its own dtype
    for loaded in inputs.values():
        check_loaded(loaded, options)  # warm-up: page cache, thread pool
    times: dict[str, list[float]] = {name: [] for name in inputs}
    for _ in range(args.repeats):
        for name, loaded in inputs.items():
            start = time.perf_counter()
            report = check_loaded(loaded, options)
            times[name].append(time.perf_counter() - start)
            assert report.compute_dtype == ("bfloat16" if "bfloat16" in name else "float32")
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"{ROWS} x {CLASSES}, --dtype auto, medians of {args.repeats} interleaved runs")
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
