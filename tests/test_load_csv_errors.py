"""A bad CSV file, or bad CSV on standard input, is refused: exit 2, one short message naming
the file (``<stdin>`` for standard input) and the line, an existing ``--output`` report
untouched; an endless line or device ends in an error after a bounded read, never a hang.
"""

from __future__ import annotations

import os
import threading
import tracemalloc

import pytest
from conftest import BAD, LOGITS, assert_error_message, assert_untouched, invoke

from softmax_cli.errors import InputError
from softmax_cli.load import ArrayKeys, load_inputs, text

# (file in tests/data/bad, extra options, what the message must say)
CSV_CASES = [
    ("empty.csv", [], "is empty"),
    ("blank_lines.csv", [], "is empty"),
    ("zero_classes.csv", [], "is empty"),
    ("header_only.csv", [], "has a header but no rows"),
    ("ragged.csv", [], "line 2 has 2 fields, expected 3"),
    ("non_numeric.csv", [], "line 2, column 2: 'five' is not a number"),
    ("empty_field.csv", [], "line 2, column 2: is empty"),
    ("binary.csv", [], "not valid UTF-8"),
    ("latin1.csv", [], "not valid UTF-8"),
    ("nul.csv", [], "binary file"),
    ("npy_named.csv", [], "looks like a .npy file"),
    ("non_numeric.csv", ["--target-column", "label"], "has no header, so no column 'label'"),
    ("header_only.csv", ["--target-column", "label"], "has no column 'label'"),
    ("targets_nan_column.csv", ["--target-column", "target"], "target 1 is nan"),
    ("targets_nan_column.csv", [], "column 1 ('a') holds only integers"),
]


@pytest.mark.parametrize(("name", "options", "fragment"), CSV_CASES)
def test_a_bad_csv_file_is_refused_naming_the_file(name, options, fragment, old_report):
    result = invoke(BAD / name, *options, "--format", "json", "-o", old_report)
    assert_error_message(result, str(BAD / name), fragment)
    assert_untouched(old_report)


def test_a_first_row_with_an_empty_field_beside_numbers_is_data_with_a_hole():
    # Hypothesis found ',0.' raising StopIteration: no name to blame, so it looked for one.
    result = invoke("-", input=",0.\n1,2\n")
    assert_error_message(result, "<stdin>", "line 1 is neither a header nor a row of numbers")
    assert "column 1 is empty" in result.stderr


def test_bad_csv_on_standard_input_names_stdin():
    assert_error_message(invoke("-", input="1,2\n3\n"), "<stdin>: line 2 has 1 fields")


def test_binary_on_standard_input_is_refused():
    result = invoke("-", input=LOGITS.read_bytes())
    assert_error_message(result, "<stdin>", "binary file")


def test_standard_input_cannot_be_both_inputs():
    assert_error_message(invoke("-", "--targets", "-", input="1,2\n"), "standard input")


def test_a_device_named_csv_is_refused_without_reading_forever(tmp_path):
    link = tmp_path / "zeros.csv"
    link.symlink_to("/dev/zero")
    assert_error_message(invoke(link), "binary file")


def test_a_csv_with_one_enormous_line_is_refused_after_reading_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(text, "MAX_LINE_CHARS", 1 << 20)
    path = tmp_path / "one_line.csv"
    path.write_text("1.0," * (1 << 20))  # 4 MiB, no newline
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="line 1 is longer than 1,048,576 characters"):
            load_inputs(str(path), None, ArrayKeys())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_an_endless_line_from_a_pipe_ends_in_an_error_not_a_hang(tmp_path, monkeypatch):
    monkeypatch.setattr(text, "MAX_LINE_CHARS", 1 << 20)
    fifo = tmp_path / "endless.csv"
    os.mkfifo(fifo)

    def write_forever() -> None:
        try:
            with open(fifo, "wb") as pipe:
                while True:
                    pipe.write(b"1" * 65536)
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=write_forever, daemon=True)
    writer.start()
    with pytest.raises(InputError, match="longer than"):
        load_inputs(str(fifo), None, ArrayKeys())
    writer.join(timeout=10)
    assert not writer.is_alive()
