"""Several logits files checked as one dump: which files, their targets, and that they fit.

``LOGITS...`` may name files and directories (every supported file directly in one, sorted
by name); ``--targets`` is given once per logits file or not at all. Every file is read
(memory-mapped, so nothing but headers is touched) and compared with the first before any
work, so an odd file is named at once, not after checking the others.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from softmax_cli.errors import InputError, UsageError
from softmax_cli.load import LOGITS_FORMATS, STDIN, ArrayKeys, Loaded, load_inputs

if TYPE_CHECKING:
    from softmax_cli.classify import Part


def logits_files(paths: Sequence[str]) -> list[str]:
    """The logits files ``paths`` name: files as given, directories expanded in place."""
    files: list[str] = []
    for path in paths:
        if path != STDIN and os.path.isdir(path):
            files.extend(directory_files(path))
        else:
            files.append(path)
    if STDIN in files and len(files) > 1:
        raise UsageError("standard input ('-') cannot be one of several logits files")
    return files


def directory_files(directory: str) -> list[str]:
    """Every logits file directly in ``directory``, sorted by name; hidden files (a
    half-written ``.shard.npy.tmp``) are left out."""
    try:
        names = sorted(
            entry.name
            for entry in os.scandir(directory)
            if not entry.name.startswith(".")
            and Path(entry.name).suffix.lower() in LOGITS_FORMATS
            and entry.is_file()
        )
    except OSError as exc:
        raise InputError(directory, f"cannot list the directory: {exc.strerror or exc}") from None
    if not names:
        raise InputError(
            directory,
            "is a directory with no logits files in it",
            f"logits are read from {', '.join(LOGITS_FORMATS)} files directly in it",
        )
    return [os.path.join(directory, name) for name in names]


def pair_targets(files: Sequence[str], targets: Sequence[str]) -> list[str | None]:
    """The targets file of each logits file: none, or one ``--targets`` per file in order."""
    if not targets:
        return [None] * len(files)
    if len(targets) != len(files):
        raise UsageError(
            f"{len(targets)} --targets for {len(files)} logits files: give --targets once per "
            "logits file, in the same order, or not at all"
        )
    return list(targets)


def load_files(
    files: Sequence[str], targets: Sequence[str | None], keys: ArrayKeys
) -> list[Loaded]:
    """Every file read (memory-mapped where the format allows); a bad one raises naming it."""
    return [load_inputs(f, t, keys) for f, t in zip(files, targets, strict=True)]


def check_alike(first: Part, other: Part) -> None:
    """``other`` can be checked in one dump with ``first``: the same classes, compute
    dtype and kind of targets; else an InputError naming ``other``."""
    name, first_name = other.loaded.logits_name, first.loaded.logits_name
    if other.rows.classes != first.rows.classes:
        raise InputError(
            name,
            f"has {other.rows.classes} classes (shape {tuple(other.loaded.logits.shape)}) "
            f"but {first_name} has {first.rows.classes}",
            "files checked together must have the same classes along the class axis",
        )
    if other.compute_dtype != first.compute_dtype:
        raise InputError(
            name,
            f"would be computed in {other.compute_dtype.name} but {first_name} in "
            f"{first.compute_dtype.name}",
            "files checked together share one compute dtype: choose it with --dtype",
        )
    if (other.targets is None) != (first.targets is None):
        problem = (
            f"has no targets but {first_name} has"
            if other.targets is None
            else f"has targets but {first_name} has none"
        )
        raise InputError(
            name,
            problem,
            "give every file targets (or none): --targets once per logits file, in order",
        )


def label(names: Sequence[str]) -> str:
    """One name for several files: ``shards/ (16 files)`` when they share a directory."""
    directories = {os.path.dirname(n) for n in names}
    if len(directories) == 1 and (directory := directories.pop()):
        return f"{os.path.join(directory, '')} ({len(names)} files)"
    return f"{len(names)} files"
