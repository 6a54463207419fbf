"""File names are data too: nothing from one reaches the terminal, a CI log or a report raw.

A logits file named ``x\\n::error title=X::...`` must not become a GitHub workflow command in
any output, an escape sequence in a name must not reach the terminal, and a name that is not
valid UTF-8 (``os.fsdecode``'s surrogate escapes) must not end the run in an encoding error.
Each test runs the real command on a real file of that name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from softmax_cli.cli import app
from softmax_cli.errors import display
from softmax_cli.options import OutputFormat

SEED = Path(__file__).parent.parent / "sample_logits" / "seed.csv"

# name -> a byte string that must not appear in any output
HOSTILE = {
    "newline-command": ("dump\n::error title=X::owned.csv", b"\n::error title=X"),
    "escape-sequence": ("dump\x1b[2J\x1b[31m.csv", b"\x1b"),
    "bidi-override": ("dump\u202egnp.csv", "\u202e".encode()),
    "carriage-return": ("dump\r::warning::owned.csv", b"\r"),
    "not-utf8": (os.fsdecode(b"dump\xff\xfe.csv"), b"\xff"),
}
FORMATS = [f.value for f in OutputFormat]


@pytest.fixture(params=sorted(HOSTILE))
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, bytes]:
    """A copy of the seed dump under a hostile name, and the bytes that must not leak."""
    name, forbidden = HOSTILE[request.param]
    path = tmp_path / name
    try:
        shutil.copy(SEED, path)
    except (OSError, UnicodeEncodeError):
        pytest.skip(f"this file system does not take the name {name!r}")
    return path, forbidden


def _assert_clean(output: bytes, forbidden: bytes) -> None:
    assert forbidden not in output
    assert not any((b < 0x20 and b not in b"\t\n") or b == 0x7F for b in output)
    for line in output.splitlines():
        # Our own annotations (github format) start with "::warning " or "::error "; the
        # name's "::error title=X::" would start a line only after a raw line break.
        assert not line.startswith(b"::") or line.startswith((b"::warning ", b"::error ")), line


def _run(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "softmax_cli", *args], capture_output=True, env=env, timeout=120
    )


def test_the_default_table_on_a_real_process_shows_the_name_escaped(
    hostile: tuple[Path, bytes],
) -> None:
    path, forbidden = hostile
    result = _run(str(path), "--fail-on", "any")
    assert result.returncode == 1, result.stderr
    _assert_clean(result.stdout, forbidden)
    assert display(path.name).encode() in result.stdout


@pytest.mark.parametrize("fmt", FORMATS)
def test_standard_output_in_every_format_carries_no_raw_control_character(
    hostile: tuple[Path, bytes], fmt: str
) -> None:
    path, forbidden = hostile
    result = CliRunner().invoke(app, [str(path), "--format", fmt, "--fail-on", "any"])
    assert result.exit_code == 1, result.output
    _assert_clean(result.stdout_bytes, forbidden)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("how", ["--output", "--report"])
def test_a_report_file_in_every_format_is_written_and_escaped(
    hostile: tuple[Path, bytes], fmt: str, how: str, tmp_path: Path
) -> None:
    """Before: ``internal error: UnicodeEncodeError`` for a name that is not UTF-8."""
    path, forbidden = hostile
    report = Path(f"{path}.{fmt}.report")  # the hostile name in the report's own name too
    target = ["-o", str(report)] if how == "--output" else ["--report", f"{fmt}={report}"]
    result = CliRunner().invoke(app, [str(path), "--format", fmt, "--fail-on", "any", *target])
    assert result.exit_code == 1, result.output
    written = report.read_bytes()
    assert written
    written.decode("utf-8")  # a report is UTF-8
    _assert_clean(written, forbidden)


def test_a_name_that_is_not_utf8_is_shown_as_its_bytes() -> None:
    assert display(os.fsdecode(b"dump\xff.csv")) == "dump\\xff.csv"


def test_a_printable_name_is_shown_as_it_is() -> None:
    assert display("résumé logits [1].npy") == "résumé logits [1].npy"


def test_a_name_with_rich_markup_is_shown_literally_in_the_table(tmp_path: Path) -> None:
    """Rich reads ``[...]`` in a string cell as markup: the tag would vanish from the name."""
    (tmp_path / "a").mkdir()
    shutil.copy(SEED, tmp_path / "a" / "x[red]1.csv")
    shutil.copy(SEED, tmp_path / "a" / "x[bold blink]2.csv")
    result = CliRunner().invoke(app, [str(tmp_path / "a"), "--fail-on", "any", "--all"])
    assert result.exit_code == 1, result.output
    assert "x[red]1.csv" in result.stdout
    assert "x[bold blink]2.csv" in result.stdout
