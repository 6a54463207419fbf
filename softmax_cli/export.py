"""``--export-flagged DIR``: the flagged samples as a small dump, and a script that shows them.

A report says which rows break; a reproducer lets someone else see it without the dump (often
gigabytes) or this tool. ``DIR/flagged.safetensors`` holds ``logits`` (the rows in the
dump's own dtype, bfloat16 bit for bit), ``targets`` (when the dump has them; ignored ones
keep the ignore index), ``index`` (the flat sample index in the dump) and ``position``
(within the sample's file), worst first. Checking that file with the same ``--dtype`` gives
the same flags for those rows. ``DIR/repro.py`` runs the naive and the stable code on them
with plain NumPy (and PyTorch autograd when it is installed) and prints what breaks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from softmax_cli import atomic
from softmax_cli.errors import UsageError
from softmax_cli.load import Loaded
from softmax_cli.report import Report

LOGITS_FILE = "flagged.safetensors"
SCRIPT_FILE = "repro.py"


def refuse_unusable(directory: str) -> None:
    """Before any work: DIR must be new or an empty directory we can write in."""
    path = Path(directory)
    where = f"--export-flagged {directory}"
    if path.exists() and not path.is_dir():
        raise UsageError(f"{where}: exists and is not a directory")
    if path.is_dir():
        if any(path.iterdir()):
            raise UsageError(f"{where}: the directory is not empty; give a new or empty one")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"{where}: the directory is not writable")
    elif not path.parent.is_dir() or not os.access(path.parent, os.W_OK | os.X_OK):
        raise UsageError(f"{where}: cannot create it in {str(path.parent)!r}")


def flagged_rows(report: Report, loaded: Sequence[Loaded], limit: int = 0) -> dict[str, np.ndarray]:
    """The tensors of ``flagged.safetensors``: the flagged samples, worst first, at most
    ``limit`` of them (0: all)."""
    order = report.ordered()
    if limit:
        order = order[:limit]
    files = list(loaded)
    axis = report.input.class_axis
    firsts = np.array([0] if len(files) == 1 else [f.first_index for f in report.input.files])
    which = np.searchsorted(firsts, order, side="right") - 1
    by_sample = [np.moveaxis(f.logits, axis, -1) for f in files]
    ndim = len(by_sample[0].shape) - 1
    logits = np.empty((len(order), by_sample[0].shape[-1]), dtype=by_sample[0].dtype)
    position = np.zeros((len(order), ndim), dtype=np.int64)
    for k, (w, index) in enumerate(zip(which.tolist(), order.tolist(), strict=True)):
        place = np.unravel_index(index - int(firsts[w]), by_sample[w].shape[:-1])
        logits[k] = by_sample[w][place]
        position[k] = place
    tensors = {"logits": logits, "index": order.astype(np.int64), "position": position}
    if report.targets is not None:
        tensors["targets"] = report.targets[order].astype(np.int64)
    return tensors


def write(directory: str, report: Report, loaded: Sequence[Loaded], limit: int = 0) -> int:
    """Write the reproducer into ``directory`` (made if missing); returns the rows written.
    Each file is written beside its final name and renamed into place."""
    from safetensors.numpy import save_file

    tensors = flagged_rows(report, loaded, limit)
    path = Path(directory)
    path.mkdir(exist_ok=True)
    metadata = {
        "compute_dtype": report.compute_dtype,
        "source": report.input.logits,
        "dtype": str(tensors["logits"].dtype),
    }
    atomic.write(path / LOGITS_FILE, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    script = SCRIPT.replace("@DTYPE@", report.compute_dtype)
    atomic.write(path / SCRIPT_FILE, lambda tmp: Path(tmp).write_text(script, encoding="utf-8"))
    return len(tensors["index"])


SCRIPT = r'''"""Reproduce softmax-check's findings on the flagged rows saved beside this script.

    python repro.py [flagged.safetensors] [--dtype @DTYPE@]

Runs the textbook (naive) softmax cross-entropy and the max-shifted (stable) one on each
row, in the compute dtype, with plain NumPy and, if it is installed, PyTorch autograd, and
prints per row what breaks. Needs numpy (and ml_dtypes for bfloat16 rows).
"""

import json
import struct
import sys

import numpy as np

DTYPE = "@DTYPE@"


def read_safetensors(path):
    """The tensors of a .safetensors file, with nothing but NumPy (a tiny, trusted format)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    kinds = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4"}
    out = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, stop = spec["data_offsets"]
        if spec["dtype"] == "BF16":
            import ml_dtypes

            dtype = np.dtype(ml_dtypes.bfloat16)
        else:
            dtype = np.dtype(kinds[spec["dtype"]])
        out[name] = np.frombuffer(data[start:stop], dtype=dtype).reshape(spec["shape"])
    return out


def storage(name):
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def numpy_paths(x, t, name):
    """Naive and stable, forward and backward, in the dtype as PyTorch computes them on
    the CPU: half precisions in float32, rounded to the dtype after every operation of the
    naive code and wherever the fused softmax and cross-entropy kernels store a value."""
    d = storage(name)
    work = np.float64 if name == "float64" else np.float32

    def r(a):
        return np.asarray(a, dtype=work).astype(d).astype(work)

    x = x.astype(d).astype(work)
    rows = np.arange(len(x))
    has_t = t >= 0
    tt = np.maximum(t, 0)
    with np.errstate(all="ignore"):
        # naive: e = exp(x), s = sum(e), p = e / s, loss = -log(p[t]), reverse mode by hand
        e = r(np.exp(x))
        s = r(e.sum(axis=1, dtype=work))[:, None]
        p = r(e / s)
        loss = -r(np.log(p[rows, tt]))
        g_pt = r(-1.0 / p[rows, tt])
        g_p = np.zeros_like(p)
        g_p[rows, tt] = g_pt
        g_s = r((r(-g_p * r(p / s))).sum(axis=1, dtype=work))[:, None]
        grad = r(r(r(g_p / s) + g_s) * e)
        nonfinite = np.isnan(x).any(1) | np.isposinf(x).any(1)
        naive = {
            "overflow": (np.isposinf(e).any(1) | np.isposinf(s[:, 0])) & ~nonfinite,
            "nan_prob": np.isnan(p).any(1),
            "nan_grad": has_t & np.isnan(grad).any(1),
            "loss": loss,
        }
        # stable, as torch's fused kernels compute it: m = max(x); e = exp(x - m) and its
        # sum S unrounded; p = e / S; log p = (x - m) - log(s) with s = S rounded;
        # loss = -log p[t]; grad = exp(log p) - onehot
        m = x.max(axis=1, keepdims=True)
        e = np.exp(x - m)
        total = e.sum(axis=1, dtype=work)
        s = r(total)
        p = r(e / total[:, None])
        log_s = r(np.log(s))
        loss = r(log_s - (x[rows, tt] - m[:, 0]))
        grad = np.exp(r(x - m - log_s[:, None]))
        grad[rows, tt] -= 1
        grad = r(grad)
        stable = {
            "overflow": np.isposinf(s),
            "nan_prob": np.isnan(p).any(1),
            "nan_grad": has_t & np.isnan(grad).any(1),
            "loss": loss,
        }
    return {"naive": naive, "stable": stable}


def torch_paths(x, t, name):
    """The same two paths through PyTorch autograd, or None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    dt = getattr(torch, name)
    x32 = torch.from_numpy(np.asarray(x, dtype=np.float64)).to(dt)
    nonfinite = (torch.isnan(x32).any(1) | torch.isposinf(x32).any(1)).numpy()
    targets = torch.from_numpy(np.maximum(t, 0).astype(np.int64))
    out = {}
    for path in ("naive", "stable"):
        xs = x32.clone().requires_grad_(True)
        if path == "naive":
            e = xs.exp()
            s = e.sum(dim=1, keepdim=True)
            overflow = (torch.isposinf(e).any(1) | torch.isposinf(s[:, 0])).numpy()
            p = e / s
            loss = -p.gather(1, targets[:, None])[:, 0].log()
        else:
            p = torch.softmax(xs, dim=1)
            overflow = np.zeros(len(t), dtype=bool)
            loss = torch.nn.functional.cross_entropy(xs, targets, reduction="none")
        weights = torch.from_numpy((t >= 0).astype(np.float64)).to(dt)
        (loss * weights).sum().backward()
        out[path] = {
            "overflow": overflow & ~nonfinite,
            "nan_prob": torch.isnan(p).any(1).numpy(),
            "nan_grad": (torch.isnan(xs.grad).any(1).numpy() & (t >= 0)),
            "loss": loss.detach().double().numpy(),
        }
    return out


def words(flags, i, has_t):
    raised = [k for k in ("overflow", "nan_prob", "nan_grad") if k in flags and flags[k][i]]
    loss = float(flags["loss"][i])
    if has_t and not np.isfinite(loss):
        raised.append(f"loss={loss}")
    verdict = "BROKEN" if raised else "ok"
    shown = f" loss={loss:.6g}" if has_t and np.isfinite(loss) else ""
    return f"{verdict}{shown}" + (" (" + ", ".join(raised) + ")" if raised else "")


def main(argv):
    path = "flagged.safetensors"
    name = DTYPE
    args = list(argv)
    if "--dtype" in args:
        at = args.index("--dtype")
        name = args[at + 1]
        del args[at : at + 2]
    if args:
        path = args[0]
    elif __file__:
        import os

        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), path)
    tensors = read_safetensors(path)
    x = np.asarray(tensors["logits"])
    t = np.asarray(tensors.get("targets", np.full(len(x), -100)), dtype=np.int64)
    t = np.where((t >= 0) & (t < x.shape[1]), t, -1)
    index, position = tensors["index"], tensors["position"]
    ours = numpy_paths(x, t, name)
    theirs = torch_paths(x, t, name)
    print(f"{len(x)} rows of {x.shape[1]} classes, {x.dtype} computed in {name}")
    for i in range(len(x)):
        has_t = bool(t[i] >= 0)
        where = ", ".join(map(str, position[i].tolist()))
        print(f"row {i}: sample {int(index[i])} at ({where}), target {int(t[i]) if has_t else '-'}")
        for p in ("naive", "stable"):
            line = f"  {p:6s} numpy: {words(ours[p], i, has_t)}"
            if theirs is not None:
                line += f"; torch: {words(theirs[p], i, has_t)}"
            print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
'''
