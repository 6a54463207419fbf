"""Your own softmax / cross-entropy (``--impl``), run beside the naive and the stable path.

A user's function is loaded from ``path/to/file.py:function`` or ``package.module:function``
and called on the same blocks of rows as the built-in paths: a ``torch.Tensor`` of shape
(rows, classes) in the compute dtype D with ``requires_grad=True``, and an int64 tensor of
targets (the ignore index where a row has none). It returns probabilities, shaped like the
logits, or one loss per row, shape (rows,); the two are told apart by shape. With
probabilities the loss is ``-log(p[t])`` in D, picked first and then logged as the naive
path does. The gradient is autograd's, of the sum of the losses over the rows with a target.

Each loss is held to the stable loss computed in float64 from the same values of D,
``error = |loss - ref| / max(1, |ref|)``; an error above the tolerance (a few roundings of
D above what ``F.cross_entropy`` reaches) is the flag ``inaccurate``.

PyTorch is an optional extra: it is imported only when an implementation is given. The
user's code is the user's: an exception in it is reported with its own traceback frames,
none of softmax-check's or torch's.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from softmax_cli.dtypes import ComputeDtype
from softmax_cli.errors import ImplementationError, OptionError
from softmax_cli.report import BUILTIN, Flag, Implementation, OwnImplRows

# The default --impl-rtol per compute dtype: a few roundings of D above the error of
# F.cross_entropy itself (float64: 1e-16 per rounding; float32 6e-8; bfloat16 3.9e-3;
# float16 4.9e-4), so a correct implementation passes and a lost digit does not.
DEFAULT_RTOL = {"float64": 1e-10, "float32": 1e-5, "bfloat16": 3e-2, "float16": 8e-3}

INSTALL_HINT = "pip install 'softmax-check[torch]' (or pip install torch)"
SPEC_FORMS = "path/to/file.py:function or package.module:function"


@dataclass(frozen=True)
class OwnImplementation:
    """A user's function, loaded, with the name the report gives it and how it was asked
    for (``spec``, quoted in every message about it)."""

    name: str
    function: Callable[..., Any]
    spec: str

    @property
    def implementation(self) -> Implementation:
        return Implementation.own(self.name)


ImplementationLike = str | Callable[..., Any] | OwnImplementation | tuple[str, Callable[..., Any]]


def resolve(
    items: Iterable[ImplementationLike] | Mapping[str, Callable[..., Any]] | None,
) -> tuple[OwnImplementation, ...]:
    """Load and name every implementation before any work, or raise ImplementationError.

    An item is a ``"[NAME=]SPEC"`` string, a callable (named after its ``__name__``), a
    ``(name, callable)`` pair, or an :class:`OwnImplementation`; a mapping gives names to
    callables.
    """
    if not items:
        return ()
    if isinstance(items, Mapping):
        items = list(items.items())
    items = list(items)
    require_torch()
    resolved = [_one(item) for item in items]
    taken = {i.name for i in BUILTIN}
    for own in resolved:
        if own.name in taken:
            builtin = own.name in {i.name for i in BUILTIN}
            why = "is a built-in path's name" if builtin else "is used twice"
            raise ImplementationError(
                f"{{option}} {_brace(own.spec)}: the name {_brace(own.name)!r} {why}; "
                "give another with NAME=SPEC"
            )
        taken.add(own.name)
    return tuple(resolved)


def _one(item: ImplementationLike) -> OwnImplementation:
    if isinstance(item, OwnImplementation):
        return item
    if isinstance(item, str):
        return parse(item)
    if isinstance(item, tuple) and len(item) == 2 and callable(item[1]):
        return OwnImplementation(_checked_name(str(item[0]), str(item[0])), item[1], str(item[0]))
    if callable(item):
        name = getattr(item, "__name__", None)
        if not name or name == "<lambda>":
            raise ImplementationError(
                f"{{option}}: {_brace(repr(item))} has no name; pass (name, function)"
            )
        return OwnImplementation(_checked_name(name, name), item, name)
    raise ImplementationError(
        f"{{option}}: expected a function or a {SPEC_FORMS} string, not {_brace(repr(item))}"
    )


def split_name(text: str) -> tuple[str, str, str]:
    """``[NAME=]SPEC`` -> (NAME, "=" or "", SPEC), as :func:`parse` reads it."""
    name, equals, spec = text.partition("=")
    # A '=' after a path separator or ':' belongs to the SPEC (a file name may hold one).
    if not equals or any(c in name for c in "/\\:"):
        return "", "", text
    return name, equals, spec


def is_file_spec(module_part: str) -> bool:
    """Is the part of a SPEC before ``:function`` a file (else a module on the path)?"""
    return module_part.endswith(".py") or "/" in module_part or os.sep in module_part


def parse(text: str) -> OwnImplementation:
    """``[NAME=]SPEC`` -> the loaded function; NAME defaults to the function's name."""
    name, _, spec = split_name(text)
    name, spec = name.strip(), spec.strip()
    module_part, colon, attribute = spec.rpartition(":")
    if not colon or not module_part or not attribute:
        raise ImplementationError(f"{{option}} {_brace(text)}: expected [NAME=]{SPEC_FORMS}")
    function = _load(text, module_part, attribute)
    return OwnImplementation(
        _checked_name(name or attribute.rpartition(".")[2], text), function, text
    )


def _checked_name(name: str, spec: str) -> str:
    if not name or not name.isprintable() or name != name.strip():
        raise ImplementationError(f"{{option}} {_brace(spec)}: a NAME must be printable text")
    return name


def _load(text: str, module_part: str, attribute: str) -> Callable[..., Any]:
    """Import the module (a file, or a module on the import path) and find the function."""
    where = _brace(text)
    try:
        if is_file_spec(module_part):
            path = Path(module_part)
            if not path.is_file():
                raise ImplementationError(
                    f"{{option}} {where}: {_brace(module_part)}: no such file"
                )
            module = _import_file(path)
        else:
            # As `python -m` does: the current directory is on the import path.
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_part)
    except ImplementationError:
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # the user's module may raise anything, even SystemExit
        raise ImplementationError(
            f"{{option}} {where}: cannot import {_brace(module_part)}: {_brace(_described(error))}",
            _user_traceback(error),
        ) from None
    try:
        function = functools.reduce(getattr, attribute.split("."), module)
    except AttributeError:
        raise ImplementationError(
            f"{{option}} {where}: {_brace(module_part)} has no function {_brace(attribute)!r}"
        ) from None
    if not callable(function):
        raise ImplementationError(
            f"{{option}} {where}: {_brace(attribute)!r} is a {type(function).__name__}, "
            "not a function"
        )
    return function


def _import_file(path: Path) -> Any:
    """The module in ``path``, imported as running it as a script would: its directory on
    the import path, so it can import its neighbours."""
    path = path.resolve()
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = f"softmax_check_impl_{abs(hash(str(path))):x}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImplementationError(f"{{option}} {_brace(str(path))}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def require_torch() -> Any:
    """The torch module, or an ImplementationError saying how to install it."""
    try:
        import torch
    except ImportError:
        raise ImplementationError(f"{{option}} needs PyTorch: {INSTALL_HINT}") from None
    return torch


def rtol_for(dtype: ComputeDtype, impl_rtol: float | None) -> float:
    """The tolerance of ``error`` in ``dtype``: ``impl_rtol`` if given, else the default."""
    return DEFAULT_RTOL[dtype.name] if impl_rtol is None else impl_rtol


def check_rtol(impl_rtol: float | None) -> float | None:
    """``impl_rtol`` validated (a positive number) before any work."""
    if impl_rtol is None:
        return None
    if isinstance(impl_rtol, bool) or not isinstance(impl_rtol, int | float):
        raise OptionError("impl_rtol", f"{{option}} must be a number, not {impl_rtol!r}")
    if not (math.isfinite(impl_rtol) and impl_rtol > 0):
        raise OptionError("impl_rtol", f"{{option}} must be a positive number, not {impl_rtol!r}")
    return float(impl_rtol)


# --- one block ----------------------------------------------------------------------------


def run_block(
    own: OwnImplementation,
    x: np.ndarray,
    targets: np.ndarray,
    dtype: ComputeDtype,
    ignore_index: int,
    rtol: float,
    log_partition: np.ndarray | None = None,
) -> OwnImplRows:
    """``own``'s results on the rows ``x`` (rows, classes, any real dtype).

    ``targets`` holds a class index per row, or -1 where it has none; the function sees the
    ignore index there, as a PyTorch loss would. ``log_partition``, the rows' log Z from the
    built-in pass (float64, from exp(x - m) before any rounding to D: ~1e-7 relative, 100x
    below the tightest default tolerance but float64's), makes the reference
    ``log Z - x[t]`` without a second float64 pass over the logits.
    """
    torch = require_torch()
    D = _TORCH_DTYPES[dtype.name]()
    n, classes = x.shape
    # to_work copies: the function gets a leaf of its own, holding exactly the values of D.
    work = dtype.to_work(x)
    logits = torch.from_numpy(work).to(D).requires_grad_(True)
    has_target = targets >= 0
    with_target = int(np.count_nonzero(has_target))
    picked = torch.from_numpy(np.maximum(targets, 0).astype(np.int64))[:, None]
    given = torch.from_numpy(np.where(has_target, targets, ignore_index).astype(np.int64))

    with torch.enable_grad():
        try:
            out = own.function(logits, given)
        except Exception as error:
            raise _raised(own, error, "raised") from None
        probs = _checked_output(own, out, n, classes)
        if probs is not None:
            p_t = probs.gather(1, picked)[:, 0]
            loss = -torch.log(p_t if p_t.dtype == D else p_t.to(D))
        else:
            loss = out
        if with_target:
            total = loss.sum() if with_target == n else loss[torch.from_numpy(has_target)].sum()
            if not total.requires_grad:
                raise ImplementationError(
                    f"{{option}} {_brace(own.spec)}: its {_kind(probs)} do not depend on the "
                    "logits through autograd (detached, or computed outside torch?): no "
                    "gradient to check"
                )
            try:
                total.backward()
            except Exception as error:
                raise _raised(own, error, "raised in its backward pass") from None

    with torch.no_grad():
        nan_prob = np.zeros(n, dtype=bool) if probs is None else _rows_with_nan(torch, probs)
        grad = logits.grad
        nan_grad = np.zeros(n, dtype=bool) if grad is None else _rows_with_nan(torch, grad)
        if log_partition is None or dtype.name == "float64":
            reference = _reference(torch, logits.detach(), picked)
        else:
            at_target = work[np.arange(n), np.maximum(targets, 0)].astype(np.float64)
            with np.errstate(invalid="ignore"):  # -inf - -inf on fully masked rows
                reference = log_partition - at_target
        losses = loss.detach().to(torch.float64).numpy()

    with np.errstate(invalid="ignore"):  # inf - inf where both losses are infinite
        error = np.abs(losses - reference) / np.maximum(1.0, np.abs(reference))
    error = np.where(has_target & np.isfinite(losses) & np.isfinite(reference), error, np.nan)
    flags = np.zeros(n, dtype=np.uint8)
    for flag, mask in (
        (Flag.NAN_PROB, nan_prob),
        (Flag.NAN_GRAD, has_target & nan_grad),
        (Flag.INACCURATE, error > rtol),  # NaN compares False
    ):
        flags[mask] |= np.uint8(flag)
    return OwnImplRows(
        flags=flags,
        loss=np.where(has_target, losses, np.nan),
        reference=np.where(has_target, reference, np.nan),
        error=error,
    )


# Rows per piece of the float64 reference: about this many bytes, so that the widened copy
# and logsumexp's temporaries stay in cache instead of streaming a block's worth of
# float64 through memory (a third faster on a 4096 x 32000 float32 dump).
REFERENCE_PIECE_BYTES = 1 << 21


def _reference(torch: Any, logits: Any, picked: Any) -> np.ndarray:
    """The stable loss ``logsumexp(x) - x[t]`` in float64 from the values of D, per row."""
    n, classes = logits.shape
    rows = max(1, REFERENCE_PIECE_BYTES // (8 * max(1, classes)))
    out = torch.empty(n, dtype=torch.float64)
    for start in range(0, n, rows):
        wide = logits[start : start + rows].to(torch.float64)
        picked_here = picked[start : start + rows]
        out[start : start + rows] = torch.logsumexp(wide, 1) - wide.gather(1, picked_here)[:, 0]
    return out.numpy()


def _rows_with_nan(torch: Any, values: Any) -> np.ndarray:
    """Which rows of a (rows, classes) tensor hold a NaN. A row's sum is finite only if it
    holds no NaN, so one reduction clears almost every row; only rows whose sum is not
    finite (a NaN, or infinities) are searched entry by entry."""
    suspect = ~torch.isfinite(values.sum(1))
    found = np.zeros(len(values), dtype=bool)
    if bool(suspect.any()):
        which = suspect.numpy()
        found[which] = torch.isnan(values[suspect]).any(1).numpy()
    return found


def _checked_output(own: OwnImplementation, out: Any, rows: int, classes: int) -> Any:
    """The probabilities the function returned, None if it returned losses; anything else
    raises an ImplementationError saying what was expected and what came back."""
    import torch

    expected = (
        f"expected a torch.Tensor of probabilities shaped like the logits, ({rows}, {classes}), "
        f"or one loss per row, shape ({rows},)"
    )
    if not isinstance(out, torch.Tensor):
        got = f"a {type(out).__module__}.{type(out).__qualname__}"
        if isinstance(out, tuple | list):
            got += f" of {len(out)} items"
        problem = f"returned {got}; {expected}"
    elif not (out.is_floating_point()):
        problem = f"returned a tensor of {out.dtype}; {expected}, of a floating dtype"
    elif tuple(out.shape) == (rows, classes) and out.ndim == 2:
        return out
    elif tuple(out.shape) == (rows,):
        return None
    else:
        problem = f"returned a tensor of shape {tuple(out.shape)}; {expected}"
    raise ImplementationError(f"{{option}} {_brace(own.spec)}: {_brace(problem)}")


def _kind(probs: Any) -> str:
    return "losses" if probs is None else "probabilities"


def _raised(own: OwnImplementation, error: BaseException, what: str) -> ImplementationError:
    return ImplementationError(
        f"{{option}} {_brace(own.spec)}: {what} {_brace(_described(error))}",
        _user_traceback(error),
    )


def _described(error: BaseException) -> str:
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


# Frames from these folders are softmax-check's or torch's, not the user's.
_NOT_USER = (str(Path(__file__).resolve().parent) + os.sep,)


def _user_traceback(error: BaseException) -> str:
    """The frames of ``error``'s traceback that run the user's code, as Python prints them."""
    hidden = list(_NOT_USER)
    torch = sys.modules.get("torch")
    if torch is not None and getattr(torch, "__file__", None):
        hidden.append(str(Path(torch.__file__).resolve().parent) + os.sep)
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith("<frozen ")
        and not str(Path(frame.filename).resolve()).startswith(tuple(hidden))
    ]
    if not frames:
        return ""
    return "Traceback of your code (most recent call last):\n" + "".join(
        traceback.format_list(frames)
    )


def _brace(text: str) -> str:
    """``text`` safe inside an OptionError's ``{option}`` template."""
    return text.replace("{", "{{").replace("}", "}}")


def _torch_dtype(name: str) -> Callable[[], Any]:
    return lambda: getattr(sys.modules["torch"], name)


_TORCH_DTYPES = {n: _torch_dtype(n) for n in ("float64", "float32", "float16", "bfloat16")}
