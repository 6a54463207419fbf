"""Opening input files: why one cannot be read, said once for every format.

Nothing here opens a file before its status has been looked up, so a FIFO never blocks and
a directory or a device is refused by name.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from softmax_cli.errors import InputError

STDIN = "-"


def display_name(path: str) -> str:
    """The name to show for an input: ``<stdin>`` for ``-``, else the path as given."""
    return "<stdin>" if path == STDIN else path


def inspect_path(path: str, *, binary: bool) -> os.stat_result:
    """The file's status, or an InputError saying why it cannot be read.

    ``binary`` formats are seeked and memory-mapped, so they must be regular files; text may
    also come from a pipe or a device. Nothing here opens the file, so a FIFO never blocks.
    """
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except PermissionError:
        raise InputError(path, "permission denied (cannot look up the file)") from None
    except (OSError, ValueError) as exc:  # ELOOP, ENAMETOOLONG, an embedded NUL byte, ...
        raise InputError(path, f"cannot be opened: {os_reason(exc)}") from None
    if stat.S_ISDIR(status.st_mode):
        raise InputError(path, "is a directory, not a file")
    if binary and not stat.S_ISREG(status.st_mode):
        raise InputError(path, "is not a regular file (a pipe or a device cannot be memory-mapped)")
    if not os.access(path, os.R_OK):
        raise InputError(path, "permission denied (the file is not readable)")
    return status


def open_binary(path: str, kind: str) -> BinaryIO:
    """``path`` opened read-only for reading bytes, after :func:`inspect_path`."""
    status = inspect_path(path, binary=True)
    if status.st_size == 0:
        raise InputError(path, f"is empty (0 bytes), not a {kind} file")
    try:
        return open(path, "rb")  # the caller closes it
    except OSError as exc:
        raise InputError(path, f"cannot be opened: {os_reason(exc)}") from None


def read_head(path: str, kind: str, size: int) -> bytes:
    """The first ``size`` bytes of a binary input (fewer if it is shorter), to tell its format."""
    with open_binary(path, kind) as handle:
        try:
            return handle.read(size)
        except OSError as exc:
            raise InputError(path, f"cannot be read: {os_reason(exc)}") from None


def os_reason(exc: BaseException) -> str:
    """The operating system's reason without the file name we already print."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def first_line(exc: BaseException) -> str:
    """An exception's message cut to one short line (a library's may quote a whole header)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def byte_count(count: int) -> str:
    """``count`` bytes for a person: ``8.0 MiB``, ``512 bytes``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"
