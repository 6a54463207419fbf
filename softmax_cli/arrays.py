"""Whatever a caller of :func:`softmax_cli.check` passes, as a NumPy array or an InputError.

Accepted without the caller converting: NumPy arrays (memory maps too), ``torch.Tensor`` on
any device and in any float dtype (bfloat16 as ``ml_dtypes.bfloat16``), objects exporting
DLPack (``np.from_dlpack``) or ``__array__`` (JAX, CuPy via DLPack, xarray, pandas), and
nested lists. A CPU tensor or a DLPack export is shared, never copied; a tensor on another
device is copied to the CPU once, which cannot be avoided. A NumPy masked array's mask is
honoured: masked logits are ``-inf`` (a mask, as ``masked_fill(mask, -inf)`` makes them)
and masked targets are the ignore index. torch is imported only when given a tensor.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from softmax_cli.errors import InputError

_SUPPORTED_TORCH = "float64, float32, float16 or bfloat16 logits and integer targets"


def logits_array(value: Any, name: str) -> np.ndarray:
    """``value`` as a NumPy array of logits, sharing its memory where it can."""
    array = _as_array(value, name, "logits")
    if isinstance(array, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(array)
        data = array.data
        if not mask.any():
            return data
        if data.dtype.kind not in "f" and data.dtype != ml_dtypes.bfloat16:
            raise InputError(
                name,
                f"logits are a masked array of {data.dtype}: a masked entry is -inf, which "
                "integers cannot hold",
                "convert them to floats first (e.g. array.astype(np.float32))",
            )
        # A copy the size of the logits: the caller holds the data and the mask in memory
        # already, and the kernels read a mask as -inf.
        return np.where(mask, np.array(-np.inf, dtype=data.dtype), data)
    return array


def targets_array(value: Any, name: str, ignore_index: int) -> np.ndarray:
    """``value`` as a NumPy array of targets; masked entries become ``ignore_index``."""
    array = _as_array(value, name, "targets")
    if isinstance(array, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(array)
        data = array.data
        if not mask.any():
            return data
        if data.dtype.kind not in "iuf":
            return data  # validation refuses it, with the dtype named
        # A dtype that holds the ignore index too (-100 in uint8 targets: int16), so the
        # values are validated after this as given, none wrapped around.
        dtype = np.result_type(data.dtype, np.min_scalar_type(ignore_index))
        return np.where(mask, np.array(ignore_index, dtype=dtype), data)
    return array


def _as_array(value: Any, name: str, what: str) -> np.ndarray:
    """The array ``value`` holds (a MaskedArray stays one), or InputError saying why not."""
    if isinstance(value, np.ndarray):  # memory maps and masked arrays included
        return value
    if value is None:
        raise InputError(name, f"{what} are None, not an array")
    if isinstance(value, dict | set | frozenset):
        raise InputError(
            name,
            f"{what} are a {type(value).__name__}, not an array",
            "pass the array itself (e.g. data['logits'])",
        )
    if type(value).__module__.startswith("torch"):
        tensor = _torch_tensor(value)
        if tensor is not None:
            return _from_tensor(tensor, name, what)
    if hasattr(value, "__dlpack__"):
        try:
            return np.from_dlpack(value)
        except (BufferError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            # Not on the CPU, or a dtype DLPack cannot describe to NumPy (bfloat16): the
            # object's own __array__, if any, knows how to bring it over.
            if not hasattr(value, "__array__"):
                raise InputError(
                    name, f"{what} cannot be read through DLPack: {_first_line(exc)}"
                ) from None
    try:
        return np.asarray(value)
    except MemoryError:
        raise
    except Exception as exc:  # ragged lists, and whatever a foreign __array__ raises
        raise InputError(
            name,
            f"{what} ({type(value).__name__}) are not an array NumPy can read: {_first_line(exc)}",
            "pass a rectangular array of numbers (every row with the same number of classes)",
        ) from None


def _torch_tensor(value: Any) -> Any:
    """``value`` if it is a torch.Tensor (torch is already imported: it made the value)."""
    import torch

    return value if isinstance(value, torch.Tensor) else None


def _from_tensor(tensor: Any, name: str, what: str) -> np.ndarray:
    """A tensor as a NumPy array: the same memory for a CPU tensor, one copy from a GPU."""
    import torch

    tensor = tensor.detach()
    if tensor.layout != torch.strided:
        raise InputError(name, f"{what} are a sparse tensor", "pass tensor.to_dense()")
    if tensor.is_complex():
        raise InputError(name, f"{what} are complex ({tensor.dtype}); softmax needs real numbers")
    if tensor.device.type != "cpu":
        try:
            tensor = tensor.cpu()
        except (RuntimeError, NotImplementedError) as exc:  # the meta device has no data
            raise InputError(
                name,
                f"{what} cannot be copied from {tensor.device} to the CPU: {_first_line(exc)}",
            ) from None
    # Conjugate and negative views (tensor.conj(), torch.neg views) are lazy: resolve them.
    tensor = tensor.resolve_conj().resolve_neg()
    try:
        return tensor_numpy(tensor)
    except (TypeError, RuntimeError) as exc:  # float8, uint16 and others NumPy lacks
        raise InputError(
            name,
            f"{what} are a tensor of {str(tensor.dtype).removeprefix('torch.')}, which "
            f"softmax-check does not read: {_first_line(exc)}",
            f"pass {_SUPPORTED_TORCH}",
        ) from None


def tensor_numpy(tensor: Any) -> np.ndarray:
    """A dense real CPU tensor's memory as a NumPy array, shared, never copied; raises
    TypeError or RuntimeError for a dtype NumPy lacks (float8, uint16 and others)."""
    import torch

    if tensor.dtype == torch.bfloat16:
        # NumPy has no bfloat16; ml_dtypes' is bit-for-bit the same, so a view suffices.
        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


def _first_line(exc: BaseException) -> str:
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return line if len(line) <= 160 else line[:157] + "..."
