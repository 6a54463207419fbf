"""CSV logits (optionally with a header and a target column) and one-per-line targets.

Text is read as a stream, one bounded line at a time, straight into float64 blocks: a file
with one enormous line, or with NUL bytes, is refused after reading at most one line's
worth, and a large file never exists in memory as Python strings.
"""

from __future__ import annotations

import contextlib
import csv
import io
import sys
from collections.abc import Iterator

import numpy as np

from softmax_cli.errors import InputError
from softmax_cli.load.files import inspect_path, os_reason
from softmax_cli.load.sniff import NPY_MAGIC, ZIP_MAGIC, looks_like

STDIN = "-"
DEFAULT_TARGET_COLUMN = "target"
# The longest line we read (characters): a row of 250k vocabulary logits at full float64
# precision is about 6M; anything past this is not a row of numbers.
MAX_LINE_CHARS = 64 << 20
_BLOCK_ROWS = 4096


def read_logits(path: str, target_column: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits (float64, exactly as written) and the target column's values, if there is one.

    The first row is a header when any of its fields is not a number. Targets come from
    the column named ``target_column`` (default: ``target``, when the header has it).
    """
    name = "<stdin>" if path == STDIN else path
    lines = _lines(path, name)
    try:
        return _parse_csv(csv.reader(lines), name, target_column)
    finally:
        lines.close()  # closes the file now, not when the generator is collected


def _parse_csv(
    reader, name: str, target_column: str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    rows = _rows(reader, name)
    first = next(rows, None)
    if first is None:
        raise InputError(name, "is empty: no rows of logits")
    header = first if not all(_is_number(f) for f in first) else None

    target_at = None
    if header is not None:
        columns = [h.strip() for h in header]
        wanted = target_column or DEFAULT_TARGET_COLUMN
        if wanted in columns:
            target_at = columns.index(wanted)
        elif target_column is not None:
            shown = ", ".join(repr(c) for c in columns[:10])
            shown += ", ..." if len(columns) > 10 else ""
            raise InputError(name, f"has no column {target_column!r} (columns: {shown})")
    elif target_column is not None:
        raise InputError(name, f"has no header, so no column {target_column!r}")

    width = len(first)
    blocks = _Blocks(width)
    if header is None:
        blocks.append(_parse_row(first, name, reader.line_num, width))
    for row in rows:
        blocks.append(_parse_row(row, name, reader.line_num, width))
    values = blocks.array()
    if len(values) == 0:
        raise InputError(name, "has a header but no rows of logits")
    if target_at is None:
        return values, None
    return np.delete(values, target_at, axis=1), values[:, target_at]


def read_targets(path: str) -> np.ndarray:
    """One integer class index per line (a first line that is not a number is a header)."""
    name = "<stdin>" if path == STDIN else path
    values: list[float] = []
    first = True
    lines = _lines(path, name)
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            values.append(float(line))
        except ValueError:
            if first:  # a header such as "target"
                first = False
                continue
            lines.close()
            raise InputError(
                name, f"line {number}: {_shorten(line)!r} is not an integer class index"
            ) from None
        first = False
    if not values:
        raise InputError(name, "holds no targets")
    return np.array(values, dtype=np.float64)


class _Blocks:
    """Rows of floats gathered into fixed-size float64 blocks (no per-value Python objects)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.done: list[np.ndarray] = []
        self.block = np.empty((_BLOCK_ROWS, width))
        self.filled = 0

    def append(self, row: list[float]) -> None:
        if self.filled == _BLOCK_ROWS:
            self.done.append(self.block)
            self.block = np.empty((_BLOCK_ROWS, self.width))
            self.filled = 0
        self.block[self.filled] = row
        self.filled += 1

    def array(self) -> np.ndarray:
        return np.concatenate([*self.done, self.block[: self.filled]])


def _rows(reader: Iterator[list[str]], name: str) -> Iterator[list[str]]:
    """Non-blank CSV rows; a malformed one is an InputError naming its line."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(name, f"line {reader.line_num}: not valid CSV ({exc})") from None
        if any(field.strip() for field in row):
            yield row


def _parse_row(row: list[str], name: str, line: int, width: int) -> list[float]:
    if len(row) != width:
        raise InputError(
            name,
            f"line {line} has {len(row)} fields, expected {width} (as on the first row)",
            "every row needs one value per class",
        )
    try:
        return [float(field) for field in row]
    except ValueError:
        column = next(j for j, f in enumerate(row) if not _is_number(f))
        field = row[column].strip()
        what = "is empty" if not field else f"{_shorten(field)!r} is not a number"
        raise InputError(name, f"line {line}, column {column + 1}: {what}") from None


def _lines(path: str, name: str) -> Iterator[str]:
    """The lines of ``path`` (or standard input), each at most MAX_LINE_CHARS long.

    Opened read-only; UTF-8 with an optional byte-order mark (as spreadsheets write it).
    """
    if path == STDIN:
        binary = sys.stdin.buffer
    else:
        inspect_path(path, binary=False)
        try:
            binary = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise InputError(name, f"cannot be opened: {os_reason(exc)}") from None
    text = None
    try:
        head = binary.peek(16)[:16] if hasattr(binary, "peek") else b""
        if head.startswith((NPY_MAGIC, ZIP_MAGIC)) or b"\0" in head:
            seen = looks_like(head)
            raise InputError(
                name,
                "is a binary file, not CSV text",
                f"{seen}; check the file name's extension" if seen else None,
            )
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
        number = 0
        while True:
            try:
                line = text.readline(MAX_LINE_CHARS + 1)
            except UnicodeDecodeError:
                raise InputError(
                    name,
                    f"line {number + 1} is not text (it is not valid UTF-8)",
                    "is this a binary file? CSV must be UTF-8 text",
                ) from None
            except OSError as exc:
                raise InputError(name, f"cannot be read: {os_reason(exc)}") from None
            if not line:
                return
            number += 1
            if len(line) > MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
                raise InputError(
                    name,
                    f"line {number} is longer than {MAX_LINE_CHARS:,} characters",
                    "is this really a CSV file of logits?",
                )
            if "\0" in line:
                raise InputError(name, f"line {number} contains NUL bytes: not CSV text")
            yield line
    finally:
        if path == STDIN:
            if text is not None:
                with contextlib.suppress(ValueError):  # already closed by its owner
                    text.detach()  # standard input stays open for whoever reads it next
        else:
            binary.close()


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
