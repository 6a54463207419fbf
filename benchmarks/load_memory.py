"""Peak anonymous memory of a whole CLI run on a 2 GiB bfloat16 dump, per input format.

    python benchmarks/load_memory.py                       # .safetensors and .pt
    python benchmarks/load_memory.py --rows 4096           # a smaller dump

The tensors are memory-mapped, so the file's pages count as RssFile (page cache shared
with the kernel), not RssAnon; what RssAnon shows is the check's own working memory.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
from proc_memory import run_sampled

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


def make_dumps(rows: int, classes: int) -> list[Path]:
    DATA.mkdir(parents=True, exist_ok=True)
    stem = DATA / f"bf16_{rows}x{classes}"
    paths = [stem.with_suffix(".safetensors"), stem.with_suffix(".pt")]
    if all(p.exists() for p in paths):
        return paths
    import torch
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    logits = np.empty((rows, classes), dtype=ml_dtypes.bfloat16)
    for start in range(0, rows, 1024):  # in pieces: no float32 copy of the whole dump
        piece = rng.standard_normal((min(1024, rows - start), classes), dtype=np.float32) * 3
        logits[start : start + len(piece)] = piece.astype(ml_dtypes.bfloat16)
    save_file({"logits": logits}, str(paths[0]))
    torch.save({"logits": torch.from_numpy(logits.view(np.int16)).view(torch.bfloat16)}, paths[1])
    return paths


def peak(path: Path) -> tuple[float, dict[str, int]]:
    command = [sys.executable, "-m", "softmax_cli", str(path), "--format", "json",
               "-o", os.devnull]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    code, elapsed, found = run_sampled(command, env)
    if code not in (0, 1):
        sys.exit(f"{command} exited {code}")
    return elapsed, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=32768)
    parser.add_argument("--classes", type=int, default=32768)
    args = parser.parse_args()
    for path in make_dumps(args.rows, args.classes):
        elapsed, found = peak(path)
        print(f"{path.name}: {path.stat().st_size / 2**30:.2f} GiB, {elapsed:.1f} s, "
              f"peak RssAnon {found['RssAnon'] / 1024:.0f} MiB, "
              f"peak RssFile {found['RssFile'] / 1024:.0f} MiB, "
              f"VmHWM {found['VmHWM'] / 1024:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
