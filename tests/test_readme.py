"""The README's console examples are real: each ``$ softmax-check ...`` block is run and
its output compared. ``UPDATE_README=1 pytest tests/test_readme.py`` rewrites them."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"```console\n\$ (softmax-check [^\n]*)\n(.*?)```", re.DOTALL)


def run(command: str) -> str:
    args = shlex.split(command)
    result = subprocess.run(
        [sys.executable, "-m", "softmax_cli", *args[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100", "NO_COLOR": "1"},
    )
    assert result.stderr == ""
    return "\n".join(line.rstrip() for line in result.stdout.rstrip().splitlines()) + "\n"


def test_readme_has_console_examples():
    assert len(BLOCK.findall(README.read_text())) >= 4


def _example(command: str):
    """A README command; one with ``--impl`` runs the user's code under torch, so it is a
    torch test, skipped where torch is not installed (CI's first pass)."""
    return pytest.param(command, marks=pytest.mark.torch) if "--impl" in command else command


@pytest.mark.parametrize("command", [_example(m[0]) for m in BLOCK.findall(README.read_text())])
def test_readme_example_output_is_what_the_command_prints(command):
    if "--impl" in command:
        pytest.importorskip("torch")
    text = README.read_text()
    actual = run(command)
    if os.environ.get("UPDATE_README"):
        README.write_text(
            BLOCK.sub(
                lambda m: f"```console\n$ {m[1]}\n{run(m[1]) if m[1] == command else m[2]}```",
                text,
            )
        )
        return
    expected = next(m[2] for m in BLOCK.finditer(text) if m[1] == command)
    assert actual == expected
