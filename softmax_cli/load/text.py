"""CSV logits (optionally with a header and a target column) and one-per-line targets."""

from __future__ import annotations

import csv
import io
import sys

import numpy as np

from softmax_cli.errors import InputError

STDIN = "-"
DEFAULT_TARGET_COLUMN = "target"


def read_logits(path: str, target_column: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits (float64, exactly as written) and the target column's values, if there is one.

    The first row is a header when any of its fields is not a number. Targets come from
    the column named ``target_column`` (default: ``target``, when the header has it).
    """
    name = "<stdin>" if path == STDIN else path
    rows = [row for row in csv.reader(_read_text(path)) if any(f.strip() for f in row)]
    if not rows:
        raise InputError(name, "is empty: no rows of logits")
    header = rows[0] if not all(_is_number(f) for f in rows[0]) else None
    body = rows[1:] if header is not None else rows
    if not body:
        raise InputError(name, "has a header but no rows of logits")

    target_at = None
    if header is not None:
        columns = [h.strip() for h in header]
        wanted = target_column or DEFAULT_TARGET_COLUMN
        if wanted in columns:
            target_at = columns.index(wanted)
        elif target_column is not None:
            raise InputError(name, f"has no column {target_column!r} (columns: {header})")
    elif target_column is not None:
        raise InputError(name, f"has no header, so no column {target_column!r}")

    width = len(header) if header is not None else len(body[0])
    first_line = 2 if header is not None else 1
    values = np.empty((len(body), width), dtype=np.float64)
    for i, row in enumerate(body):
        if len(row) != width:
            raise InputError(name, f"row {first_line + i} has {len(row)} fields, expected {width}")
        for j, field in enumerate(row):
            try:
                values[i, j] = float(field)
            except ValueError:
                raise InputError(
                    name, f"row {first_line + i}, column {j + 1}: {field.strip()!r} is not a number"
                ) from None
    if target_at is None:
        return values, None
    return np.delete(values, target_at, axis=1), values[:, target_at]


def read_targets(path: str) -> np.ndarray:
    """One integer class index per line (a first line that is not a number is a header)."""
    lines = [line.strip() for line in _read_text(path)]
    lines = [line for line in lines if line]
    if lines and not _is_number(lines[0]):
        lines = lines[1:]
    if not lines:
        raise InputError(path, "holds no targets")
    values = np.empty(len(lines), dtype=np.float64)
    for i, line in enumerate(lines):
        try:
            values[i] = float(line)
        except ValueError:
            raise InputError(path, f"target {i}: {line!r} is not an integer class index") from None
    return values


def _read_text(path: str) -> io.StringIO:
    try:
        if path == STDIN:
            return io.StringIO(sys.stdin.read())
        with open(path, encoding="utf-8", newline="") as handle:
            return io.StringIO(handle.read())
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, not a file") from None
    except PermissionError:
        raise InputError(path, "permission denied") from None
    except UnicodeDecodeError:
        raise InputError(path, "is not text (it is not valid UTF-8)") from None


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True
