"""``.npz`` archives: arrays picked by name, never unpickled."""

from __future__ import annotations

import zipfile

import numpy as np

from softmax_cli.errors import InputError
from softmax_cli.load import ArrayKeys

DEFAULT_LOGITS_KEY = "logits"
DEFAULT_TARGETS_KEY = "targets"


def read_logits(path: str, keys: ArrayKeys) -> tuple[np.ndarray, np.ndarray | None]:
    """The logits array, and the targets if the archive carries them too."""
    with _open(path) as archive:
        names = list(archive.files)
        logits_key = _choose_logits_key(path, names, keys.logits)
        targets_key = keys.targets or DEFAULT_TARGETS_KEY
        if keys.targets is not None and targets_key not in names:
            raise InputError(path, f"has no array {targets_key!r} (it has {_listing(names)})")
        carried = targets_key if targets_key in names and targets_key != logits_key else None
        logits = _member(path, archive, logits_key)
        targets = _member(path, archive, carried) if carried else None
    return logits, targets


def read_targets(path: str, keys: ArrayKeys) -> np.ndarray:
    """The targets array: ``--targets-key``, else ``targets``, else the archive's lone array."""
    with _open(path) as archive:
        names = list(archive.files)
        if keys.targets is not None or DEFAULT_TARGETS_KEY in names:
            key = keys.targets or DEFAULT_TARGETS_KEY
        elif len(names) == 1:
            key = names[0]
        else:
            raise InputError(
                path,
                f"cannot tell which array holds the targets (it has {_listing(names)})",
                "name it with --targets-key",
            )
        if key not in names:
            raise InputError(path, f"has no array {key!r} (it has {_listing(names)})")
        return _member(path, archive, key)


def _choose_logits_key(path: str, names: list[str], requested: str | None) -> str:
    if requested is not None:
        if requested not in names:
            raise InputError(path, f"has no array {requested!r} (it has {_listing(names)})")
        return requested
    if DEFAULT_LOGITS_KEY in names:
        return DEFAULT_LOGITS_KEY
    if len(names) == 1:
        return names[0]
    others = [n for n in names if n != DEFAULT_TARGETS_KEY]
    if len(others) == 1:
        return others[0]
    if not names:
        raise InputError(path, "is an empty .npz archive (it holds no arrays)")
    raise InputError(
        path,
        f"cannot tell which array holds the logits (it has {_listing(names)})",
        "name it with --logits-key",
    )


def _listing(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names) if names else "no arrays"


def _open(path: str) -> np.lib.npyio.NpzFile:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, not a .npz file") from None
    except PermissionError:
        raise InputError(path, "permission denied") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(path, f"not a readable .npz archive: {exc}") from None


def _member(path: str, archive: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    try:
        return archive[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(path, f"array {key!r} cannot be read: {exc}") from None
