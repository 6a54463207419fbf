"""Benchmark softmax-check against a chunked NumPy script and a PyTorch autograd script.

    python benchmarks/bench.py                      # 4096 x 32000 float32, ~1% extreme rows
    python benchmarks/bench.py --shape wide         # 1024 x 131072 (128k vocabulary)
    python benchmarks/bench.py --shape long         # 1048576 x 128
    python benchmarks/bench.py --memory             # peak anonymous RSS on a 2 GiB dump

Times each tool in-process (the check only, after a warm-up) and as a whole process (start,
imports, load, check, report), prints medians, ratios and elements per second, and checks
that the three tools agree on every row's flags. Dumps are written under benchmarks/data/.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SHAPES = {"default": (4096, 32000), "wide": (1024, 131072), "long": (1 << 20, 128)}
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from proc_memory import run_sampled  # noqa: E402


def make_dump(rows: int, classes: int, extreme: float = 0.01, seed: int = 0) -> tuple[Path, Path]:
    """Normal logits (sd 3) with a fraction of extreme rows: half scaled x60 (the naive exp
    overflows), half shifted by -1000 (the naive sum underflows to 0). Written in pieces."""
    DATA.mkdir(parents=True, exist_ok=True)
    logits = DATA / f"logits_{rows}x{classes}.npy"
    targets = DATA / f"targets_{rows}x{classes}.npy"
    if logits.exists() and targets.exists():
        return logits, targets
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(logits, mode="w+", dtype=np.float32, shape=(rows, classes))
    step = max(1, (64 << 20) // (classes * 4))
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        out[start:stop] = rng.standard_normal((stop - start, classes), dtype=np.float32) * 3
    chosen = rng.choice(rows, max(2, int(rows * extreme)), replace=False)
    for i in chosen[0::2]:
        out[i] *= 60
    for i in chosen[1::2]:
        out[i] -= 1000
    out.flush()
    del out
    np.save(targets, rng.integers(0, classes, size=rows))
    return logits, targets


def median_time(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _packed_flags(report) -> np.ndarray:
    """softmax-check's flags in the competitor scripts' layout: input bits 0-1, naive 2-5,
    stable 6-9."""
    f = report.findings
    packed = f.input.astype(np.uint16)
    packed |= f.impls["naive"].flags.astype(np.uint16) << 2
    packed |= f.impls["stable"].flags.astype(np.uint16) << 6
    return packed


def in_process(logits: Path, targets: Path, repeats: int, with_torch: bool):
    import numpy_check

    from softmax_cli import check

    x = np.load(logits, mmap_mode="r")
    t = np.load(targets)
    tools = {
        "softmax-check": lambda: _packed_flags(check(x, t)),
        "numpy script": lambda: numpy_check.check(x, t),
    }
    if with_torch:
        import torch_check

        tools["torch script"] = lambda: torch_check.check(x, t).astype(np.uint16)
    flags, times = {}, {}
    for name, run in tools.items():
        flags[name] = run()  # warm-up: page cache, thread pools, lazy imports
        times[name] = median_time(run, repeats if name == "softmax-check" else max(1, repeats // 2))
    return times, flags


def whole_process(logits: Path, targets: Path, repeats: int, with_torch: bool):
    py = sys.executable
    commands = {
        "softmax-check": [
            py,
            "-m",
            "softmax_cli",
            str(logits),
            "--targets",
            str(targets),
            "--format",
            "json",
            "--output",
            "/dev/null",
        ],
        "numpy script": [py, str(HERE / "numpy_check.py"), str(logits), str(targets)],
    }
    if with_torch:
        commands["torch script"] = [py, str(HERE / "torch_check.py"), str(logits), str(targets)]
    env = {"PYTHONPATH": str(HERE.parent), "PATH": "/usr/bin:/bin"}

    def run(command):
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode not in (0, 1):
            raise SystemExit(f"{command[1]} failed:\n{done.stderr}")

    return {name: median_time(lambda c=c: run(c), repeats) for name, c in commands.items()}


def report(shape, times_in, times_whole, flags) -> None:
    elements = shape[0] * shape[1]
    ours_in, ours_whole = times_in["softmax-check"], times_whole["softmax-check"]
    print(f"\n{shape[0]} x {shape[1]} float32 = {elements / 1e6:.0f} M elements\n")
    print(
        "| tool | in-process (s) | M elements/s | whole process (s) "
        "| softmax-check / tool, in-process | softmax-check / tool, whole process |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in times_in:
        print(
            f"| {name} | {times_in[name]:.3f} | {elements / times_in[name] / 1e6:,.0f} | "
            f"{times_whole[name]:.3f} | {ours_in / times_in[name]:.3f}x | "
            f"{ours_whole / times_whole[name]:.3f}x |"
        )
    reference = flags["softmax-check"]
    for name, other in flags.items():
        same = np.array_equal(other, reference)
        differ = np.count_nonzero(other != reference)
        print(f"flags of {name}: {'agree' if same else f'DISAGREE on {differ} rows'} "
              f"({np.count_nonzero(other)} rows flagged)")  # fmt: skip
        if not same:
            raise SystemExit(1)


def peak_anonymous_memory(logits: Path, targets: Path) -> None:
    """Run the CLI and sample its /proc status: peak RssAnon (heap, buffers) and VmHWM."""
    command = [sys.executable, "-m", "softmax_cli", str(logits), "--targets", str(targets),
               "--format", "json", "--output", "/dev/null"]  # fmt: skip
    env = {"PYTHONPATH": str(HERE.parent), "PATH": "/usr/bin:/bin"}
    _, elapsed, peak = run_sampled(command, env)
    size = logits.stat().st_size
    print(f"{logits.name}: {size / 2**30:.2f} GiB, whole process {elapsed:.2f} s")
    print(f"peak RssAnon {peak['RssAnon'] / 1024:.0f} MiB (anonymous: heap and buffers), "
          f"peak RssFile {peak['RssFile'] / 1024:.0f} MiB (mapped file pages), "
          f"VmHWM {peak['VmHWM'] / 1024:.0f} MiB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=SHAPES, default="default")
    parser.add_argument("--rows", type=int, help="override the shape's rows")
    parser.add_argument("--classes", type=int, help="override the shape's classes")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of softmax-check")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch script")
    parser.add_argument("--memory", action="store_true", help="peak memory on a 2 GiB dump")
    args = parser.parse_args()
    if args.memory:
        peak_anonymous_memory(*make_dump(16384, 32768))  # 2 GiB of float32
        return
    rows, classes = SHAPES[args.shape]
    shape = (args.rows or rows, args.classes or classes)
    logits, targets = make_dump(*shape)
    times_in, flags = in_process(logits, targets, args.repeats, not args.no_torch)
    times_whole = whole_process(logits, targets, max(3, args.repeats // 2), not args.no_torch)
    report(shape, times_in, times_whole, flags)


if __name__ == "__main__":
    main()
