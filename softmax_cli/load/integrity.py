"""CRC-32 checks of the bytes a memory-mapped archive member is read from.

A stored ``.npz`` member is mapped, not read through zipfile, so nothing else checks its
CRC. Small members are checked at once; a large one on a background thread started at load
time, which reads the same pages the check is about to read (one pass over the disk, not
two) while the check computes; :meth:`CrcCheck.wait` gives its verdict before any report.
"""

from __future__ import annotations

import mmap
import threading
import zlib

from softmax_cli.errors import InputError
from softmax_cli.load.files import os_reason

# Below this many bytes the CRC takes well under a millisecond: no thread.
INLINE_BYTES = 8 << 20
# zlib.crc32 releases the GIL for each call; 8 MiB steps keep that overhead negligible.
_STEP = 8 << 20


class CrcCheck:
    """The CRC-32 of ``length`` bytes at ``start`` in ``path``, compared with ``expected``.

    ``where`` names the file and member in the error.
    """

    def __init__(self, path: str, where: str, start: int, length: int, expected: int) -> None:
        self.where = where
        self._path = path
        self._start = start
        self._length = length
        self._expected = expected
        self._problem: str | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def start(cls, path: str, where: str, start: int, length: int, expected: int) -> CrcCheck:
        """A check already running (or, for a small member, already done: then a corrupt
        one raises here)."""
        check = cls(path, where, start, length, expected)
        if length <= INLINE_BYTES:
            check._run()
            check.wait()
        else:
            check._thread = threading.Thread(target=check._run, name="crc32", daemon=True)
            check._thread.start()
        return check

    def wait(self) -> None:
        """Block until the CRC is known; InputError if it does not match the archive's."""
        if self._thread is not None:
            self._thread.join()
        if self._problem is not None:
            raise InputError(
                self.where,
                self._problem,
                "the file was damaged after it was written (a bad copy or disk?); write it again",
            )

    def _run(self) -> None:
        try:
            crc = self._crc()
        except (OSError, ValueError, BufferError) as exc:
            self._problem = f"cannot be verified: {os_reason(exc)}"
            return
        if crc != self._expected:
            self._problem = (
                f"is corrupt: its data's CRC-32 is {crc:08x}, the archive says {self._expected:08x}"
            )

    def _crc(self) -> int:
        if self._length == 0:
            return 0
        with open(self._path, "rb") as handle:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            end = self._start + self._length
            if end > len(mapped):
                raise ValueError("the archive ends inside the member")
            crc = 0
            with memoryview(mapped) as whole:
                for offset in range(self._start, end, _STEP):
                    with whole[offset : min(offset + _STEP, end)] as step:
                        crc = zlib.crc32(step, crc)
            return crc
        finally:
            mapped.close()
