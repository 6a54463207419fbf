"""``.pt`` / ``.pth`` files (``torch.save``): a tensor, or a dict of tensors picked by name.

Loaded only with ``torch.load(weights_only=True, mmap=True)``: the restricted unpickler
that rebuilds tensors and plain containers and refuses anything else, with the storages
memory-mapped from the file. torch is imported only when such a file is read; without it the
error says how to get it, or how to convert the file to safetensors.
"""

from __future__ import annotations

import importlib
import pickle
from types import ModuleType
from typing import Any

import numpy as np

from softmax_cli.arrays import tensor_numpy
from softmax_cli.errors import InputError
from softmax_cli.load.files import first_line, open_binary
from softmax_cli.load.keys import ArrayKeys, Found, choose_logits, choose_targets

_CONVERT = (
    "or convert the file to safetensors where torch is installed: "
    "import torch, safetensors.torch; "
    "safetensors.torch.save_file(torch.load('x.pt', weights_only=True), 'x.safetensors')"
)


def read_logits(path: str, keys: ArrayKeys) -> Found:
    """The logits tensor, and the targets if the file carries them too."""
    tensors = _tensors(path)
    floats = [name for name, t in tensors.items() if t.is_floating_point()]
    choice = choose_logits(path, list(tensors), keys, floats, kind="PyTorch file")
    targets = _array(path, choice.targets, tensors[choice.targets]) if choice.targets else None
    return Found(_array(path, choice.logits, tensors[choice.logits]), targets)


def read_targets(path: str, keys: ArrayKeys) -> Found:
    """The targets tensor: ``--targets-key``, else ``targets``, else the file's lone tensor."""
    tensors = _tensors(path)
    key = choose_targets(path, list(tensors), keys)
    return Found(_array(path, key, tensors[key]))


def _torch(path: str) -> ModuleType:
    try:
        return importlib.import_module("torch")
    except ImportError:
        raise InputError(
            path,
            "is a PyTorch file, and reading it needs torch, which is not installed",
            f"pip install softmax-check[torch] (or pip install torch), {_CONVERT}",
        ) from None


def _tensors(path: str) -> dict[str, Any]:
    """The file's tensors by name: a lone tensor is named ``logits``."""
    open_binary(path, "PyTorch").close()  # a missing, empty or unreadable file, by name
    torch = _torch(path)
    try:
        loaded = torch.load(path, weights_only=True, mmap=True, map_location="cpu")
    except pickle.UnpicklingError as exc:  # the restricted unpickler met something else
        raise InputError(
            path,
            f"holds Python objects besides tensors: {_refusal(exc)}",
            "softmax-check loads only tensors (torch.load with weights_only=True); save the "
            "logits tensor, or a dict of tensors, with torch.save, or save them as .safetensors",
        ) from None
    except Exception as exc:  # torch raises anything from a damaged archive
        raise InputError(
            path,
            f"cannot be loaded as tensors: {first_line(exc)}",
            "it may have been cut short while being written or copied",
        ) from None
    if isinstance(loaded, torch.Tensor):
        return {"logits": loaded}
    if isinstance(loaded, dict):
        tensors = {
            k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, torch.Tensor)
        }
        if tensors or not loaded:
            return tensors
    raise InputError(
        path,
        f"holds a {type(loaded).__name__}, not a tensor or a dict of tensors",
        "torch.save the logits tensor, or a dict such as {'logits': ..., 'targets': ...}",
    )


def _refusal(exc: pickle.UnpicklingError) -> str:
    """torch's reason for refusing (the object it met), without its paragraphs about
    weights_only and its documentation."""
    for line in str(exc).splitlines():
        line = line.strip().removeprefix("WeightsUnpickler error:").strip()
        if line and "weights_only" not in line and not line.startswith("Check the doc"):
            return line if len(line) <= 120 else line[:117] + "..."
    return "an object the restricted unpickler refuses"


def _array(path: str, name: str, tensor: Any) -> np.ndarray:
    """The tensor as a read-only NumPy array sharing its (memory-mapped) storage."""
    torch = _torch(path)  # imported already: this only looks it up

    tensor = tensor.detach()
    if tensor.is_sparse or tensor.layout != torch.strided:
        raise InputError(path, f"tensor {name!r} is sparse; save it with .to_dense()")
    if tensor.is_complex():
        raise InputError(path, f"tensor {name!r} is complex ({tensor.dtype}); softmax needs reals")
    try:
        array = tensor_numpy(tensor)
    except (TypeError, RuntimeError) as exc:  # float8 and other dtypes NumPy lacks
        raise InputError(
            path,
            f"tensor {name!r} has dtype {str(tensor.dtype).removeprefix('torch.')}, "
            f"which softmax-check does not read: {first_line(exc)}",
            "save logits as float64, float32, float16 or bfloat16 and targets as integers",
        ) from None
    array.flags.writeable = False
    return array
