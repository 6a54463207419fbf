"""Ctrl-C, SIGTERM and closed standard streams, through the real command (issue 15, point 6).

SIGINT exits 130 and SIGTERM 143 (128 + the signal number, as a shell reports them), with
one line on standard error and no traceback, from the first moment our code runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
}
COMMAND = [sys.executable, "-m", "softmax_cli"]

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")


def start(*args: str, cwd: Path, **options) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*COMMAND, *args, "--no-config"],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


def wait_for_handlers(process: subprocess.Popen[str]) -> None:
    """Until the child catches SIGTERM: the entry module is running, the heavy imports not
    yet done. (Before that the interpreter itself is starting up: nothing of ours runs.)"""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = Path(f"/proc/{process.pid}/status").read_text()
        caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:"))
                     .split()[1], 16)  # fmt: skip
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.002)
    pytest.fail("the command never installed its SIGTERM handler")


@pytest.mark.parametrize(("signum", "status", "word"), [
    (signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])  # fmt: skip
@pytest.mark.parametrize("delay", [0.0, 0.02, 0.05, 0.1, 0.2, 0.3])
def test_a_signal_during_start_up_is_one_line_and_its_exit_status(
    tmp_path: Path, signum: int, status: int, word: str, delay: float
) -> None:
    # Logits from a pipe nobody writes to: after start-up the command waits, so every delay
    # lands in the imports or in the read, never after the end.
    process = start("-", cwd=tmp_path, stdin=subprocess.PIPE)
    try:
        wait_for_handlers(process)
        time.sleep(delay)
        process.send_signal(signum)
        _, errors = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == status, errors
    assert "Traceback" not in errors
    assert errors.strip().endswith(f"softmax-check: {word}")


def test_sigterm_during_a_check_leaves_no_temporary_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(15)
    np.save(tmp_path / "big.npy", (rng.normal(size=(2_000_000, 16)) * 60).astype(np.float32))
    for delay in (0.5, 1.5, 3.0):
        process = start("big.npy", "--format", "json", "--all", "-o", "report.json",
                        "--report", "junit=junit.xml", cwd=tmp_path)  # fmt: skip
        try:
            wait_for_handlers(process)
            time.sleep(delay)
            process.send_signal(signal.SIGTERM)
            _, errors = process.communicate(timeout=120)
        finally:
            process.kill()
        assert process.returncode == 143, errors
        assert "Traceback" not in errors
        assert sorted(p.name for p in tmp_path.iterdir()) == ["big.npy"]


def shell(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``script`` in sh, with "$0" the interpreter: how a closed descriptor is really got."""
    return subprocess.run(["sh", "-c", script, sys.executable], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    np.save(tmp_path / "seed.npy", np.array([[2.0, 1.0, 0.1], [1000, 0, -1000]], np.float32))
    return tmp_path


@pytest.mark.parametrize("extra", ["", "--format json", "-o /dev/stdout"])
def test_a_closed_standard_output_is_exit_2_with_a_message(seed: Path, extra: str) -> None:
    result = shell(f'exec "$0" -m softmax_cli seed.npy --no-config {extra} >&-', seed)
    assert result.returncode == 2, result.stderr
    assert "standard output is closed" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_a_closed_standard_output_is_fine_with_output_to_a_file(seed: Path) -> None:
    result = shell('exec "$0" -m softmax_cli seed.npy --no-config -o report.txt >&-', seed)
    assert result.returncode == 0, result.stderr
    assert "BROKEN" in (seed / "report.txt").read_text()
    assert (seed / "seed.npy").stat().st_size > 0  # nothing landed in a reused descriptor


def test_a_closed_standard_input_read_as_dash_is_exit_2_with_a_message(seed: Path) -> None:
    result = shell('exec "$0" -m softmax_cli - --no-config <&-', seed)
    assert result.returncode == 2, result.stderr
    assert "standard input is closed" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
