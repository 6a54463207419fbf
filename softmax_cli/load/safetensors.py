"""``.safetensors`` files: the header validated by the safetensors library, each tensor
then memory-mapped read-only at its data offset (never read whole into memory).

The library's ``safe_open`` checks the untrusted header (its length, its JSON, every dtype,
shape and offset against the file's size, no overlaps or gaps); only then is the header
read here too, bounded, for the data offsets the library does not expose.
"""

from __future__ import annotations

import json
import math
import struct

import ml_dtypes
import numpy as np
from safetensors import SafetensorError, safe_open

from softmax_cli.errors import InputError
from softmax_cli.load.files import first_line, open_binary, os_reason
from softmax_cli.load.keys import ArrayKeys, Found, choose_logits, choose_targets
from softmax_cli.load.npy import ArrayHeader, map_array
from softmax_cli.load.sniff import MAX_SAFETENSORS_HEADER

# safetensors dtype names -> NumPy dtypes (the format is little-endian); the others
# (float8 variants, F4/F6, complex) are refused by name.
DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
_LENGTH = struct.Struct("<Q")


def read_logits(path: str, keys: ArrayKeys) -> Found:
    """The logits tensor, and the targets if the file carries them too."""
    tensors = _tensors(path)
    floats = [name for name, (dtype, _, _) in tensors.items() if dtype in FLOAT_DTYPES]
    choice = choose_logits(path, list(tensors), keys, floats, kind=".safetensors file")
    targets = _array(path, tensors, choice.targets) if choice.targets else None
    return Found(_array(path, tensors, choice.logits), targets)


def read_targets(path: str, keys: ArrayKeys) -> Found:
    """The targets tensor: ``--targets-key``, else ``targets``, else the file's lone tensor."""
    tensors = _tensors(path)
    return Found(_array(path, tensors, choose_targets(path, list(tensors), keys)))


# name -> (safetensors dtype, shape, absolute byte offset of its data)
_Index = dict[str, tuple[str, tuple[int, ...], int]]


def _tensors(path: str) -> _Index:
    """Every tensor's dtype, shape and data offset, from a header the library has accepted."""
    with open_binary(path, ".safetensors") as handle:
        try:
            size = handle.seek(0, 2)
            handle.seek(0)
            head = handle.read(_LENGTH.size)
        except OSError as exc:
            raise InputError(path, f"cannot be read: {os_reason(exc)}") from None
        if len(head) < _LENGTH.size:
            raise InputError(path, "is truncated: it ends inside the safetensors header length")
        (length,) = _LENGTH.unpack(head)
        if length > MAX_SAFETENSORS_HEADER or _LENGTH.size + length > size:
            raise InputError(
                path,
                f"has a corrupt safetensors header: it declares {length:,} bytes of header "
                f"in a file of {size:,} bytes",
            )
        declared = _declared(path)
        try:
            header = json.loads(handle.read(length))
        except (ValueError, RecursionError, OSError) as exc:
            raise InputError(path, f"has a corrupt safetensors header: {first_line(exc)}") from None
    data_start = _LENGTH.size + length
    index: _Index = {}
    for name, (dtype, shape) in declared.items():
        entry = header.get(name) if isinstance(header, dict) else None
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or entry.get("dtype") != dtype
            or tuple(entry.get("shape", ())) != shape
        ):
            raise InputError(path, f"has an ambiguous safetensors header for tensor {name!r}")
        begin, end = offsets
        if dtype in DTYPES and end - begin != math.prod(shape) * DTYPES[dtype].itemsize:
            raise InputError(path, f"has a corrupt safetensors header for tensor {name!r}")
        if not 0 <= begin <= end <= size - data_start:
            raise InputError(path, f"has a corrupt safetensors header for tensor {name!r}")
        index[name] = (dtype, shape, data_start + begin)
    return index


def _declared(path: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Each tensor's dtype and shape as the safetensors library reads and validates them."""
    try:
        with safe_open(path, framework="numpy") as tensors:
            declared = {}
            for name in tensors.keys():  # noqa: SIM118 - safe_open is not a mapping
                info = tensors.get_slice(name)
                declared[name] = (str(info.get_dtype()), tuple(int(n) for n in info.get_shape()))
            return declared
    except SafetensorError as exc:
        reason = first_line(exc).removeprefix("Error while deserializing header: ")
        raise InputError(
            path,
            f"is not a valid safetensors file: {reason}",
            "its header does not describe its bytes: it was cut short, damaged, or not "
            "written by safetensors",
        ) from None
    except OSError as exc:
        raise InputError(path, f"cannot be read: {os_reason(exc)}") from None


def _array(path: str, tensors: _Index, name: str) -> np.ndarray:
    dtype_name, shape, offset = tensors[name]
    dtype = DTYPES.get(dtype_name)
    if dtype is None:
        raise InputError(
            path,
            f"tensor {name!r} has dtype {dtype_name}, which softmax-check does not read",
            "save logits as F64, F32, F16 or BF16 and targets as integers",
        )
    header = ArrayHeader(dtype, shape, fortran_order=False, size=0)
    return map_array(path, header, offset)
