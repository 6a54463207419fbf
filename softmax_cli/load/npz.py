"""``.npz`` archives: arrays picked by name, never unpickled, stored ones memory-mapped.

Stored members (``np.savez``) are memory-mapped straight from the archive file, after their
local header has been checked against the central directory, and their CRC-32 is verified
over the bytes the check reads (see integrity.py). Deflated members (``np.savez_compressed``)
are decompressed, but only after their declared size has been checked against what deflate
can produce and what this machine can hold. Nothing else is read: NumPy writes no other
compression method.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from typing import BinaryIO

import numpy as np

from softmax_cli.errors import InputError
from softmax_cli.load import npy
from softmax_cli.load.files import byte_count, first_line, open_binary
from softmax_cli.load.integrity import INLINE_BYTES, CrcCheck
from softmax_cli.load.keys import ArrayKeys, Found, choose_logits, choose_targets
from softmax_cli.load.sniff import ZIP_MAGIC


def read_logits(path: str, keys: ArrayKeys) -> Found:
    """The logits array, and the targets if the archive carries them too."""
    with _open(path) as archive:
        choice = choose_logits(path, archive.files, keys, kind=".npz archive")
        logits, logits_check = _member(path, archive, choice.logits)
        targets, targets_check = (None, None)
        if choice.targets is not None:
            targets, targets_check = _member(path, archive, choice.targets)
    pending = tuple(c for c in (logits_check, targets_check) if c is not None)
    return Found(logits, targets, pending)


def read_targets(path: str, keys: ArrayKeys) -> Found:
    """The targets array: ``--targets-key``, else ``targets``, else the archive's lone array."""
    with _open(path) as archive:
        targets, check = _member(path, archive, choose_targets(path, archive.files, keys))
    return Found(targets, None, (check,) if check is not None else ())


class _Archive:
    """A read-only .npz: the ZIP directory, and each member by its array's name (``x`` for
    ``x.npy``)."""

    def __init__(self, path: str, archive: zipfile.ZipFile) -> None:
        self.path = path
        self.zip = archive
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in archive.infolist():
            if info.is_dir():
                continue
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if key in self.members:
                raise InputError(path, f"holds two arrays named {key!r}; cannot tell them apart")
            self.members[key] = info
        self.files = list(self.members)

    def __enter__(self) -> _Archive:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.zip.close()


def _open(path: str) -> _Archive:
    open_binary(path, ".npz").close()  # a missing, empty or unreadable file, by name
    try:
        archive = zipfile.ZipFile(path, "r")
    except _ZIP_ERRORS as exc:
        raise InputError(
            path,
            f"is not a readable .npz archive: {first_line(exc)}",
            "it may have been cut short while being written or copied",
        ) from None
    try:
        return _Archive(path, archive)
    except InputError:
        archive.close()
        raise
    except _ZIP_ERRORS as exc:  # a member's name zipfile cannot make sense of
        archive.close()
        raise InputError(path, f"is not a readable .npz archive: {first_line(exc)}") from None


# What zipfile and zlib raise on a corrupt archive, besides OSError: a bad directory
# (BadZipFile, struct.error, ValueError, IndexError), an undecodable name (UnicodeError), an
# unsupported method (NotImplementedError), encryption (RuntimeError), a broken stream
# (zlib.error, EOFError), absurd sizes (OverflowError).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    struct.error,
    IndexError,
    UnicodeError,
    NotImplementedError,
    RuntimeError,
    OverflowError,
    zlib.error,
)

# Deflate cannot compress better than about 1032:1; a member that claims more is lying.
_DEFLATE_MAX_RATIO = 1032
# signature, version, flags, method, time, date, CRC-32, sizes, name and extra lengths
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_ZIP64_EXTRA = 0x0001
_DATA_DESCRIPTOR = 0x08  # general purpose flag: CRC and sizes follow the data instead
# A compressed member's trailing bytes after its array are read (to reach the CRC check)
# only up to this many; np.save writes none.
_MAX_TRAILING = 1 << 20
_READ_CHUNK = 1 << 22
_REFUSED_METHODS = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA"}


def _memory_cap() -> int:
    """Half the memory we may use (physical, or a container's cgroup limit if lower): the
    most we agree to decompress into one array."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 8 << 30
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as limit:
            memory = min(memory, int(limit.read().strip()))
    except (OSError, ValueError):  # no cgroup v2 limit ("max", or not Linux)
        pass
    return memory // 2


MAX_DECOMPRESSED_BYTES = _memory_cap()


def _member(path: str, archive: _Archive, key: str) -> tuple[np.ndarray, CrcCheck | None]:
    """One member's array, and for a memory-mapped one the CRC check running on it."""
    info = archive.members[key]
    where = f"{path}: array {key!r}"
    if info.flag_bits & 0x1:
        raise InputError(path, f"array {key!r} is encrypted; softmax-check reads plain .npz files")
    if info.compress_type in _REFUSED_METHODS:
        raise InputError(
            where,
            f"uses {_REFUSED_METHODS[info.compress_type]} compression, which softmax-check "
            "does not read; np.savez_compressed writes deflate",
            "save it again with np.savez (memory-mapped) or np.savez_compressed",
        )
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise InputError(
            where,
            f"uses ZIP compression method {info.compress_type}, which softmax-check "
            "does not read (np.savez_compressed writes deflate)",
        )
    try:
        if info.compress_type == zipfile.ZIP_STORED:
            return _mapped_member(path, where, info)
        return _decompressed_member(path, archive.zip, where, info), None
    except InputError:
        raise
    except _ZIP_ERRORS as exc:
        raise InputError(path, f"array {key!r} cannot be read: {first_line(exc)}") from None


def _data_start(handle: BinaryIO, where: str, info: zipfile.ZipInfo) -> int:
    """Where a member's (possibly compressed) bytes begin in the archive file, after its
    local header has been found to describe the same member as the central directory."""
    archive_size = os.fstat(handle.fileno()).st_size
    handle.seek(info.header_offset)
    local = handle.read(_LOCAL_HEADER.size)
    if len(local) < _LOCAL_HEADER.size:
        raise InputError(where, "is truncated: the archive ends inside its header")
    (signature, _, flags, method, _, _, crc, compressed, size, name_length, extra_length) = (
        _LOCAL_HEADER.unpack(local)
    )
    if signature != ZIP_MAGIC:
        raise InputError(where, "is corrupt: its ZIP header is missing or damaged")
    name = handle.read(name_length)
    extra = handle.read(extra_length)
    if len(name) < name_length or len(extra) < extra_length:
        raise InputError(where, "is truncated: the archive ends inside its header")
    if 0xFFFFFFFF in (compressed, size):
        size, compressed = _zip64_sizes(extra, size, compressed)
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    disagree = []
    if name != info.orig_filename.encode(encoding, "replace"):
        disagree.append(f"the name {name.decode(encoding, 'replace')!r}")
    if method != info.compress_type:
        disagree.append(f"compression method {method}")
    if not flags & _DATA_DESCRIPTOR and (crc, compressed, size) != (
        info.CRC,
        info.compress_size,
        info.file_size,
    ):
        disagree.append("other sizes or CRC")
    if disagree:
        raise InputError(
            where,
            f"is corrupt: its local ZIP header gives {' and '.join(disagree)}, "
            "unlike the archive's directory",
            "the archive was damaged or edited after it was written; write it again",
        )
    start = handle.tell()
    if start + info.compress_size > archive_size:
        raise InputError(where, "is truncated: the archive ends inside its data")
    return start


def _zip64_sizes(extra: bytes, size: int, compressed: int) -> tuple[int, int]:
    """The real sizes of a ZIP64 local header: each size field that is 0xFFFFFFFF is in the
    extra field (uncompressed first; a local header's ZIP64 record holds both)."""
    at = 0
    while at + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, at)
        if tag == _ZIP64_EXTRA and length >= 16 and at + 4 + length <= len(extra):
            size64, compressed64 = struct.unpack_from("<QQ", extra, at + 4)
            return (
                size64 if size == 0xFFFFFFFF else size,
                compressed64 if compressed == 0xFFFFFFFF else compressed,
            )
        at += 4 + length
    return size, compressed


def _mapped_member(path: str, where: str, info: zipfile.ZipInfo) -> tuple[np.ndarray, CrcCheck]:
    """A stored member memory-mapped read-only where its bytes lie in the archive file."""
    if info.compress_size != info.file_size:
        raise InputError(where, "is corrupt: a stored member whose sizes disagree")
    with open(path, "rb") as handle:
        data_start = _data_start(handle, where, info)
        handle.seek(data_start)
        try:
            header = npy.read_header(handle, where, info.file_size)
        except InputError:
            # A damaged member explains itself better by its CRC than by what it now holds.
            if info.file_size <= INLINE_BYTES:
                CrcCheck.start(path, where, data_start, info.file_size, info.CRC)
            raise
    check = CrcCheck.start(path, where, data_start, info.file_size, info.CRC)
    return npy.map_array(path, header, offset=data_start + header.size), check


def _decompressed_member(
    path: str, archive: zipfile.ZipFile, where: str, info: zipfile.ZipInfo
) -> np.ndarray:
    """A deflated member read into memory (read-only), refused before any allocation if it
    is a bomb; zipfile checks its CRC when the stream reaches its end."""
    if info.file_size > _DEFLATE_MAX_RATIO * info.compress_size + 1024:
        raise InputError(
            where,
            f"claims to decompress {info.compress_size:,} bytes into {info.file_size:,}, "
            "more than deflate can: a corrupt or hostile archive (a zip bomb?)",
        )
    with open(path, "rb") as handle:
        _data_start(handle, where, info)
    with archive.open(info) as stream:
        header = npy.read_header(stream, where, info.file_size)
        nbytes = header.nbytes
        if nbytes > MAX_DECOMPRESSED_BYTES:
            raise InputError(
                where,
                f"would decompress to {byte_count(nbytes)}, more than softmax-check will "
                f"hold in memory ({byte_count(MAX_DECOMPRESSED_BYTES)})",
                "save it with np.savez (uncompressed) or np.save: those are memory-mapped "
                "and read as the check goes",
            )
        trailing = info.file_size - header.size - nbytes
        if trailing > _MAX_TRAILING:
            raise InputError(where, f"is corrupt: {trailing:,} unexplained bytes follow its array")
        data = np.empty(nbytes, dtype=np.uint8)
        view = memoryview(data)
        filled = 0
        while filled < nbytes:
            chunk = stream.read(min(_READ_CHUNK, nbytes - filled))
            if not chunk:
                raise InputError(where, "is truncated: its compressed data end early")
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        stream.read(trailing + 1)  # reach the end of the member, where the CRC is checked
    array = data.view(header.dtype).reshape(header.shape, order=header.order)
    array.flags.writeable = False  # like a memory-mapped member: inputs are never changed
    return array
