"""``.npz`` archives: arrays picked by name, never unpickled, stored ones memory-mapped."""

from __future__ import annotations

import bz2
import contextlib
import lzma
import os
import struct
import zipfile
import zlib
from typing import BinaryIO

import numpy as np

from softmax_cli.errors import InputError
from softmax_cli.load import ZIP_MAGIC, ArrayKeys, looks_like, npy, open_binary

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


class _Archive:
    """A read-only .npz: the ZIP directory, and each array by its name (``x`` for ``x.npy``).

    Stored members (``np.savez``) are memory-mapped straight from the archive file; compressed
    ones (``np.savez_compressed``) are decompressed, but only after their declared size has
    been checked against what the archive says and what this machine can hold.
    """

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

    def __getitem__(self, key: str) -> np.ndarray:
        return _member(self.path, self, key)


def _open(path: str) -> _Archive:
    with open_binary(path, ".npz") as handle:
        head = handle.read(4)
        if not head.startswith((ZIP_MAGIC, b"PK\x05\x06")):
            seen = looks_like(head + handle.read(8))
            raise InputError(
                path,
                "is not a .npz archive (it does not start with the ZIP magic bytes)",
                f"{seen}; check the file name's extension" if seen else None,
            )
    try:
        archive = zipfile.ZipFile(path, "r")
    except _ZIP_ERRORS as exc:
        raise InputError(
            path,
            f"is not a readable .npz archive: {_reason(exc)}",
            "it may have been cut short while being written or copied",
        ) from None
    try:
        return _Archive(path, archive)
    except InputError:
        archive.close()
        raise
    except _ZIP_ERRORS as exc:  # a member's name zipfile cannot make sense of
        archive.close()
        raise InputError(path, f"is not a readable .npz archive: {_reason(exc)}") from None


# What zipfile and the decompressors raise on a corrupt archive, besides OSError: a bad
# directory (BadZipFile, struct.error, ValueError, IndexError), an undecodable name
# (UnicodeError), an unsupported method (NotImplementedError), encryption (RuntimeError), a
# broken stream (zlib.error, lzma.LZMAError, EOFError), absurd sizes (OverflowError).
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
    lzma.LZMAError,
)

# Deflate cannot compress better than about 1032:1; a member that claims more is lying.
_DEFLATE_MAX_RATIO = 1032
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., name length, extra length
# A compressed member's trailing bytes after its array are read (to reach the CRC check)
# only up to this many; np.save writes none.
_MAX_TRAILING = 1 << 20
_READ_CHUNK = 1 << 22
# xz -9 uses 64 MiB; nothing that writes .npz members needs more.
_MAX_LZMA_DICTIONARY = 1 << 28


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


def _member(path: str, archive: _Archive, key: str) -> np.ndarray:
    info = archive.members[key]
    where = f"{path}: array {key!r}"
    if info.flag_bits & 0x1:
        raise InputError(path, f"array {key!r} is encrypted; softmax-check reads plain .npz files")
    try:
        if info.compress_type == zipfile.ZIP_STORED:
            return _mapped_member(path, where, info)
        return _decompressed_member(path, archive.zip, where, info)
    except InputError:
        raise
    except _ZIP_ERRORS as exc:
        raise InputError(path, f"array {key!r} cannot be read: {_reason(exc)}") from None


def _data_start(handle: BinaryIO, where: str, info: zipfile.ZipInfo) -> int:
    """Where a member's (possibly compressed) bytes begin in the archive file."""
    archive_size = os.fstat(handle.fileno()).st_size
    handle.seek(info.header_offset)
    local = handle.read(_LOCAL_HEADER.size)
    if len(local) < _LOCAL_HEADER.size:
        raise InputError(where, "is truncated: the archive ends inside its header")
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(local)
    if signature != ZIP_MAGIC:
        raise InputError(where, "is corrupt: its ZIP header is missing or damaged")
    start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    if start + info.compress_size > archive_size:
        raise InputError(where, "is truncated: the archive ends inside its data")
    return start


def _mapped_member(path: str, where: str, info: zipfile.ZipInfo) -> np.ndarray:
    """A stored member memory-mapped read-only where its bytes lie in the archive file."""
    if info.compress_size != info.file_size:
        raise InputError(where, "is corrupt: a stored member whose sizes disagree")
    with open(path, "rb") as handle:
        data_start = _data_start(handle, where, info)
        handle.seek(data_start)
        header = npy.read_header(handle, where, info.file_size)
    return npy.map_array(path, header, offset=data_start + header.size)


class _BoundedInflater:
    """A bzip2 or LZMA member decompressed at most ``n`` bytes per read.

    zipfile hands these decompressors whole chunks of input with no output limit, and a
    few kilobytes of bzip2 can expand to gigabytes; ``max_length`` keeps each step small.
    """

    def __init__(self, handle: BinaryIO, where: str, info: zipfile.ZipInfo) -> None:
        self.handle = handle
        self.where = where
        self.info = info
        handle.seek(_data_start(handle, where, info))
        self.left = info.compress_size
        self.position = 0
        self.crc = 0
        if info.compress_type == zipfile.ZIP_BZIP2:
            self.decompressor = bz2.BZ2Decompressor()
        elif info.compress_type == zipfile.ZIP_LZMA:
            # ZIP's LZMA: a 4-byte header (version, properties size), properties, raw LZMA1.
            head = self._raw(4)
            size = struct.unpack("<2xH", head)[0] if len(head) == 4 else 0
            properties = self._raw(size)
            if len(head) < 4 or len(properties) < size:
                raise InputError(where, "is truncated: it ends inside its LZMA header")
            lzma_filter = lzma._decode_filter_properties(lzma.FILTER_LZMA1, properties)
            # The decoder allocates the declared dictionary up front: bound it, as xz does.
            if lzma_filter.get("dict_size", 0) > _MAX_LZMA_DICTIONARY:
                raise InputError(
                    where, f"declares an LZMA dictionary of {lzma_filter['dict_size']:,} bytes"
                )
            self.decompressor = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[lzma_filter])
        else:
            raise InputError(
                where,
                f"uses ZIP compression method {info.compress_type}, which softmax-check "
                "does not read (np.savez_compressed writes deflate)",
            )

    def _raw(self, n: int) -> bytes:
        data = self.handle.read(min(n, self.left))
        self.left -= len(data)
        return data

    def tell(self) -> int:
        return self.position

    def read(self, n: int) -> bytes:
        out = b""
        while len(out) < n and not self.decompressor.eof:
            if self.decompressor.needs_input:
                raw = self._raw(1 << 16)
                if not raw:
                    break
            else:
                raw = b""
            out += self.decompressor.decompress(raw, n - len(out))
        self.position += len(out)
        self.crc = zlib.crc32(out, self.crc)
        return out

    def check_crc(self) -> None:
        if self.position == self.info.file_size and self.crc != self.info.CRC:
            raise InputError(self.where, "is corrupt: its CRC does not match its data")


def _decompressed_member(
    path: str, archive: zipfile.ZipFile, where: str, info: zipfile.ZipInfo
) -> np.ndarray:
    """A compressed member read into memory, refused before any allocation if it is a bomb."""
    if (
        info.compress_type == zipfile.ZIP_DEFLATED
        and info.file_size > _DEFLATE_MAX_RATIO * info.compress_size + 1024
    ):
        raise InputError(
            where,
            f"claims to decompress {info.compress_size:,} bytes into {info.file_size:,}, "
            "more than deflate can: a corrupt or hostile archive (a zip bomb?)",
        )
    with contextlib.ExitStack() as stack:
        if info.compress_type == zipfile.ZIP_DEFLATED:
            stream = stack.enter_context(archive.open(info))
        else:
            stream = _BoundedInflater(stack.enter_context(open(path, "rb")), where, info)
        header = npy.read_header(stream, where, info.file_size)
        nbytes = header.nbytes
        if nbytes > MAX_DECOMPRESSED_BYTES:
            raise InputError(
                where,
                f"would decompress to {npy._bytes(nbytes)}, more than softmax-check will "
                f"hold in memory ({npy._bytes(MAX_DECOMPRESSED_BYTES)})",
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
        if isinstance(stream, _BoundedInflater):
            stream.check_crc()
    return data.view(header.dtype).reshape(header.shape, order=header.order)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text if len(text) <= 160 else text[:157] + "..."
    return text or type(exc).__name__
