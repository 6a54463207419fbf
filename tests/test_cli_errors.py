"""A command line that cannot run is refused: a usage error (Click's usage line) for what the
parser rejects, one ``softmax-check: error:`` line for what softmax-check rejects, exit 2 and
no traceback either way, in process and as a real process; an internal error is one line
unless debugging; Ctrl-C exits 130 and keeps the report.
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from conftest import (
    BAD,
    LOGITS,
    REPO,
    assert_error_message,
    assert_untouched,
    assert_usage_error,
    invoke,
    run_process,
)

from softmax_cli import cli
from softmax_cli.errors import printable

SEED_CSV = Path(__file__).resolve().parent.parent / "sample_logits" / "seed.csv"


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--format", "xml"], "'xml' is not one of"),
        (["--max-rows", "-1"], "--max-rows"),
        (["--class-axis", "one"], "--class-axis"),
        (["--no-such-option"], "--no-such-option"),
    ],
)
def test_bad_option_is_a_usage_error(options, fragment, old_report):
    result = invoke(LOGITS, *options, "-o", old_report)
    assert_usage_error(result, fragment)


def test_missing_logits_argument_is_a_usage_error():
    assert_usage_error(invoke(), "LOGITS")


@pytest.mark.parametrize("option", [["--dtype", "float8"], ["--format", "yaml"]])
def test_unknown_choice_is_a_usage_error(option):
    result = invoke(SEED_CSV, *option)
    assert result.exit_code == 2


def test_an_unknown_dtype_names_the_option_and_the_choices(old_report):
    result = invoke(LOGITS, "--dtype", "float8", "-o", old_report)
    assert_error_message(result, "--dtype: unknown dtype 'float8'", "bfloat16", "bf16")
    assert_untouched(old_report)


def test_unknown_fail_on_category_is_refused(old_report):
    result = invoke(LOGITS, "--fail-on", "everything", "-o", old_report)
    assert_error_message(result, "unknown category 'everything'")
    assert_untouched(old_report)


def test_an_unknown_category_in_a_fail_on_list_is_named():
    result = invoke(SEED_CSV, "--fail-on", "stable,bogus")
    assert result.exit_code == 2
    assert "bogus" in result.stderr
    assert result.stdout == ""


def test_bad_input_exits_2_with_the_file_named_on_stderr(tmp_path):
    missing = tmp_path / "nope.npy"
    result = invoke(missing)
    assert result.exit_code == 2
    assert str(missing) in result.stderr
    assert result.stdout == ""


# (extra options, what the message must say); the logits are tests/data/bad/logits.npy
CLASS_AXIS_CASES = [
    (["--class-axis", "2"], "--class-axis 2 is out of range"),
    (["--class-axis", "-3"], "use an axis from -2 to 1"),
]


@pytest.mark.parametrize(("options", "fragment"), CLASS_AXIS_CASES)
def test_a_class_axis_beyond_the_logits_is_refused_naming_the_file(options, fragment, old_report):
    result = invoke(LOGITS, *options, "--format", "json", "-o", old_report)
    assert_error_message(result, str(LOGITS), fragment)
    assert_untouched(old_report)


def test_control_characters_in_a_file_name_are_not_sent_to_the_terminal(tmp_path):
    path = tmp_path / "\x1b[31mred\x07.npy"
    path.write_bytes(b"")
    result = invoke(path)
    assert_error_message(result, "\\x1b[31mred\\x07.npy")
    assert "\x1b" not in result.stderr
    assert "\x07" not in result.stderr


def test_printable_keeps_a_message_to_a_few_short_lines():
    shown = printable("a" * 10_000 + "\n" + "b\n" * 50)
    assert len(shown.splitlines()) <= 6
    assert max(len(line) for line in shown.splitlines()) <= 300


# --- internal errors --------------------------------------------------------------------


def test_an_internal_error_is_one_line_without_a_traceback(monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "check_loaded", broken)
    result = invoke(LOGITS)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "softmax-check: error: internal error: ZeroDivisionError: a bug (please report this bug)"
    ]


def test_an_internal_error_shows_its_traceback_when_debugging(monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "check_loaded", broken)
    monkeypatch.setenv("SOFTMAX_CHECK_DEBUG", "1")
    result = invoke(LOGITS)
    assert isinstance(result.exception, ZeroDivisionError)


# --- the real process -------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        [str(BAD / "object.npy")],
        [str(BAD / "corrupt_member.npz")],
        [str(BAD / "binary.csv")],
        [str(LOGITS), "--targets", str(BAD / "targets_nan.npy")],
        [str(LOGITS), "--dtype", "float8"],
        [str(BAD / "does_not_exist.npy")],
    ],
)
def test_the_process_exits_2_without_a_traceback(args):
    done = run_process([sys.executable, "-m", "softmax_cli", *args])
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert "error" in done.stderr.lower()


def _unread_bytes(fd: int) -> int:
    buffer = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    return struct.unpack("i", buffer)[0]


def test_ctrl_c_while_reading_exits_130_and_keeps_the_report(old_report):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "softmax_cli", "-", "--format", "json", "-o", str(old_report)]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        process.stdin.write(b"1,2,3\n4,5,6\n")
        process.stdin.flush()
        deadline = time.monotonic() + 30
        # Wait until the CSV reader has taken the rows: it is now blocked on the open pipe.
        while _unread_bytes(process.stdin.fileno()) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert stderr.decode().strip() == "softmax-check: interrupted"
    assert stdout == b""
    assert_untouched(old_report)
