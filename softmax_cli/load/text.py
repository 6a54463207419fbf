"""CSV logits (optionally with a header and a target column) and one-per-line targets.

Logits are parsed exactly as float64 (each decimal rounded once, as Python's ``float``
rounds it) and targets exactly as int64. Text is read as a stream of bounded lines, in
blocks, each line parsed by NumPy's C parser straight into float64: no Python object per
value, so reading costs about the values' own bytes plus one block of text. A file with one
enormous line, or with NUL bytes, is refused after reading at most one line's worth.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import shlex
import sys
import warnings
from collections.abc import Callable, Iterator

import numpy as np

from softmax_cli.errors import InputError
from softmax_cli.load.files import inspect_path, os_reason
from softmax_cli.load.sniff import NPY_MAGIC, ZIP_MAGIC, looks_like

STDIN = "-"
# Header names that mean "this column holds the targets" (case-insensitive, spaces stripped).
TARGET_NAMES = frozenset({"target", "targets", "label", "labels", "y", "class"})
NO_TARGETS = "none"  # --target-column none: every column is a class
# The longest line we read (characters): a row of 250k vocabulary logits at full float64
# precision is about 6M; anything past this is not a row of numbers.
MAX_LINE_CHARS = 64 << 20
_BLOCK_ROWS = 4096
_BLOCK_CHARS = 4 << 20  # a block of lines is parsed at once; its text is all that is held
_CLASS_NAME = re.compile(r"(?:[a-z_][a-z_ .-]*)?\d+", re.IGNORECASE)  # 0, c0, class_3, logit_12
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_NUMBER_START = re.compile(r"\s*[+\-.\d]")  # how a number, or a mistyped one, begins
_EXACT = 2.0**53  # every integer below this in magnitude is exactly a float64
_INT64 = np.iinfo(np.int64)
_REMAPPED = 64 << 20  # arrays this large live in their own mapping (glibc's mmap threshold)

Row = str | list[str]  # a line as read, or (for a line with quotes) its CSV fields


def read_logits(
    path: str, target_column: str | None
) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """Logits (float64, exactly as written), the targets column's values, and its name.

    The first row is a header only when it is one (every field a name; pandas' unnamed
    index column is recognised and dropped); a first row that is neither a header nor a row
    of numbers is refused rather than dropped. ``target_column`` names the targets column
    (case-insensitive), ``"none"`` says there is none; by default a column named like a
    target (``target``, ``label``, ``y``, ...) holds them. Arrays are read-only.
    """
    name = "<stdin>" if path == STDIN else path
    lines = _lines(path, name)
    try:
        return _parse_csv(_rows(lines, name), name, target_column)
    finally:
        lines.close()  # closes the file now, not when the generator is collected


def read_targets(path: str) -> np.ndarray:
    """One integer class index per line, as int64 exactly (a first line that is a name, such
    as ``target``, is a header). Float64 instead when some value is not an integer, for
    ``check_targets`` to name; read-only."""
    name = "<stdin>" if path == STDIN else path
    lines = _lines(path, name)
    try:
        return _parse_targets(lines, name)
    finally:
        lines.close()


# --- CSV logits -------------------------------------------------------------------------


class _Columns:
    """What each column of a CSV is: the header's names, which holds the targets, which are
    classes, and which (oddly named, so far all integers) might be targets in disguise."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.names: list[str] | None = None  # None: no header
        self.header_line = 0
        self.index = False  # the first column is a pandas index (0, 1, 2, ...)
        self.target: int | None = None
        self.suspects: list[int] = []

    @property
    def classes(self) -> list[int]:
        first = 1 if self.index else 0
        return [j for j in range(first, self.width) if j != self.target]


def _parse_csv(
    rows: Iterator[tuple[int, Row]], name: str, target_column: str | None
) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    start = next(rows, None)
    if start is None:
        raise InputError(name, "is empty: no rows of logits")
    number, first = start
    with _numpy_refusals_raise():
        numbers = _numbers(first) if isinstance(first, str) else None
    if numbers is not None:
        columns = _Columns(first.count(",") + 1)  # a row of numbers, read without splitting
    else:
        fields = first if isinstance(first, list) else _split(first)
        columns = _Columns(len(fields))
        if _header(fields, number, name, target_column):
            columns.names = [f.strip() for f in fields]
    if columns.names is not None:
        columns.header_line = number
        columns.index = columns.names[0] == ""
        _choose_target(columns, name, target_column)
    elif target_column is not None and target_column.strip().casefold() != NO_TARGETS:
        raise InputError(name, f"has no header, so no column {target_column!r}")

    reader = _Reader(name, columns)
    if columns.names is None:
        reader.add([(number, first)], numbers)
    block: list[tuple[int, Row]] = []
    chars = 0
    for number, row in rows:
        if isinstance(row, list):  # quoted: parsed alone, in order
            reader.add(block)
            block, chars = [], 0
            reader.add([(number, row)])
            continue
        block.append((number, row))
        chars += len(row)
        if len(block) >= _BLOCK_ROWS or chars >= _BLOCK_CHARS:
            reader.add(block)
            block, chars = [], 0
    reader.add(block)
    return reader.result()


class _Reader:
    """Blocks of rows parsed to float64 and split into logits and targets as they come."""

    def __init__(self, name: str, columns: _Columns) -> None:
        self.name = name
        self.columns = columns
        self.classes = columns.classes
        self.logits = _Growing(len(self.classes))
        self.targets = _Targets(name) if columns.target is not None else None
        self.integral = np.ones(len(columns.suspects), dtype=bool)

    def add(self, block: list[tuple[int, Row]], parsed: np.ndarray | None = None) -> None:
        """Parse ``block`` (unless its one row is ``parsed`` already) and file its columns."""
        if not block:
            return
        if parsed is not None:
            parsed.shape = (1, parsed.size)  # in place: the array stays its own
            values = parsed
        else:
            values = _parse_block(block, self.name, self.columns.width)
        columns = self.columns
        if columns.index:
            _check_index(values[:, 0], self.logits.rows, block, self.name, columns.header_line)
        if self.targets is not None:
            at = columns.target

            def field(i: int) -> tuple[str, int]:
                number, row = block[i]
                return (row if isinstance(row, list) else _split(row))[at], number

            self.targets.extend(values[:, at], field)
        if columns.suspects:
            suspect = values[:, columns.suspects]
            self.integral &= (np.isfinite(suspect) & (suspect == np.trunc(suspect))).all(axis=0)
        whole = len(self.classes) == columns.width
        self.logits.extend(values if whole else values[:, self.classes])

    def result(self) -> tuple[np.ndarray, np.ndarray | None, str | None]:
        columns = self.columns
        if self.logits.rows == 0:
            raise InputError(self.name, "has a header but no rows of logits")
        if self.integral.any():
            j = columns.suspects[int(np.flatnonzero(self.integral)[0])]
            column = columns.names[j]
            raise InputError(
                self.name,
                f"column {j + 1} ({column!r}) holds only integers, and its name is neither "
                f"a class (like 'c0' or '3') nor a target ({', '.join(sorted(TARGET_NAMES))})",
                f"if it holds the targets, pass --target-column {shlex.quote(column)}; "
                "if every column is a class, pass --target-column none",
            )
        logits = _frozen(self.logits.result())
        if self.targets is None:
            return logits, None, None
        return logits, self.targets.result(), columns.names[columns.target]


def _header(fields: list[str], number: int, name: str, target_column: str | None) -> bool:
    """Whether the first row is a header; an InputError if it is neither that nor data.

    A header names every column: names that are not numbers and do not begin as numbers
    do, so that a mistyped number ('2.o') is never taken for a name. Integer names (``0``,
    ``17``) are allowed beside target names (pandas writes a frame's column numbers); an
    empty first name is pandas' index column.
    """
    kinds = [_kind(f) for f in fields]
    if all(k in ("integer", "number") for k in kinds):
        return False
    wanted = (target_column or "").strip().casefold()
    for j, (field, kind) in enumerate(zip(fields, kinds, strict=True)):
        if kind == "garbled" and field.strip().casefold() == wanted:
            kinds[j] = "name"  # --target-column 1st_label names a column that looks odd
    names = [f.strip() for f, k in zip(fields, kinds, strict=True) if k == "name"]
    bad = next((j for j, k in enumerate(kinds) if k == "garbled" or (k == "empty" and j)), None)
    if bad is None and kinds[0] == "empty" and len(kinds) == 1:
        bad = 0
    if bad is None and "number" not in kinds:
        if "integer" not in kinds:
            return True  # every column named (pandas: all but its index)
        if all(n.casefold() in TARGET_NAMES or n.casefold() == wanted for n in names):
            return True  # class numbers as names, with a target column
    if bad is None and not names:
        bad = kinds.index("empty")  # numbers beside an empty field, no name: a row with a hole
    if bad is None:
        bad = next(j for j, k in enumerate(kinds) if k == "name")
        numbers = [j for j, k in enumerate(kinds) if k in ("integer", "number")]
        seen = (
            f"column {bad + 1} is the name {_shorten(fields[bad].strip())!r} "
            f"but column {numbers[0] + 1} is the number {fields[numbers[0]].strip()!r}"
        )
    elif kinds[bad] == "empty":
        seen = f"column {bad + 1} is empty"
    else:
        seen = f"column {bad + 1}: {_shorten(fields[bad].strip())!r} is not a number"
    raise InputError(
        name,
        f"line {number} is neither a header nor a row of numbers: {seen}",
        "if it is data, fix that field (write a missing value as nan); if it is a header, "
        "name every column with a name that starts with a letter",
    )


def _kind(field: str) -> str:
    text = field.strip()
    if not text:
        return "empty"
    if _is_number(text):
        return "integer" if _INTEGER.fullmatch(text) else "number"
    return "garbled" if _NUMBER_START.match(text) else "name"


def _choose_target(columns: _Columns, name: str, target_column: str | None) -> None:
    """Which column holds the targets: the one named, or the one named like a target."""
    names = columns.names
    first = 1 if columns.index else 0
    candidates = range(first, columns.width)
    if target_column is not None:
        wanted = target_column.strip()
        if wanted.casefold() == NO_TARGETS:
            return
        exact = [j for j in candidates if names[j] == wanted]
        folded = [j for j in candidates if names[j].casefold() == wanted.casefold()]
        chosen = exact or folded
        if len(chosen) > 1:
            shown = ", ".join(repr(names[j]) for j in chosen)
            raise InputError(name, f"has {len(chosen)} columns named {target_column!r}: {shown}")
        if not chosen:
            shown = ", ".join(repr(c) for c in names[:10])
            shown += ", ..." if len(names) > 10 else ""
            raise InputError(name, f"has no column {target_column!r} (columns: {shown})")
        columns.target = chosen[0]
        return
    targets = [j for j in candidates if names[j].casefold() in TARGET_NAMES]
    if len(targets) > 1:
        shown = ", ".join(repr(names[j]) for j in targets)
        raise InputError(
            name,
            f"has {len(targets)} columns named like targets: {shown}",
            "pass --target-column NAME to say which one holds the targets",
        )
    columns.target = targets[0] if targets else None
    columns.suspects = [
        j for j in candidates if j != columns.target and not _CLASS_NAME.fullmatch(names[j])
    ]


def _check_index(
    column: np.ndarray, start: int, block: list[tuple[int, Row]], name: str, header: int
) -> None:
    """A pandas index column counts the rows from 0; anything else in an unnamed first
    column means it is not one (or the first row was data with an empty first field)."""
    wrong = np.flatnonzero(column != np.arange(start, start + len(column)))
    if wrong.size:
        i = int(wrong[0])
        raise InputError(
            name,
            f"line {header} names every column but the first, as pandas does for its "
            f"index, but line {block[i][0]} holds {column[i]:g} there, not the row number "
            f"{start + i}",
            f"if line {header} is data, fill in its empty first field; otherwise name the "
            "first column, or write the file with df.to_csv(index=False)",
        )


def _parse_block(block: list[tuple[int, Row]], name: str, width: int) -> np.ndarray:
    """Rows of ``width`` numbers as a float64 array; an InputError names the first bad field.

    Each line goes to NumPy's C parser whole (``np.fromstring``: one float64 per field and
    no Python object per field, so a row of a million values costs its 8 MB); only a line
    it refuses, or whose field count is off, is split and parsed field by field, which
    finds the line and column to report or accepts what ``float`` also takes (``1_000``).
    """
    if len(block) == 1 and isinstance(block[0][1], str):
        with _numpy_refusals_raise():
            parsed = _numbers(block[0][1])
        if parsed is not None and parsed.size == width:
            parsed.shape = (1, width)  # one (maybe very wide) row: no second copy of it
            return parsed
    values = np.empty((len(block), width))
    with _numpy_refusals_raise():
        for i, (number, row) in enumerate(block):
            if isinstance(row, str) and row.count(",") == width - 1:
                parsed = _numbers(row)
                if parsed is not None:
                    values[i] = parsed
                    continue
            fields = row if isinstance(row, list) else _split(row)
            values[i] = _parse_row(fields, name, number, width)
    return values


def _numbers(line: str) -> np.ndarray | None:
    """A line's comma-separated numbers, or None if NumPy cannot read all of it (or it
    holds ``(``: NumPy reads ``nan(1)``, Python's ``float`` does not)."""
    if "(" in line:
        return None
    try:
        parsed = np.fromstring(line, sep=",")
    except (ValueError, DeprecationWarning):
        return None
    return parsed if parsed.size == line.count(",") + 1 else None


@contextlib.contextmanager
def _numpy_refusals_raise() -> Iterator[None]:
    """Older NumPy warns (DeprecationWarning) where newer raises, on a line that it cannot
    read to its end: make both raise, for :func:`_numbers` to catch."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        yield


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


def _split(line: str) -> list[str]:
    return next(csv.reader([line]), [])


def _rows(lines: Iterator[str], name: str) -> Iterator[tuple[int, Row]]:
    """Non-blank rows and their line numbers: a line as read, or, when it has a quote, its
    CSV fields (a quoted field may span lines: the number is the row's last line)."""
    source = _Numbered(lines)
    reader = csv.reader(source)
    for line in source:
        if line.isspace():
            continue
        if '"' not in line:
            yield source.number, line
            continue
        source.held = line
        try:
            row = next(reader)
        except csv.Error as exc:
            raise InputError(name, f"line {source.number}: not valid CSV ({exc})") from None
        yield source.number, row


class _Numbered:
    """Lines, counted, with one line that can be handed back (for the csv reader)."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = lines
        self.number = 0
        self.held: str | None = None

    def __iter__(self) -> _Numbered:
        return self

    def __next__(self) -> str:
        if self.held is not None:
            line, self.held = self.held, None
            return line
        line = next(self.lines)
        self.number += 1
        return line


# --- targets ----------------------------------------------------------------------------


def _parse_targets(lines: Iterator[str], name: str) -> np.ndarray:
    targets = _Targets(name)
    block: list[tuple[int, str]] = []
    first = True
    for number, raw in enumerate(lines, start=1):
        if raw.isspace():
            continue
        if first:
            first = False
            if _kind(raw) == "name":  # a header such as "target"
                continue
        block.append((number, raw))
        if len(block) >= _BLOCK_ROWS:
            _add_targets(targets, block, name)
            block = []
    _add_targets(targets, block, name)
    if targets.values.rows == 0:
        raise InputError(name, "holds no targets")
    return targets.result()


def _add_targets(targets: _Targets, block: list[tuple[int, str]], name: str) -> None:
    if not block:
        return
    try:
        values = np.loadtxt(
            [line for _, line in block], delimiter=None, comments=None, dtype=np.float64, ndmin=1
        )
    except ValueError:
        values = None
    if values is None or values.shape != (len(block),):
        parsed = []
        for number, line in block:
            try:
                parsed.append(float(line))
            except ValueError:
                raise InputError(
                    name, f"line {number}: {_shorten(line.strip())!r} is not an integer class index"
                ) from None
        values = np.array(parsed, dtype=np.float64)
    targets.extend(values, lambda i: (block[i][1], block[i][0]))


class _Targets:
    """Target values gathered as float64, with the exact integer kept for any float64 could
    round (2**53 or more), so that 2**62 + 1 stays 2**62 + 1."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.values = _Growing(None)
        self.exact: dict[int, int] = {}

    def extend(self, values: np.ndarray, field: Callable[[int], tuple[str, int]]) -> None:
        large = np.flatnonzero(np.isfinite(values) & (np.abs(values) >= _EXACT))
        for i in large.tolist():
            text, number = field(i)
            self.exact[self.values.rows + i] = _exact_integer(text, self.name, number)
        self.values.extend(values)

    def result(self) -> np.ndarray:
        values = self.values.result()
        if not (np.isfinite(values) & (values == np.trunc(values))).all():
            return _frozen(values)  # check_targets names the value that is not a class
        large = np.fromiter(self.exact, dtype=np.intp, count=len(self.exact))
        values[large] = 0  # a float64 near 2**63 may not fit int64; its exact value does
        exact = values.astype(np.int64)
        exact[large] = np.fromiter(self.exact.values(), dtype=np.int64, count=len(self.exact))
        return _frozen(exact)


def _exact_integer(text: str, name: str, number: int) -> int:
    """The integer a (large) target field holds, exactly; an InputError beyond int64."""
    text = text.strip()
    try:
        value = int(text)
    except ValueError:
        value = int(float(text))  # '4.6e18' is an integer too, the float's exact value
    if not _INT64.min <= value <= _INT64.max:
        raise InputError(
            name,
            f"line {number}: target {_shorten(text)!r} does not fit in a 64-bit integer",
            "targets are class indices (or the ignore index), which int64 holds",
        )
    return value


# --- shared -----------------------------------------------------------------------------


class _Growing:
    """Rows appended to one array that grows in place (``realloc``, which for large arrays
    remaps pages instead of copying), so the data never exists twice."""

    def __init__(self, width: int | None) -> None:
        self.shape = () if width is None else (width,)
        self.array = np.empty((0, *self.shape))
        self.rows = 0

    def extend(self, block: np.ndarray) -> None:
        need = self.rows + len(block)
        if self.rows == 0 and block.flags.owndata and block.flags.c_contiguous:
            self.array, self.rows = block, need  # the first block becomes the array
            return
        if need > len(self.array):
            # Small arrays grow by a quarter (realloc copies them); large ones, which
            # realloc remaps without copying, by what is needed, so nothing is spare.
            large = self.array.nbytes >= _REMAPPED
            capacity = need if large else max(need, len(self.array) * 5 // 4)
            self.array.resize((capacity, *self.shape), refcheck=False)
        self.array[self.rows : need] = block
        self.rows = need

    def result(self) -> np.ndarray:
        self.array.resize((self.rows, *self.shape), refcheck=False)
        return self.array


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


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
