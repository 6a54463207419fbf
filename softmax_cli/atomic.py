"""Files written whole or not at all: to a temporary name beside the target, then renamed.

A reader (or a crash) sees the old file or the new one, never half of one; the temporary
file is removed on any failure, a signal included.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write(target: str | Path, write_to: Callable[[str], object]) -> None:
    """``write_to(temporary)`` fills a new file beside ``target``, which gets a new file's
    mode and is then renamed over ``target``."""
    target = Path(target)
    # A short prefix: the temporary name must fit where the target's name just fits.
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:40]}.")
    os.close(fd)
    try:
        write_to(temporary)
        os.chmod(temporary, 0o666 & ~umask())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def umask() -> int:
    """The process's umask (reading it means setting it: set back at once)."""
    current = os.umask(0)
    os.umask(current)
    return current
