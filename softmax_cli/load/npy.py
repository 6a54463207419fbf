"""``.npy`` files: the header checked against the file, then memory-mapped read-only.

Nothing is ever unpickled and nothing is allocated from what a header claims until the claim
has been checked against the bytes that are really there: a header declaring a terabyte of
data in a kilobyte file is refused, not attempted.
"""

from __future__ import annotations

import math
import tokenize
import warnings
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from softmax_cli.errors import InputError
from softmax_cli.load.files import byte_count, first_line, open_binary, os_reason
from softmax_cli.load.keys import ArrayKeys, Found
from softmax_cli.load.sniff import NPY_MAGIC, looks_like

# The largest byte count NumPy can index: anything above is an absurd header, not data.
_MAX_BYTES = np.iinfo(np.intp).max


# What NumPy's header parser (ast.literal_eval of the header text) raises on a corrupt one.
_HEADER_ERRORS = (
    ValueError,
    TypeError,
    SyntaxError,
    tokenize.TokenError,
    RecursionError,
    MemoryError,
    OverflowError,
    EOFError,
    UnicodeError,
)


@dataclass(frozen=True)
class ArrayHeader:
    """What a .npy header declares, checked to be a plain numeric-or-text array."""

    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool
    size: int  # bytes from the start of the .npy data to the first array byte

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def order(self) -> str:
        return "F" if self.fortran_order else "C"


def read_array(path: str, keys: ArrayKeys | None = None) -> Found:
    """The array in ``path``, memory-mapped read-only (pages are read as the chunk loop
    reaches them). A .npy file holds one array, so ``keys`` has nothing to pick."""
    with open_binary(path, ".npy") as handle:
        size = _file_size(handle)
        header = read_header(handle, path, size)
    return Found(map_array(path, header, offset=header.size))


def read_header(stream: BinaryIO, source: str, total: int) -> ArrayHeader:
    """Parse the .npy header at the stream's position; ``total`` bytes of .npy data follow it.

    Raises InputError for anything but a plain array whose data fits in ``total`` bytes.
    """
    start = stream.tell()
    try:
        head = stream.read(len(NPY_MAGIC) + 2)
        if not head.startswith(NPY_MAGIC):
            seen = looks_like(head)
            raise InputError(
                source,
                "is not a .npy file (it does not start with the .npy magic bytes)",
                seen,
            )
        if len(head) < len(NPY_MAGIC) + 2:
            raise InputError(source, "is truncated: it ends inside the .npy header")
        version = (head[-2], head[-1])
        if version == (1, 0):
            read = np.lib.format.read_array_header_1_0
        elif version == (2, 0):
            read = np.lib.format.read_array_header_2_0
        else:
            raise InputError(
                source,
                f"uses .npy format version {version[0]}.{version[1]}, which softmax-check "
                "does not read (only 1.0 and 2.0 hold plain numeric arrays)",
            )
        # NumPy parses the header with ast.literal_eval: a corrupt one may hold an escape
        # such as "\X", which Python warns of (a SyntaxWarning, shown by default from 3.12)
        # before the header is refused below or taken for what it says.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", SyntaxWarning)
            shape, fortran_order, dtype = read(stream)
        size = stream.tell() - start
    except InputError:
        raise
    except _HEADER_ERRORS as exc:
        raise InputError(source, f"has a corrupt .npy header: {first_line(exc)}") from None
    except OSError as exc:
        raise InputError(source, f"cannot be read: {os_reason(exc)}") from None
    header = ArrayHeader(np.dtype(dtype), tuple(shape), bool(fortran_order), size)
    _check_header(header, source, total - size)
    return header


def _check_header(header: ArrayHeader, source: str, available: int) -> None:
    dtype, shape = header.dtype, header.shape
    if dtype.hasobject:
        raise InputError(
            source,
            f"holds Python objects (dtype {dtype}); softmax-check never unpickles files",
            "save the logits as a numeric array, e.g. np.save(path, logits.astype(np.float32))",
        )
    if dtype.names is not None or dtype.subdtype is not None:
        raise InputError(
            source,
            f"holds a structured array (dtype {dtype}), not a plain numeric array",
            "save the logits field on its own, e.g. np.save(path, records['logits'])",
        )
    if dtype.itemsize == 0:
        raise InputError(source, f"has dtype {dtype}, whose elements hold no data")
    if any(n < 0 for n in shape):
        raise InputError(source, f"has a corrupt .npy header: negative shape {shape}")
    nbytes = header.nbytes
    if nbytes > _MAX_BYTES:
        raise InputError(
            source,
            f"has a corrupt .npy header: shape {shape} of {dtype} would be {nbytes:,} bytes",
        )
    if nbytes > available:
        raise InputError(
            source,
            f"is truncated: its header declares shape {shape} of {dtype} "
            f"({byte_count(nbytes)}) but only {byte_count(max(available, 0))} of data follow",
            "the file was probably cut short while being written or copied",
        )


def map_array(path: str, header: ArrayHeader, offset: int) -> np.ndarray:
    """The checked array at byte ``offset`` of ``path``, memory-mapped read-only."""
    try:
        if header.nbytes == 0:  # mmap cannot map nothing; an empty array is what it holds
            return np.empty(header.shape, header.dtype, order=header.order)
        return np.memmap(
            path,
            dtype=header.dtype,
            mode="r",
            offset=offset,
            shape=header.shape,
            order=header.order,
        )
    except (ValueError, OverflowError) as exc:
        raise InputError(path, f"cannot be mapped: {first_line(exc)}") from None
    except OSError as exc:
        raise InputError(path, f"cannot be memory-mapped: {os_reason(exc)}") from None


def _file_size(handle: BinaryIO) -> int:
    handle.seek(0, 2)
    size = handle.tell()
    handle.seek(0)
    return size
