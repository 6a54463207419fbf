"""Which array in a file of named arrays is the logits, and which the targets.

One set of rules for ``.npz``, ``.safetensors`` and ``.pt``: the name given with
``--logits-key`` / ``--targets-key``, else ``logits`` / ``targets``, else the file's lone
array (or its lone float array, when the format says which arrays hold floats).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from softmax_cli.errors import InputError

DEFAULT_LOGITS_KEY = "logits"
DEFAULT_TARGETS_KEY = "targets"


@dataclass(frozen=True)
class ArrayKeys:
    """Which arrays to read from an archive, and which CSV column holds targets."""

    logits: str | None = None  # None: "logits", or the archive's lone (float) array
    targets: str | None = None  # None: "targets" if present
    target_column: str | None = None  # None: a target-named column; "none": no targets


class Pending(Protocol):
    """A check of a file's integrity that may still be running (see integrity.py)."""

    def wait(self) -> None:
        """Block until the check is done; raise InputError if the file is corrupt."""


@dataclass(frozen=True, eq=False)
class Found:
    """What a format's reader returns: the array asked for, the targets a logits file
    carries (if any), and the integrity checks still pending on the bytes behind them."""

    array: np.ndarray
    targets: np.ndarray | None = None
    pending: tuple[Pending, ...] = ()
    target_column: str | None = None  # a CSV's column that held the targets, as written


@dataclass(frozen=True)
class Choice:
    """The names of the arrays to read as the logits and as the carried targets."""

    logits: str
    targets: str | None


def choose_logits(
    source: str,
    names: Sequence[str],
    keys: ArrayKeys,
    floats: Collection[str] | None = None,
    kind: str = "archive",
) -> Choice:
    """The logits' name and the carried targets' name (None if the file carries none).

    ``floats`` names the arrays holding floating-point values, when the format tells them
    without reading data; a lone one of them is the logits.
    """
    logits = _logits_key(source, names, keys.logits, floats, kind)
    targets = keys.targets or DEFAULT_TARGETS_KEY
    if keys.targets is not None and targets not in names:
        raise InputError(source, f"has no array {targets!r} (it has {listing(names)})")
    carried = targets if targets in names and targets != logits else None
    return Choice(logits, carried)


def choose_targets(source: str, names: Sequence[str], keys: ArrayKeys) -> str:
    """The targets' name: ``--targets-key``, else ``targets``, else the file's lone array."""
    if keys.targets is not None or DEFAULT_TARGETS_KEY in names:
        key = keys.targets or DEFAULT_TARGETS_KEY
    elif len(names) == 1:
        key = names[0]
    else:
        raise InputError(
            source,
            f"cannot tell which array holds the targets (it has {listing(names)})",
            "name it with --targets-key",
        )
    if key not in names:
        raise InputError(source, f"has no array {key!r} (it has {listing(names)})")
    return key


def _logits_key(
    source: str,
    names: Sequence[str],
    requested: str | None,
    floats: Collection[str] | None,
    kind: str,
) -> str:
    if requested is not None:
        if requested not in names:
            raise InputError(source, f"has no array {requested!r} (it has {listing(names)})")
        return requested
    if DEFAULT_LOGITS_KEY in names:
        return DEFAULT_LOGITS_KEY
    if not names:
        raise InputError(source, f"is an empty {kind} (it holds no arrays)")
    if len(names) == 1:
        return names[0]
    others = [n for n in names if n != DEFAULT_TARGETS_KEY]
    if len(others) == 1:
        return others[0]
    if floats is not None:
        candidates = [n for n in others if n in floats]
        if len(candidates) == 1:
            return candidates[0]
    raise InputError(
        source,
        f"cannot tell which array holds the logits (it has {listing(names)})",
        "name it with --logits-key",
    )


def listing(names: Sequence[str]) -> str:
    """Array names for a message: ``'a', 'b'`` (at most a few, then how many more)."""
    if not names:
        return "no arrays"
    shown = ", ".join(repr(n) for n in names[:8])
    return shown if len(names) <= 8 else f"{shown} and {len(names) - 8} more"
