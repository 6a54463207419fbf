"""Peak anonymous memory of a whole CLI run on a 2 GiB bfloat16 dump, per input format.

    python benchmarks/load_memory.py                       # .safetensors and .pt
    python benchmarks/load_memory.py --rows 4096           # a smaller dump

The tensors are memory-mapped, so the file's pages count as RssFile (page cache shared
with the kernel), not RssAnon; what RssAnon shows is the check's own working memory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import ml_dtypes
import numpy as np

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
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    found = {"RssAnon": 0, "RssFile": 0, "VmHWM": 0}
    stop = threading.Event()

    def sample() -> None:
        status = Path(f"/proc/{process.pid}/status")
        while not stop.is_set():
            try:
                for line in status.read_text().splitlines():
                    key, _, value = line.partition(":")
                    if key in found:
                        found[key] = max(found[key], int(value.split()[0]))
            except (FileNotFoundError, ProcessLookupError, ValueError):
                return
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    code = process.wait()
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
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
