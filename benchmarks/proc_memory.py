"""Peak memory of a child process, sampled from /proc/PID/status (shared by the benchmarks)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

FIELDS = ("RssAnon", "RssFile", "VmHWM")


def run_sampled(command: list[str], env: dict[str, str]) -> tuple[int, float, dict[str, int]]:
    """Run ``command``; its exit code, wall seconds and the peak of each field (KiB), read
    every 2 ms while it runs."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    peak = dict.fromkeys(FIELDS, 0)
    stop = threading.Event()

    def sample() -> None:
        status = Path(f"/proc/{process.pid}/status")
        while not stop.is_set():
            try:
                for line in status.read_text().splitlines():
                    key, _, value = line.partition(":")
                    if key in peak:
                        peak[key] = max(peak[key], int(value.split()[0]))
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
    return code, elapsed, peak
