"""bfloat16 end to end: a bfloat16 dump written by PyTorch, read back, checked in bfloat16.

The dumps are real files, made the way training code makes them (``safetensors.torch.
save_file`` and ``torch.save`` of bfloat16 tensors), not casts of float32 arrays in memory.
``--dtype auto`` must keep them in bfloat16, and the report must agree, row by row, with
PyTorch's own bfloat16 arithmetic on the CPU: autograd through the textbook code for the
naive path, ``F.cross_entropy`` for the stable one (the references and tolerances are those
of test_kernels_torch.py, whose helpers are reused).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import ml_dtypes
import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
pytestmark = pytest.mark.torch

from test_kernels_torch import (  # noqa: E402
    FORWARD_FLAGS,
    _assert_close,
    _assert_rows_equal,
    _random_rows,
    _subnormal_slack,
    _targets,
    _torch_flags,
    _with_specials,
    torch_naive,
    torch_stable,
)
from typer.testing import CliRunner  # noqa: E402

from softmax_cli.classify import check_loaded  # noqa: E402
from softmax_cli.cli import app  # noqa: E402
from softmax_cli.dtypes import COMPUTE_DTYPES  # noqa: E402
from softmax_cli.load import ArrayKeys, load_inputs  # noqa: E402
from softmax_cli.options import CheckOptions  # noqa: E402
from softmax_cli.report import Flag, Report  # noqa: E402

BF16 = COMPUTE_DTYPES["bfloat16"]
CLASSES = 11


def _write_dump(fmt: str, directory: Path, logits: torch.Tensor, targets: np.ndarray) -> Path:
    """``logits`` and ``targets`` (-1: none, stored as the ignore index) in one file."""
    stored = torch.from_numpy(np.where(targets >= 0, targets, -100))
    if fmt == "safetensors":
        path = directory / "dump.safetensors"
        safetensors_torch.save_file({"logits": logits, "targets": stored}, str(path))
    else:
        path = directory / "dump.pt"
        torch.save({"logits": logits, "targets": stored}, path)
    return path


def _rows(kind: str) -> np.ndarray:
    rng = np.random.default_rng([31, len(kind)])
    if kind == "random":
        return rng.standard_normal((600, CLASSES)) * 10 ** rng.uniform(-2, 1.5, size=(600, 1))
    # Rows across bfloat16's overflow and underflow edges, with masks, NaN and +inf.
    return _with_specials(rng, _random_rows(rng, "bfloat16", 1800, CLASSES))


@pytest.fixture(scope="module", params=["safetensors", "pt"])
def fmt(request) -> str:
    return request.param


@pytest.fixture(scope="module", params=["random", "extreme"])
def dump(request, fmt, tmp_path_factory) -> SimpleNamespace:
    """A bfloat16 dump as PyTorch writes it, what we read back, and torch's results on it."""
    x64 = _rows(request.param)
    rng = np.random.default_rng(5)
    targets = _targets(rng, x64)
    logits = torch.from_numpy(x64).to(torch.bfloat16)
    path = _write_dump(fmt, tmp_path_factory.mktemp("bf16"), logits, targets)
    loaded = load_inputs(str(path), None, ArrayKeys())
    report = check_loaded(loaded, CheckOptions.of())  # --dtype auto
    # The values of D, in the work dtype, exactly as torch holds them.
    x = logits.to(torch.float32).numpy()
    return SimpleNamespace(
        path=path,
        logits=logits,
        loaded=loaded,
        report=report,
        x=x,
        targets=targets,
        dtype=BF16,
        torch_naive=torch_naive(x, targets, "bfloat16"),
        torch_stable=torch_stable(x, targets, "bfloat16"),
    )


def _flag(report: Report, implementation: str, flag: Flag) -> np.ndarray:
    return report.flag(implementation, flag)


def test_the_file_is_read_as_bfloat16_bit_for_bit(dump):
    assert dump.loaded.logits.dtype == np.dtype(ml_dtypes.bfloat16)
    expected = dump.logits.view(torch.int16).numpy()
    np.testing.assert_array_equal(np.asarray(dump.loaded.logits).view(np.int16), expected)


def test_auto_keeps_bfloat16(dump):
    assert dump.report.compute_dtype == "bfloat16"
    assert dump.report.input.dtype == "bfloat16"


def test_the_command_line_keeps_bfloat16(dump):
    result = CliRunner().invoke(app, [str(dump.path), "--no-config", "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    document = json.loads(result.stdout)
    assert document["compute_dtype"] == "bfloat16"
    assert document["input"]["dtype"] == "bfloat16"


@pytest.mark.parametrize("implementation", ["naive", "stable"])
@pytest.mark.parametrize("flag", ["overflow", "underflow", "nan_prob"])
def test_forward_flags_match_torch_bfloat16(dump, implementation, flag):
    arrays = dump.torch_naive if implementation == "naive" else dump.torch_stable
    expected = _torch_flags(dump.x, dump.targets, arrays)[flag]
    ours = _flag(dump.report, implementation, FORWARD_FLAGS[flag])
    _assert_rows_equal(ours, expected, dump, f"{implementation} {flag}")


def test_naive_nan_grad_matches_torch_autograd(dump):
    expected = (dump.targets >= 0) & np.isnan(dump.torch_naive["grad"]).any(axis=1)
    _assert_rows_equal(_flag(dump.report, "naive", Flag.NAN_GRAD), expected, dump, "nan_grad")


def test_stable_nan_grad_matches_cross_entropy_autograd(dump):
    expected = (dump.targets >= 0) & np.isnan(dump.torch_stable["grad"]).any(axis=1)
    _assert_rows_equal(_flag(dump.report, "stable", Flag.NAN_GRAD), expected, dump, "nan_grad")


def test_naive_loss_matches_torch_bfloat16(dump):
    has = dump.targets >= 0
    ours = dump.report.findings.impls["naive"].loss[has]
    slack = _subnormal_slack(dump, "loss")[has]
    _assert_close(ours, dump.torch_naive["loss"][has], 4, "bfloat16", "naive loss", slack)


def test_stable_loss_matches_cross_entropy_bfloat16(dump):
    has = dump.targets >= 0
    ours = dump.report.findings.impls["stable"].loss[has]
    _assert_close(ours, dump.torch_stable["loss"][has], 3, "bfloat16", "stable loss")


def test_logsumexp_matches_torch_bfloat16(dump):
    _assert_close(
        dump.report.measures.logsumexp, dump.torch_stable["logsumexp"], 2, "bfloat16", "lse"
    )


def test_the_extreme_rows_exercise_the_flags(fmt, tmp_path):
    """The comparisons mean little unless bfloat16 really overflows and underflows here."""
    x64 = _rows("extreme")
    targets = _targets(np.random.default_rng(5), x64)
    path = _write_dump(fmt, tmp_path, torch.from_numpy(x64).to(torch.bfloat16), targets)
    report = check_loaded(load_inputs(str(path), None, ArrayKeys()), CheckOptions.of())
    for flag in (Flag.OVERFLOW, Flag.UNDERFLOW, Flag.NAN_PROB, Flag.NAN_GRAD):
        assert np.count_nonzero(report.flag("naive", flag)) > 20, flag
