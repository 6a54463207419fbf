"""Paths -> arrays: the one table of input formats, and the dispatch through it.

Each format is one module (``npy``, ``npz``, ``safetensors``, ``torch``, ``text``) and one
row of :data:`FORMATS`; the row's magic test is checked here first, so a file in another
format than its name says is refused with what it seems to be. Shared helpers live in
``files``, ``sniff`` and ``keys``; array validation in ``softmax_cli.validate``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from softmax_cli.errors import InputError, UsageError
from softmax_cli.load import npy, npz, pytorch, safetensors, text
from softmax_cli.load.files import STDIN, display_name, inspect_path, read_head
from softmax_cli.load.keys import ArrayKeys, Found, Pending
from softmax_cli.load.sniff import HEAD_BYTES, is_npy, is_npz, is_safetensors, is_zip, looks_like

__all__ = ["FORMATS", "ArrayKeys", "InputFormat", "Loaded", "load_inputs", "read_targets"]

Reader = Callable[[str, ArrayKeys], Found]


def _csv_logits(path: str, keys: ArrayKeys) -> Found:
    logits, targets, column = text.read_logits(path, keys.target_column)
    return Found(logits, targets, target_column=column)


def _text_targets(path: str, keys: ArrayKeys) -> Found:
    return Found(text.read_targets(path))


@dataclass(frozen=True)
class InputFormat:
    """One input format: the file names it has, how its files begin, and its readers."""

    noun: str  # what a file of this format is called in messages
    suffixes: tuple[str, ...]
    magic: Callable[[bytes], bool] | None  # None: text, read as a stream (maybe a pipe)
    signature: str  # what ``magic`` looks for, for the message when it is missing
    read_logits: Reader | None  # None: the format holds targets only
    read_targets: Reader


FORMATS = (
    InputFormat(
        ".npy file", (".npy",), is_npy, "the .npy magic bytes", npy.read_array, npy.read_array
    ),
    InputFormat(
        ".npz archive", (".npz",), is_npz, "the ZIP magic bytes", npz.read_logits, npz.read_targets
    ),
    InputFormat(
        ".safetensors file",
        (".safetensors",),
        is_safetensors,
        "a safetensors header: 8 bytes of length, then '{'",
        safetensors.read_logits,
        safetensors.read_targets,
    ),
    InputFormat(
        "PyTorch file",
        (".pt", ".pth"),
        is_zip,
        "the ZIP magic bytes of a torch.save file",
        pytorch.read_logits,
        pytorch.read_targets,
    ),
    InputFormat("CSV file", (".csv",), None, "", _csv_logits, _text_targets),
    InputFormat("text file", (".txt",), None, "", None, _text_targets),
)
LOGITS_FORMATS = tuple(s for f in FORMATS if f.read_logits is not None for s in f.suffixes)
TARGETS_FORMATS = tuple(s for f in FORMATS for s in f.suffixes)


@dataclass(frozen=True, eq=False)
class Loaded:
    """Arrays read from the inputs, with the names to show for them.

    Call :meth:`verify` after the check and before writing any report: memory-mapped
    archive members are verified (CRC-32) while the check reads them.
    """

    logits: np.ndarray
    targets: np.ndarray | None
    logits_name: str
    targets_name: str | None
    from_text: bool  # parsed from CSV: ``--dtype auto`` computes these in float32
    pending: tuple[Pending, ...] = ()
    target_column: str | None = None  # the CSV column that held the targets, as written

    def verify(self) -> None:
        """Wait for the integrity checks still running; InputError if an input is corrupt."""
        for check in self.pending:
            check.wait()


def load_inputs(logits_path: str, targets_path: str | None, keys: ArrayKeys) -> Loaded:
    """Read the logits (and targets: from ``targets_path``, or carried by the logits file)."""
    if logits_path == STDIN and targets_path == STDIN:
        raise UsageError("logits and --targets cannot both be read from standard input ('-')")
    fmt = _format(logits_path, "logits")
    assert fmt.read_logits is not None  # _format picks logits formats only
    found = fmt.read_logits(logits_path, keys)
    targets, targets_name = found.targets, (logits_path if found.targets is not None else None)
    pending, column = found.pending, found.target_column
    if targets_path is not None:
        extra = _read_targets(targets_path, keys)
        targets, targets_name, pending = extra.array, targets_path, pending + extra.pending
        column = None
    return Loaded(
        found.array,
        targets,
        display_name(logits_path),
        targets_name,
        fmt.magic is None,
        pending,
        column,
    )


def read_targets(path: str, keys: ArrayKeys) -> np.ndarray:
    """The targets in ``path``, with any integrity check on them done before returning."""
    found = _read_targets(path, keys)
    for check in found.pending:
        check.wait()
    return found.array


def _read_targets(path: str, keys: ArrayKeys) -> Found:
    return _format(path, "targets").read_targets(path, keys)


def _format(path: str, role: str) -> InputFormat:
    """The row for ``path``'s suffix, once its first bytes have been found to match."""
    if path == STDIN:
        return next(f for f in FORMATS if ".csv" in f.suffixes)  # standard input is CSV
    # A missing or unreadable file is the more useful thing to hear about than its name.
    inspect_path(path, binary=False)
    suffix = Path(path).suffix.lower()
    for fmt in FORMATS:
        if suffix in fmt.suffixes and (role == "targets" or fmt.read_logits is not None):
            break
    else:
        allowed = LOGITS_FORMATS if role == "logits" else TARGETS_FORMATS
        raise InputError(
            path,
            f"unknown {role} format {suffix or '(no extension)'!r}",
            f"{role} are read from {', '.join(allowed)} files",
        )
    if fmt.magic is not None:
        head = read_head(path, suffix, HEAD_BYTES)
        if not fmt.magic(head):
            seen = looks_like(head)  # what it is, and which name would read it
            problem = f"is not a {fmt.noun}"
            if seen is None:
                problem += f" (it does not start with {fmt.signature})"
            raise InputError(path, problem, seen)
    return fmt
