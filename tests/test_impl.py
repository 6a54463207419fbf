"""--impl: your own softmax / cross-entropy, held to the built-in paths and to torch.

References: the seed article's naive code through --impl must reproduce the built-in naive
path (itself held to PyTorch autograd in test_kernels_torch.py); ``F.cross_entropy``
through --impl must agree with the stable path; a deliberately wrong implementation must be
caught on exactly the samples where it is wrong.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from typer.testing import CliRunner

from softmax_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SAMPLES = ROOT / "sample_logits"
DTYPES = ("float64", "float32", "float16", "bfloat16")
BUNDLED = ("seed.csv", "seed_logits.npy", "attention_scores.npy", "lm_head_fp16.npz")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str):
    return runner.invoke(app, ["--no-config", *args])


# --- without torch ------------------------------------------------------------------------


def test_without_torch_impl_exits_2_saying_how_to_install_it(runner, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    result = invoke(runner, str(SAMPLES / "seed.csv"), "--impl", "x.py:f")
    assert result.exit_code == 2
    assert "--impl needs PyTorch" in result.stderr
    assert "pip install 'softmax-check[torch]'" in result.stderr
    assert result.stdout == ""


def test_without_impl_torch_is_never_imported(runner, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    result = invoke(runner, str(SAMPLES / "seed.csv"), "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert "impls" not in json.loads(result.stdout)["summary"]


# --- everything below runs the user's code under torch -------------------------------------

torch_only = pytest.mark.torch


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def examples(torch):
    sys.path.insert(0, str(EXAMPLES))
    import masked_softmax
    import naive_softmax
    import online_softmax

    yield naive_softmax, online_softmax, masked_softmax
    sys.path.remove(str(EXAMPLES))


def _check(*args, **kwargs):
    from softmax_cli import check

    return check(*args, **kwargs)


def _load_bundled(name: str):
    from softmax_cli.load import ArrayKeys, load_inputs

    return load_inputs(str(SAMPLES / name), None, ArrayKeys(None, None, None))


def _check_bundled(name: str, implementations):
    from softmax_cli.classify import check_loaded
    from softmax_cli.options import CheckOptions

    return check_loaded(_load_bundled(name), CheckOptions(), implementations=implementations)


def _random_rows(rng: np.random.Generator, dtype: str, n: int, classes: int) -> np.ndarray:
    """Rows at many scales, a third across D's exp overflow threshold, a third across its
    underflow range, with masks, fully masked rows, NaN and +inf sprinkled in."""
    info = ml_dtypes.finfo(_storage(dtype))
    log_max, log_tiny = np.log(float(info.max)), np.log(float(info.smallest_subnormal))
    scale = 10 ** rng.uniform(-3, 3, size=(n, 1))
    shift = rng.choice([-1.0, 0.0, 1.0], size=(n, 1)) * 10 ** rng.uniform(-1, 3, size=(n, 1))
    third = n // 3
    shift[:third] = log_max * rng.uniform(0.97, 1.03, size=(third, 1))
    scale[:third] = 10 ** rng.uniform(-3, 0.5, size=(third, 1))
    shift[third : 2 * third] = log_tiny * rng.uniform(0.7, 1.1, size=(third, 1))
    scale[third : 2 * third] = 10 ** rng.uniform(-3, 0.7, size=(third, 1))
    x = rng.standard_normal((n, classes)) * scale + shift
    x[rng.random((n, classes)) < 0.1] = -np.inf
    x[rng.random(n) < 0.02] = -np.inf
    x[rng.random((n, classes)) < 0.005] = np.inf
    x[rng.random((n, classes)) < 0.005] = np.nan
    return x


def _storage(dtype: str) -> np.dtype:
    return np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)


def _targets(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    t = rng.integers(0, x.shape[1], size=len(x))
    t[rng.random(len(x)) < 0.1] = -100
    return t


def _bits(report, name: str, flag) -> np.ndarray:
    return report.flag(name, flag)


# -- the seed article's naive code reproduces the built-in naive path --


@torch_only
@pytest.mark.parametrize("function", ["naive_softmax", "naive_cross_entropy"])
@pytest.mark.parametrize("name", BUNDLED)
def test_naive_code_through_impl_is_the_builtin_naive_path_on_bundled_samples(
    examples, name, function
):
    from softmax_cli.report import Flag

    report = _check_bundled(name, [getattr(examples[0], function)])
    naive, own = report.findings.impls["naive"], report.findings.impls[function]
    if function == "naive_softmax":  # only returned probabilities can show a NaN
        assert (
            _bits(report, "naive", Flag.NAN_PROB) == _bits(report, function, Flag.NAN_PROB)
        ).all()
    assert (_bits(report, "naive", Flag.NAN_GRAD) == _bits(report, function, Flag.NAN_GRAD)).all()
    _assert_losses_agree(own.loss, naive.loss, report.compute_dtype, report.input.classes)


@torch_only
@pytest.mark.parametrize("classes", [1, 7, 300])
@pytest.mark.parametrize("dtype", DTYPES)
def test_naive_code_through_impl_has_the_builtin_naive_flags_on_random_and_extreme_rows(
    examples, dtype, classes
):
    from softmax_cli.report import Flag

    rng = np.random.default_rng([12, DTYPES.index(dtype), classes])
    x = _random_rows(rng, dtype, 3000, classes)
    report = _check(x, _targets(rng, x), dtype=dtype, implementations=[examples[0].naive_softmax])
    for flag in (Flag.NAN_PROB, Flag.NAN_GRAD):
        np.testing.assert_array_equal(
            _bits(report, "naive_softmax", flag), _bits(report, "naive", flag), err_msg=flag.key
        )
    naive, own = report.findings.impls["naive"], report.findings.impls["naive_softmax"]
    np.testing.assert_array_equal(np.isnan(own.loss), np.isnan(naive.loss))
    np.testing.assert_array_equal(np.isposinf(own.loss), np.isposinf(naive.loss))


@torch_only
@pytest.mark.parametrize("classes", [1, 7, 300])
@pytest.mark.parametrize("dtype", DTYPES)
def test_naive_code_through_impl_has_the_builtin_naive_losses(examples, dtype, classes):
    """Bit for bit in float16 and bfloat16 (every operation is float32 rounded to D, and a
    last-bit difference in float32 vanishes in the rounding) and with one class (no sum).

    In float32 and float64 the built-in path is NumPy, the function torch, and the two are
    not the same arithmetic: NumPy's float32 ``exp`` is not correctly rounded on about one
    entry in five (torch's SLEEF ``exp`` on about one in 200), and a row of 7 classes is
    summed in a different order (float64 ``exp`` agrees on every entry, so there only the
    order differs). The loss then differs by a few ulps of D relative to p[t]: bounded
    below by the eps of D per class plus one spacing of p[t] (a subnormal p[t] has few
    digits). Flags never differ (the test above), nor does the exp overflow threshold.
    """
    rng = np.random.default_rng([13, DTYPES.index(dtype), classes])
    x = _random_rows(rng, dtype, 3000, classes)
    report = _check(x, _targets(rng, x), dtype=dtype, implementations=[examples[0].naive_softmax])
    naive = report.findings.impls["naive"].loss
    own = report.findings.impls["naive_softmax"].loss
    _assert_losses_agree(own, naive, dtype, classes)


def _assert_losses_agree(own: np.ndarray, naive: np.ndarray, dtype: str, classes: int) -> None:
    """Bit for bit where the arithmetic is the same (see the test above), else within the
    bound its docstring derives."""
    if dtype in ("float16", "bfloat16") or classes == 1:
        np.testing.assert_array_equal(own, naive)
        return
    np.testing.assert_array_equal(np.isfinite(own), np.isfinite(naive))
    finite = np.isfinite(naive)
    info = ml_dtypes.finfo(_storage(dtype))
    p_t = np.exp(-naive[finite])
    spacing = np.maximum(p_t * float(info.eps), float(info.smallest_subnormal))
    bound = (classes + 4) * float(info.eps) * np.maximum(1, np.abs(naive[finite]))
    bound += 2 * spacing / p_t
    assert (np.abs(own[finite] - naive[finite]) <= bound).all()


# -- F.cross_entropy agrees with the stable path --


def _cross_entropy(logits, targets):
    import torch.nn.functional as F

    return F.cross_entropy(logits, targets, reduction="none", ignore_index=-100)


@torch_only
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_through_impl_agrees_with_the_stable_path(torch, dtype):
    from softmax_cli.impl import DEFAULT_RTOL
    from softmax_cli.report import Flag

    rng = np.random.default_rng([14, DTYPES.index(dtype)])
    x = _random_rows(rng, dtype, 3000, 50)
    report = _check(x, _targets(rng, x), dtype=dtype, implementations=[_cross_entropy])
    assert report.summary.impls["_cross_entropy"].inaccurate == 0
    assert report.summary.impls["_cross_entropy"].max_error <= DEFAULT_RTOL[dtype]
    np.testing.assert_array_equal(
        _bits(report, "_cross_entropy", Flag.NAN_GRAD), _bits(report, "stable", Flag.NAN_GRAD)
    )
    # Where the stable loss is finite, so is F.cross_entropy's, and it never breaks there.
    stable_ok = ~report.breaks["stable"]
    assert not report.breaks["_cross_entropy"][stable_ok].any()


# -- a wrong implementation is caught where it is wrong --


def forgets_the_max_in_one_block(logits, targets):
    """The online softmax with a bug: its second column block adds exp(x), not exp(x - m)."""
    import torch

    m = logits.amax(dim=-1, keepdim=True)
    first, second = logits[:, :2], logits[:, 2:]
    s = torch.exp(first - m).sum(-1, keepdim=True) + torch.exp(second).sum(-1, keepdim=True)
    return torch.exp(logits - m) / s


@torch_only
def test_a_softmax_that_forgets_the_max_in_one_block_is_caught_on_the_right_samples(torch):
    rng = np.random.default_rng(15)
    x = rng.standard_normal((600, 6)).astype(np.float32)
    x[:200] -= x[:200].max(axis=1, keepdims=True)  # max 0: the bug changes nothing
    x[200:400, 2:] += 5  # the buggy block holds the max: its sum is e^m too large
    x[400:, 2:] += 100  # and here its exp overflows float32: p = 0, the loss inf
    report = _check(
        x, rng.integers(0, 6, 600), implementations=[forgets_the_max_in_one_block], fail_on="impl"
    )
    broken = report.breaks["forgets_the_max_in_one_block"]
    assert not broken[:200].any()
    assert broken[200:].all()
    assert not report.passed
    assert report.failing_count(report.fail_on[0]) == 400


@torch_only
def test_the_wrong_softmax_is_flagged_on_seed_samples_0_and_2_only(runner, tmp_path, torch):
    bug = tmp_path / "bug.py"
    bug.write_text(
        "import torch\n\n"
        "def online(x, t):\n"
        "    m = x.amax(-1, keepdim=True)\n"
        "    s = torch.exp(x[:, :2] - m).sum(-1, keepdim=True)\n"
        "    s = s + torch.exp(x[:, 2:]).sum(-1, keepdim=True)  # forgot: - m\n"
        "    return torch.exp(x - m) / s\n"
    )
    result = invoke(
        runner, str(SAMPLES / "seed.csv"), "--impl", f"{bug}:online", "--format", "json",
        "--fail-on", "impl", "--all",
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    verdicts = {s["index"]: s["impls"]["online"] for s in doc["samples"]}
    # Sample 1, [1000, 0, -1000]: its block [-1000] adds exp(-1000) = 0 either way, but
    # p[2] = exp(-2000) is 0 in float32, so any softmax that returns probabilities has an
    # infinite loss where the reference is 2000: it breaks, accurately computed or not.
    assert {i: (v["breaks"], v["error"]) for i, v in verdicts.items() if v["error"] is None} == {
        1: (True, None)
    }
    assert verdicts[0]["breaks"] and verdicts[0]["error"] > 0.1
    assert verdicts[2]["breaks"] and verdicts[2]["error"] > 0.1
    assert doc["summary"]["impls"]["online"]["inaccurate"] == 2


# --- the examples on the bundled samples --------------------------------------------------


@torch_only
def test_masked_softmax_has_no_nan_on_the_fully_masked_attention_row(examples):
    report = _check_bundled("attention_scores.npy", [examples[2].masked_softmax])
    assert report.summary.impls["masked_softmax"].breaks == 0
    assert report.summary.stable.breaks == 1  # the fully masked row: 0/0


@torch_only
@pytest.mark.parametrize("name", BUNDLED)
def test_online_softmax_breaks_only_where_the_stable_one_does_or_p_t_underflows(examples, name):
    """Returning probabilities, the loss is -log(p[t]): infinite where p[t] rounds to 0 (the
    stable path's underflow note), however well p was computed."""
    from softmax_cli.report import Flag

    report = _check_bundled(name, [examples[1].online_softmax])
    assert report.summary.impls["online_softmax"].inaccurate == 0
    excused = report.breaks["stable"] | report.flag("stable", Flag.UNDERFLOW)
    assert not (report.breaks["online_softmax"] & ~excused).any()


# --- the report -----------------------------------------------------------------------------


@torch_only
def test_json_lists_user_implementations_under_impls_only(runner, torch):
    spec = f"mine={EXAMPLES / 'naive_softmax.py'}:naive_softmax"
    result = invoke(runner, str(SAMPLES / "seed.csv"), "--impl", spec, "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert "mine" not in doc["summary"] and "mine" not in doc["samples"][0]
    assert list(doc["summary"]["impls"]["mine"]) == [
        "nan_prob", "nan_grad", "inf_loss", "nan_loss", "inaccurate", "breaks", "max_error",
    ]  # fmt: skip
    assert list(doc["summary"]["naive"]) == [
        "overflow", "underflow", "nan_prob", "nan_grad", "inf_loss", "nan_loss", "breaks",
    ]  # fmt: skip
    sample = doc["samples"][0]
    assert list(sample["impls"]["mine"]) == ["nan_prob", "nan_grad", "loss", "error", "breaks"]
    assert sample["impls"]["mine"] == {
        "nan_prob": True, "nan_grad": True, "loss": "inf", "error": None, "breaks": True,
    }  # fmt: skip
    assert list(sample["naive"]) == ["overflow", "underflow", "nan_prob", "nan_grad", "loss"]


@torch_only
@pytest.mark.parametrize("fmt", ["table", "markdown", "junit", "github"])
def test_every_format_shows_the_user_implementation(runner, torch, fmt):
    spec = f"mine={EXAMPLES / 'naive_softmax.py'}:naive_softmax"
    result = invoke(runner, str(SAMPLES / "seed.csv"), "--impl", spec, "--format", fmt)
    assert result.exit_code == 0, result.stderr
    assert "mine" in result.stdout
    if fmt == "markdown":
        assert "Your \\`mine\\` breaks on 1 sample where the stable one breaks on none." in (
            result.stdout
        )


@torch_only
def test_fail_on_impl_fails_only_when_a_user_implementation_breaks(runner, tmp_path, torch):
    naive = f"{EXAMPLES / 'naive_softmax.py'}:naive_softmax"
    (tmp_path / "ce.py").write_text(
        "import torch.nn.functional as F\n\n"
        "def ce(x, t):\n    return F.cross_entropy(x, t, reduction='none')\n"
    )
    ce = f"{tmp_path / 'ce.py'}:ce"
    head = str(SAMPLES / "lm_head_fp16.npz")  # float16: the naive exp overflows on sample 1
    assert invoke(runner, head, "--impl", naive, "--fail-on", "impl").exit_code == 1
    assert invoke(runner, head, "--impl", ce, "--fail-on", "impl").exit_code == 0
    # Only in the policy when asked for (the input is clean).
    assert invoke(runner, head, "--impl", naive, "--fail-on", "input").exit_code == 0


@torch_only
def test_impl_rtol_sets_the_tolerance(runner, torch):
    online = f"{EXAMPLES / 'online_softmax.py'}:online_softmax"
    args = (str(SAMPLES / "seed.csv"), "--impl", online, "--format", "json")
    loose = json.loads(invoke(runner, *args).stdout)["summary"]["impls"]["online_softmax"]
    tight = json.loads(invoke(runner, *args, "--impl-rtol", "1e-12").stdout)
    assert loose["inaccurate"] == 0 and loose["max_error"] > 1e-12
    assert tight["summary"]["impls"]["online_softmax"]["inaccurate"] > 0


# --- the user's errors are the user's to see ----------------------------------------------


@torch_only
@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("nowhere.py:f", "nowhere.py: no such file"),
        ("examples/naive_softmax.py:nothing", "has no function 'nothing'"),
        ("examples/naive_softmax.py", "expected [NAME=]path/to/file.py:function"),
        ("no_such_module_here:f", "cannot import no_such_module_here: ModuleNotFoundError"),
        ("naive=examples/naive_softmax.py:naive_softmax", "'naive' is a built-in path's name"),
    ],
)
def test_a_spec_that_cannot_be_loaded_exits_2_before_any_work(
    runner, torch, monkeypatch, spec, says
):
    monkeypatch.chdir(ROOT)
    # The logits do not exist: reading them would be a different error.
    result = invoke(runner, "missing.npy", "--impl", spec)
    assert result.exit_code == 2
    assert f"--impl {spec}" in result.stderr
    assert says in result.stderr
    assert "missing.npy" not in result.stderr and result.stdout == ""


@torch_only
def test_a_function_that_raises_shows_only_the_users_frames(runner, tmp_path, torch):
    user = tmp_path / "mine.py"
    user.write_text(
        "def helper(x):\n    raise ValueError('my bad')\n\n\ndef f(x, t):\n    return helper(x)\n"
    )
    result = invoke(runner, str(SAMPLES / "seed.csv"), "--impl", f"{user}:f")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == f"softmax-check: error: --impl {user}:f: raised ValueError: my bad"
    assert "Traceback of your code (most recent call last):" in lines
    assert sum(line.startswith(f'  File "{user}"') for line in lines) == 2  # f, helper
    assert "softmax_cli" not in result.stderr and "torch" not in result.stderr
    assert result.stdout == ""


@torch_only
def test_a_module_that_raises_on_import_exits_2_naming_the_spec(runner, tmp_path, torch):
    user = tmp_path / "broken.py"
    user.write_text("import torch\n\n1 / 0\n")
    result = invoke(runner, str(SAMPLES / "seed.csv"), "--impl", f"{user}:f")
    assert result.exit_code == 2
    assert f"--impl {user}:f: cannot import {user}: ZeroDivisionError" in result.stderr
    assert "line 3" in result.stderr and "importlib" not in result.stderr


@torch_only
@pytest.mark.parametrize(
    ("body", "got"),
    [
        ("return x.sum()", "returned a tensor of shape ()"),
        ("return x[:, :2]", "returned a tensor of shape (3, 2)"),
        ("return (x, x)", "returned a builtins.tuple of 2 items"),
        ("return x.detach().numpy()", "returned a numpy.ndarray"),
    ],
)
def test_a_return_value_of_the_wrong_shape_says_what_was_expected(
    runner, tmp_path, torch, body, got
):
    user = tmp_path / "shape.py"
    user.write_text(f"def f(x, t):\n    {body}\n")
    result = invoke(runner, str(SAMPLES / "seed.csv"), "--impl", f"{user}:f")
    assert result.exit_code == 2
    assert got in result.stderr
    assert (
        "expected a torch.Tensor of probabilities shaped like the logits, (3, 3)" in result.stderr
    )
    assert "or one loss per row, shape (3,)" in result.stderr


@torch_only
def test_a_detached_result_has_no_gradient_to_check(runner, tmp_path, torch):
    user = tmp_path / "detached.py"
    user.write_text("import torch\n\ndef f(x, t):\n    return torch.softmax(x.detach(), -1)\n")
    result = invoke(runner, str(SAMPLES / "seed.csv"), "--impl", f"{user}:f")
    assert result.exit_code == 2
    assert "do not depend on the logits through autograd" in result.stderr


@torch_only
@pytest.mark.parametrize("value", ["0", "-1e-5", "nan"])
def test_a_bad_impl_rtol_exits_2(runner, torch, value):
    spec = f"{EXAMPLES / 'online_softmax.py'}:online_softmax"
    result = invoke(runner, str(SAMPLES / "seed.csv"), "--impl", spec, "--impl-rtol", value)
    assert result.exit_code == 2
    assert "--impl-rtol must be a positive number" in result.stderr
