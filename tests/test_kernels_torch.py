"""The kernels and the classification against PyTorch, row by row, in every compute dtype.

The naive path is held to PyTorch autograd through exactly the textbook code; the stable
path to ``F.cross_entropy`` (loss and autograd gradient), ``torch.softmax`` and
``torch.logsumexp``. Flags are read off torch's own tensors with the contract's definitions.

Tolerances are in units of the dtype's epsilon (``eps``), relative to max(1, |value|): the
two sides differ only in summation order and in where the stable path rounds to D. Where
subnormal intermediates or long sums make a few eps too tight, an explicit slack says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
F = torch.nn.functional

from conftest import COMPUTE_DTYPE_NAMES, eps  # noqa: E402

from softmax_cli import check, kernels  # noqa: E402
from softmax_cli.classify import reference_findings  # noqa: E402
from softmax_cli.dtypes import COMPUTE_DTYPES, ComputeDtype  # noqa: E402
from softmax_cli.report import Findings, Flag  # noqa: E402

TORCH_DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def _finfo(name: str):
    return ml_dtypes.finfo(COMPUTE_DTYPES[name].storage)


# log of the largest finite value: where exp starts to overflow in each dtype.
LOG_MAX = {name: float(np.log(float(_finfo(name).max))) for name in COMPUTE_DTYPE_NAMES}
# Where exp(x) falls below the smallest subnormal: the bottom of the underflow range.
LOG_TINY = {
    name: float(np.log(float(_finfo(name).smallest_subnormal))) for name in COMPUTE_DTYPE_NAMES
}

ROWS_PER_SCENARIO = 1500
CLASSES = 7


# --- inputs -------------------------------------------------------------------------------


def _random_rows(rng: np.random.Generator, name: str, n: int, classes: int) -> np.ndarray:
    """Rows at many scales and shifts, a third of them placed across the dtype's overflow
    threshold and a third across its underflow range; float64 values to be rounded to D."""
    scale = 10 ** rng.uniform(-3, 3.5, size=(n, 1))
    shift = rng.choice([-1.0, 0.0, 1.0], size=(n, 1)) * 10 ** rng.uniform(-1, 3.5, size=(n, 1))
    third = n // 3
    # Max entry near log(max) (within +-3%): some rows overflow exp, some only the sum.
    shift[:third] = LOG_MAX[name] * rng.uniform(0.97, 1.03, size=(third, 1))
    scale[:third] = 10 ** rng.uniform(-3, 0.5, size=(third, 1))
    # Rows around log(smallest subnormal): exp is subnormal, or 0, for some or all entries.
    shift[third : 2 * third] = LOG_TINY[name] * rng.uniform(0.7, 1.1, size=(third, 1))
    scale[third : 2 * third] = 10 ** rng.uniform(-3, 0.7, size=(third, 1))
    return rng.standard_normal((n, classes)) * scale + shift


def _with_specials(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Sprinkle -inf masks, fully masked rows, NaN and +inf entries."""
    x = x.copy()
    n, c = x.shape
    x[rng.random((n, c)) < 0.15] = -np.inf
    x[rng.random(n) < 0.03] = -np.inf
    x[rng.random((n, c)) < 0.01] = np.inf
    x[rng.random((n, c)) < 0.01] = np.nan
    return x


def _targets(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """A class per row, -1 (no target) for about a tenth; a quarter of the targets are
    moved onto a masked class where the row has one."""
    n, c = x.shape
    t = rng.integers(0, c, size=n)
    masked = np.isneginf(x)
    onto_mask = (rng.random(n) < 0.25) & masked.any(axis=1)
    t[onto_mask] = np.argmax(masked[onto_mask], axis=1)
    t[rng.random(n) < 0.1] = -1
    return t


@dataclass(frozen=True, eq=False)
class Case:
    """One batch of rows in D: our arrays and flags next to torch's."""

    name: str
    dtype: ComputeDtype
    x: np.ndarray  # work dtype, values of D
    targets: np.ndarray  # -1: none
    naive: kernels.PathArrays
    stable: kernels.StableArrays
    findings: Findings
    torch_naive: dict[str, np.ndarray]
    torch_stable: dict[str, np.ndarray]

    @property
    def has_target(self) -> np.ndarray:
        return self.targets >= 0


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """torch on one thread while this module computes its references: on two, one run in
    six gave float64 losses and gradients that differ from the others' at 1e-9 from the
    rows of the second thread's half on (seen with tests/test_fastpath.py run first)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _to_torch(x_work: np.ndarray, name: str) -> torch.Tensor:
    # The work array holds values of D exactly, so widening to float64 and narrowing to D
    # in torch gives torch the very same inputs.
    return torch.from_numpy(x_work.astype(np.float64)).to(TORCH_DTYPES[name])


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).numpy()


def torch_naive(x_work: np.ndarray, targets: np.ndarray, name: str) -> dict[str, np.ndarray]:
    """The textbook code in torch, differentiated by autograd (rows without a target get no
    loss, so no gradient: they are reported as zeros and never compared)."""
    x = _to_torch(x_work, name).requires_grad_(True)
    e = torch.exp(x)
    s = e.sum(-1, keepdim=True)
    p = e / s
    rows = torch.from_numpy(np.flatnonzero(targets >= 0))
    loss = -torch.log(p[rows, torch.from_numpy(targets[targets >= 0])])
    if len(rows):
        loss.sum().backward()
    full_loss = np.full(len(targets), np.nan)
    full_loss[targets >= 0] = _np(loss)
    grad = np.zeros(x.shape) if x.grad is None else _np(x.grad)
    return {"exp": _np(e), "sum": _np(s)[:, 0], "probs": _np(p), "loss": full_loss, "grad": grad}


def torch_stable(x_work: np.ndarray, targets: np.ndarray, name: str) -> dict[str, np.ndarray]:
    """F.cross_entropy and its autograd gradient; torch.softmax, torch.logsumexp; and, for
    the flags, the sum that F.log_softmax keeps between its passes: exp(x - m) in the
    kernels' compute dtype (float32 for the half precisions), summed there, stored in D."""
    x = _to_torch(x_work, name).requires_grad_(True)
    t = torch.from_numpy(np.where(targets >= 0, targets, -100))
    loss = F.cross_entropy(x, t, reduction="none", ignore_index=-100)
    loss.sum().backward()
    with torch.no_grad():
        wide = x.to(torch.float64 if name == "float64" else torch.float32)
        e = torch.exp(wide - wide.amax(-1, keepdim=True))
        s = e.sum(-1).to(x.dtype)
        softmax = torch.softmax(x, -1)
    return {
        "loss": np.where(targets >= 0, _np(loss), np.nan),
        "grad": _np(x.grad),
        "softmax": _np(softmax),
        "logsumexp": _np(torch.logsumexp(x, -1)),
        "exp": _np(e),
        "sum": _np(s),
        "probs": _np(softmax),
    }


def _make_case(name: str, x64: np.ndarray, targets: np.ndarray) -> Case:
    dtype = COMPUTE_DTYPES[name]
    x = dtype.to_work(x64.astype(dtype.storage))
    return Case(
        name=name,
        dtype=dtype,
        x=x,
        targets=targets,
        naive=kernels.naive(x, targets, dtype),
        stable=kernels.stable(x, targets, dtype),
        findings=reference_findings(x, targets, dtype),
        torch_naive=torch_naive(x, targets, name),
        torch_stable=torch_stable(x, targets, name),
    )


@pytest.fixture(scope="module", params=COMPUTE_DTYPE_NAMES)
def case(request) -> Case:
    """Random rows at many scales, with masks, fully masked rows, NaN, +inf, targets on
    masked classes and rows without a target, in one dtype."""
    name = request.param
    rng = np.random.default_rng([7, COMPUTE_DTYPE_NAMES.index(name)])
    x = _with_specials(rng, _random_rows(rng, name, 3 * ROWS_PER_SCENARIO, CLASSES))
    x[: ROWS_PER_SCENARIO // 2] = _random_rows(rng, name, ROWS_PER_SCENARIO // 2, CLASSES)
    return _make_case(name, x, _targets(rng, x))


@pytest.fixture(scope="module", params=COMPUTE_DTYPE_NAMES)
def one_class_case(request) -> Case:
    """Rows of a single class: p = e / e, which is 1 unless e is 0 or inf."""
    name = request.param
    rng = np.random.default_rng([8, COMPUTE_DTYPE_NAMES.index(name)])
    x = _with_specials(rng, _random_rows(rng, name, 600, 1))
    return _make_case(name, x, _targets(rng, x))


# --- flags read off torch's tensors ------------------------------------------------------


def _nonfinite(x: np.ndarray) -> np.ndarray:
    return np.isnan(x).any(axis=1) | np.isposinf(x).any(axis=1)


def _torch_flags(
    x: np.ndarray, targets: np.ndarray, arrays: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The contract's forward flags, computed from torch's tensors."""
    x = x.astype(np.float64)
    has_target = targets >= 0
    p_t = np.take_along_axis(arrays["probs"], np.maximum(targets, 0)[:, None], 1)[:, 0]
    return {
        "overflow": (np.isposinf(arrays["exp"]).any(axis=1) | np.isposinf(arrays["sum"]))
        & ~_nonfinite(x),
        "underflow": (arrays["sum"] == 0) | (has_target & (p_t == 0)),
        "nan_prob": np.isnan(arrays["probs"]).any(axis=1),
    }


FORWARD_FLAGS = {"overflow": Flag.OVERFLOW, "underflow": Flag.UNDERFLOW, "nan_prob": Flag.NAN_PROB}


def _ours(c: Case, implementation: str, flag: Flag) -> np.ndarray:
    return (c.findings.impls[implementation].flags & int(flag)) != 0


def _assert_rows_equal(ours: np.ndarray, expected: np.ndarray, c: Case, what: str) -> None:
    bad = np.flatnonzero(ours != expected)
    assert bad.size == 0, (
        f"{what} differs from torch on {bad.size} rows; first: x={c.x[bad[0]]!r} "
        f"target={c.targets[bad[0]]} ours={ours[bad[0]]} torch={expected[bad[0]]}"
    )


# --- helpers for values ------------------------------------------------------------------


def _assert_same_nonfinite(ours: np.ndarray, expected: np.ndarray, what: str) -> None:
    for kind in (np.isnan, np.isposinf, np.isneginf):
        bad = np.flatnonzero((kind(ours) != kind(expected)).ravel())
        assert bad.size == 0, f"{what}: {kind.__name__} differs at flat positions {bad[:5]}"


def _assert_close(
    ours: np.ndarray,
    expected: np.ndarray,
    ulps: float,
    name: str,
    what: str,
    slack: np.ndarray | float = 0.0,
) -> None:
    """|ours - expected| <= ulps * eps(D) * max(1, |expected|) + slack where both are finite,
    and the same NaN / +inf / -inf positions."""
    ours = np.asarray(ours, dtype=np.float64)
    _assert_same_nonfinite(ours, expected, what)
    slack = np.broadcast_to(slack, expected.shape)
    finite = np.isfinite(expected)
    error = np.abs(ours[finite] - expected[finite]) - slack[finite]
    error /= np.maximum(1.0, np.abs(expected[finite]))
    worst = float(error.max(initial=0.0)) / eps(name)
    assert worst <= ulps, f"{what}: off by {worst:.2f} eps (beyond the slack), allowed {ulps}"


def _subnormal_slack(c: Case, of: str) -> np.ndarray:
    """What subnormal intermediates can move a naive result by, per row, beyond ulps.

    Where a value is subnormal its rounding error is one subnormal spacing ``tiny``, a large
    relative error, and numpy and torch may land on neighbouring subnormals (their exp
    differ in the last bit, their sums in the order of addition). One spacing in each
    e[i] moves p = e / s by up to (C + 1) * tiny / s and the loss -log(p[t]) by up to
    (C + 1) * tiny / e[t]; in the backward pass p[t] / s may be subnormal too, which moves
    the gradient (at most 1 in size) by up to tiny / (p[t] / s) more.
    """
    tiny = float(ml_dtypes.finfo(c.dtype.storage).smallest_subnormal)
    classes = c.x.shape[1]
    s = c.torch_naive["sum"]
    at_target = np.maximum(c.targets, 0)[:, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if of == "loss":
            e_t = np.take_along_axis(c.torch_naive["exp"], at_target, 1)[:, 0]
            return (classes + 1) * tiny / e_t
        slack = (classes + 1) * tiny / s
        if of == "grad":
            p_t = np.take_along_axis(c.torch_naive["probs"], at_target, 1)[:, 0]
            slack = slack + tiny * s / p_t
        return slack[:, None]


# --- the naive path vs autograd ---------------------------------------------------------


@pytest.mark.parametrize("flag", ["overflow", "underflow", "nan_prob"])
def test_naive_forward_flags_match_torch(case, flag):
    expected = _torch_flags(case.x, case.targets, case.torch_naive)[flag]
    _assert_rows_equal(_ours(case, "naive", FORWARD_FLAGS[flag]), expected, case, f"naive {flag}")


def test_naive_nan_grad_matches_torch_autograd(case):
    expected = case.has_target & np.isnan(case.torch_naive["grad"]).any(axis=1)
    _assert_rows_equal(_ours(case, "naive", Flag.NAN_GRAD), expected, case, "naive nan_grad")


def test_every_flag_occurs_in_the_random_rows(case):
    # The comparisons above mean little unless each flag is actually exercised.
    checked = [("naive", f) for f in (*FORWARD_FLAGS.values(), Flag.NAN_GRAD)]
    for implementation, flag in [*checked, ("stable", Flag.UNDERFLOW)]:
        mask = _ours(case, implementation, flag)
        assert 20 < np.count_nonzero(mask) < len(case.x) - 20, (implementation, flag)


def test_naive_loss_matches_torch(case):
    # Four ulps: the roundings of e[t], s (whose summation order differs), e[t] / s and log.
    has = case.has_target
    slack = _subnormal_slack(case, "loss")[has]
    _assert_close(case.naive.loss[has], case.torch_naive["loss"][has], 4, case.name, "loss", slack)


def test_naive_probabilities_match_torch(case):
    slack = _subnormal_slack(case, "probs")
    _assert_close(case.naive.probs, case.torch_naive["probs"], 4, case.name, "probs", slack)


def test_naive_gradient_matches_torch_autograd(case):
    # The naive backward pass cancels huge terms (-1/(p_t s) against sum(p/s)), so a one-ulp
    # difference in s, from a different summation order, can cost a few ulps of the result.
    has = case.has_target
    slack = _subnormal_slack(case, "grad")[has]
    _assert_close(case.naive.grad[has], case.torch_naive["grad"][has], 8, case.name, "grad", slack)


# --- the stable path vs F.cross_entropy -------------------------------------------------


def test_stable_loss_matches_cross_entropy(case):
    # Three ulps: x[t] - m, the sum (added in another order, and rounded to D by us as the
    # contract says), the log and the difference are each rounded on both sides.
    has = case.has_target
    _assert_close(case.stable.loss[has], case.torch_stable["loss"][has], 3, case.name, "loss")


def test_stable_gradient_matches_cross_entropy_autograd(case):
    has = case.has_target
    expected = case.torch_stable["grad"][has]
    _assert_close(case.stable.grad[has], expected, 3, case.name, "grad")


def test_stable_probabilities_match_torch_softmax(case):
    _assert_close(case.stable.probs, case.torch_stable["softmax"], 2, case.name, "probs")


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_half_precision_stable_path_is_torch_bit_for_bit(name):
    # In D every value is rounded from float32 only where torch's fused kernels store one,
    # so the loss, the gradient and the probabilities are torch's own bits; the float32
    # sums, added in another order, can round to a neighbour of D at a tie, and exp and
    # log may differ in float32's last bit: a few entries may be one ulp of D off.
    rng = np.random.default_rng([12, COMPUTE_DTYPE_NAMES.index(name)])
    x = _random_rows(rng, name, 3000, 50)
    x[:1000] = rng.standard_normal((1000, 50)) * rng.uniform(0.1, 30, size=(1000, 1))
    c = _make_case(name, _with_specials(rng, x), _targets(rng, x))
    has = c.has_target
    pairs = {
        "loss": (c.stable.loss[has], c.torch_stable["loss"][has]),
        "grad": (c.stable.grad[has], c.torch_stable["grad"][has]),
        "probs": (c.stable.probs, c.torch_stable["softmax"]),
    }
    for what, (ours, theirs) in pairs.items():
        ours = np.asarray(ours, dtype=np.float64)
        same = (ours == theirs) | (np.isnan(ours) & np.isnan(theirs))
        assert same.mean() >= 0.999, f"{what}: {same.mean():.4%} of the entries are torch's"
        _assert_close(ours, theirs, 1, name, what)


def test_logsumexp_matches_torch_logsumexp(case):
    ours = kernels.logsumexp(case.stable.max, case.stable.sum, case.dtype)
    _assert_close(ours, case.torch_stable["logsumexp"], 2, case.name, "logsumexp")


@pytest.mark.parametrize("flag", ["overflow", "underflow", "nan_prob"])
def test_stable_forward_flags_match_torch(case, flag):
    expected = _torch_flags(case.x, case.targets, case.torch_stable)[flag]
    _assert_rows_equal(_ours(case, "stable", FORWARD_FLAGS[flag]), expected, case, f"stable {flag}")


def test_stable_nan_grad_matches_cross_entropy_autograd(case):
    expected = case.has_target & np.isnan(case.torch_stable["grad"]).any(axis=1)
    _assert_rows_equal(_ours(case, "stable", Flag.NAN_GRAD), expected, case, "stable nan_grad")


def test_stable_path_is_nan_exactly_on_nonfinite_and_fully_masked_rows(case):
    x = case.x.astype(np.float64)
    bad_input = _nonfinite(x) | np.isneginf(x).all(axis=1)
    _assert_rows_equal(_ours(case, "stable", Flag.NAN_PROB), bad_input, case, "stable nan")


# --- one-class rows ---------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["overflow", "underflow", "nan_prob"])
def test_one_class_naive_flags_match_torch(one_class_case, flag):
    c = one_class_case
    expected = _torch_flags(c.x, c.targets, c.torch_naive)[flag]
    _assert_rows_equal(_ours(c, "naive", FORWARD_FLAGS[flag]), expected, c, flag)


def test_one_class_naive_nan_grad_matches_torch(one_class_case):
    c = one_class_case
    expected = c.has_target & np.isnan(c.torch_naive["grad"]).any(axis=1)
    _assert_rows_equal(_ours(c, "naive", Flag.NAN_GRAD), expected, c, "nan_grad")


def test_one_class_losses_match_torch(one_class_case):
    c = one_class_case
    has = c.has_target
    _assert_close(c.naive.loss[has], c.torch_naive["loss"][has], 2, c.name, "naive loss")
    _assert_close(c.stable.loss[has], c.torch_stable["loss"][has], 3, c.name, "stable loss")


SPECIAL_ROWS = np.array(
    [
        [-np.inf, -np.inf, -np.inf],  # fully masked: -inf
        [0.0, np.inf, -np.inf],  # a +inf entry: +inf
        [np.inf, np.inf, 0.0],  # two: +inf (not inf - inf)
        [0.0, np.nan, np.inf],  # a NaN wins over +inf
        [1.0, -np.inf, 2.0],  # masks are zeros of the sum
    ]
)


@pytest.mark.parametrize("name", COMPUTE_DTYPE_NAMES)
def test_logsumexp_of_masked_infinite_and_nan_rows_matches_torch(name):
    c = _make_case(name, SPECIAL_ROWS, np.full(len(SPECIAL_ROWS), -1))
    ours = kernels.logsumexp(c.stable.max, c.stable.sum, c.dtype)
    _assert_close(ours, c.torch_stable["logsumexp"], 2, name, "logsumexp")
    assert np.isneginf(ours[0]) and np.isposinf(ours[1:3]).all() and np.isnan(ours[3])


# --- many classes: long sums ----------------------------------------------------------

MANY_CLASSES = 4099


@pytest.fixture(scope="module", params=COMPUTE_DTYPE_NAMES)
def many_class_case(request) -> Case:
    """Rows of 4099 classes (a sum that float16 cannot hold exactly even when every e is 1):
    random rows at several scales, uniform rows, rows near the overflow threshold."""
    name = request.param
    rng = np.random.default_rng([11, COMPUTE_DTYPE_NAMES.index(name)])
    x = _random_rows(rng, name, 45, MANY_CLASSES)
    x[:5] = 0.0
    x[5:10] = rng.standard_normal((5, MANY_CLASSES)) * 0.01
    x[40:] = _with_specials(rng, x[40:])
    return _make_case(name, x, _targets(rng, x))


def _accumulation_slack(c: Case) -> float:
    # Sums of C terms in the accumulate dtype, in different orders: up to log2(C) of its
    # ulps apart (numpy sums pairwise, torch in vectorised cascades).
    return float(np.log2(c.x.shape[1]) * np.finfo(c.dtype.accumulate).eps)


@pytest.mark.parametrize("flag", ["overflow", "underflow", "nan_prob"])
def test_many_classes_flags_match_torch(many_class_case, flag):
    c = many_class_case
    expected = _torch_flags(c.x, c.targets, c.torch_naive)[flag]
    _assert_rows_equal(_ours(c, "naive", FORWARD_FLAGS[flag]), expected, c, f"naive {flag}")
    expected = _torch_flags(c.x, c.targets, c.torch_stable)[flag]
    _assert_rows_equal(_ours(c, "stable", FORWARD_FLAGS[flag]), expected, c, f"stable {flag}")


def test_many_classes_stable_loss_and_gradient_match_cross_entropy(many_class_case):
    c, has = many_class_case, many_class_case.has_target
    loss, expected = c.stable.loss[has], c.torch_stable["loss"][has]
    slack = _accumulation_slack(c) * np.abs(expected)
    _assert_close(loss, expected, 3, c.name, "stable loss", slack)
    grad = c.torch_stable["grad"][has]
    _assert_close(c.stable.grad[has], grad, 3, c.name, "stable grad", _accumulation_slack(c))


def test_many_classes_naive_loss_and_gradient_match_autograd(many_class_case):
    c, has = many_class_case, many_class_case.has_target
    slack = _subnormal_slack(c, "loss")[has] + _accumulation_slack(c) * 4
    _assert_close(c.naive.loss[has], c.torch_naive["loss"][has], 4, c.name, "naive loss", slack)
    slack = _subnormal_slack(c, "grad")[has] + _accumulation_slack(c)
    _assert_close(c.naive.grad[has], c.torch_naive["grad"][has], 8, c.name, "naive grad", slack)


def test_many_classes_logsumexp_matches_torch(many_class_case):
    c = many_class_case
    ours = kernels.logsumexp(c.stable.max, c.stable.sum, c.dtype)
    expected = c.torch_stable["logsumexp"]
    slack = _accumulation_slack(c) * np.abs(expected)
    _assert_close(ours, expected, 2, c.name, "logsumexp", slack)


def test_float16_stable_loss_is_inf_when_the_rounded_sum_overflows_as_in_cross_entropy():
    # 70000 equal logits: e = 1 each and s = 70000 > 65504, which float16 rounds to inf (the
    # contract rounds sums to D). Then p = 1 / inf = 0, so the loss is log(inf) = inf, and
    # F.cross_entropy on float16 says the same, though torch.softmax keeps p = 1/70000.
    c = _make_case("float16", np.zeros((1, 70000)), np.array([3]))
    assert c.torch_stable["loss"][0] == np.inf
    assert c.stable.loss[0] == np.inf
    assert _ours(c, "stable", Flag.OVERFLOW)[0]
    np.testing.assert_array_equal(c.stable.grad, c.torch_stable["grad"])


# --- hand-picked rows, checked against torch ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "level"),
    [("float32", -100.0), ("bfloat16", -90.0), ("float64", -720.0), ("float16", -16.0)],
)
def test_naive_gradient_is_nan_for_uniform_rows_whose_sum_is_subnormal(name, level):
    # s is subnormal, so 1/s (and in most dtypes p/s) overflows: the div backward meets
    # inf - inf or multiplies a zero upstream gradient by inf. The loss is finite, ~log(3).
    x = np.full((1, 3), level)
    c = _make_case(name, x, np.array([0]))
    assert np.isnan(c.torch_naive["grad"]).any()
    np.testing.assert_array_equal(np.isnan(c.naive.grad), np.isnan(c.torch_naive["grad"]))
    assert np.isfinite(c.torch_naive["loss"][0]) and np.isfinite(c.naive.loss[0])
    assert _ours(c, "naive", Flag.NAN_GRAD)[0] and not _ours(c, "naive", Flag.NAN_PROB)[0]


@pytest.mark.parametrize("name", COMPUTE_DTYPE_NAMES)
def test_rows_just_below_and_above_the_exp_overflow_threshold_match_torch(name):
    dtype = COMPUTE_DTYPES[name]
    threshold = np.array([dtype.exp_overflow_threshold], dtype=dtype.storage)
    above = np.nextafter(threshold.astype(np.float64), np.inf).astype(dtype.storage)
    while above[0] <= threshold[0]:  # nextafter in float64 may round back to the threshold
        above = (above.astype(np.float64) * (1 + 2 * eps(name))).astype(dtype.storage)
    x = np.array([[float(threshold[0]), 0.0], [float(above[0]), 0.0]])
    c = _make_case(name, x, np.array([0, 1]))
    expected = _torch_flags(c.x, c.targets, c.torch_naive)["overflow"]
    np.testing.assert_array_equal(expected, [False, True])
    np.testing.assert_array_equal(_ours(c, "naive", Flag.OVERFLOW), expected)


@pytest.mark.parametrize("name", COMPUTE_DTYPE_NAMES)
def test_sum_overflow_without_any_exp_overflow_matches_torch(name):
    # Two entries whose exp is each about 0.7 of the maximum: every e is finite, s is not.
    level = LOG_MAX[name] + np.log(0.7)
    c = _make_case(name, np.array([[level, level, 0.0]]), np.array([2]))
    assert np.isfinite(c.torch_naive["exp"]).all() and np.isposinf(c.torch_naive["sum"][0])
    assert _ours(c, "naive", Flag.OVERFLOW)[0]
    _assert_close(c.stable.loss, c.torch_stable["loss"], 3, name, "stable loss")


# --- end to end: check() against torch ---------------------------------------------------


def _torch_report_facts(rows: np.ndarray, targets: np.ndarray, name: str) -> dict:
    """Per sample (rows in C order): the naive flags and both losses, from torch."""
    dtype = COMPUTE_DTYPES[name]
    x = dtype.to_work(rows.astype(dtype.storage))
    naive, stable = torch_naive(x, targets, name), torch_stable(x, targets, name)
    facts = _torch_flags(x, targets, naive)
    facts["nan_grad"] = (targets >= 0) & np.isnan(naive["grad"]).any(axis=1)
    facts["naive_loss"], facts["stable_loss"] = naive["loss"], stable["loss"]
    tiny = float(ml_dtypes.finfo(dtype.storage).smallest_subnormal)
    e_t = np.take_along_axis(naive["exp"], np.maximum(targets, 0)[:, None], 1)[:, 0]
    with np.errstate(divide="ignore"):
        facts["naive_loss_slack"] = (x.shape[1] + 1) * tiny / e_t  # see _subnormal_slack
    return facts


def _report_facts(report) -> dict:
    """The same facts read off a Report's SampleResults, in flat index order."""
    samples = [report.sample(i) for i in range(report.summary.samples)]
    facts = {
        key: np.array([getattr(s.naive, key) for s in samples])
        for key in ("overflow", "underflow", "nan_prob")
    }
    facts["nan_grad"] = np.array([bool(s.naive.nan_grad) for s in samples])
    for path in ("naive", "stable"):
        loss = [getattr(s, path).loss for s in samples]
        facts[f"{path}_loss"] = np.array([np.nan if v is None else v for v in loss])
        facts[f"{path}_no_loss"] = np.array([v is None for v in loss])
    return facts


@pytest.mark.parametrize("name", COMPUTE_DTYPE_NAMES)
@pytest.mark.parametrize("class_axis", [0, 1, -1])
def test_check_on_nd_logits_matches_torch_sample_by_sample(name, class_axis):
    rng = np.random.default_rng([9, COMPUTE_DTYPE_NAMES.index(name), class_axis % 3])
    classes, sample_shape = 5, (6, 40)
    rows = _with_specials(rng, _random_rows(rng, name, int(np.prod(sample_shape)), classes))
    targets = _targets(rng, rows)
    targets[rng.random(len(targets)) < 0.1] = -1
    nd = rows.reshape(*sample_shape, classes)
    logits = np.moveaxis(nd, -1, class_axis).astype(COMPUTE_DTYPES[name].storage)
    flat_targets = np.where(targets >= 0, targets, -7)

    report = check(logits, flat_targets.reshape(sample_shape), class_axis=class_axis,
                   ignore_index=-7)  # fmt: skip

    expected, got = _torch_report_facts(rows, targets, name), _report_facts(report)
    for key in ("overflow", "underflow", "nan_prob", "nan_grad"):
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    np.testing.assert_array_equal(got["naive_no_loss"], targets < 0)
    np.testing.assert_array_equal(got["stable_no_loss"], targets < 0)
    has = targets >= 0
    slack = expected["naive_loss_slack"][has]
    _assert_close(got["naive_loss"][has], expected["naive_loss"][has], 4, name, "naive", slack)
    _assert_close(got["stable_loss"][has], expected["stable_loss"][has], 3, name, "stable")


@pytest.mark.parametrize("name", ["float32", "float16"])
def test_check_with_class_axis_1_matches_cross_entropy_on_the_nd_tensor(name):
    # F.cross_entropy takes (N, C, d1) logits and (N, d1) targets natively: no reshaping on
    # the torch side, so this also pins our C-order flattening of the sample axes.
    rng = np.random.default_rng([10, COMPUTE_DTYPE_NAMES.index(name)])
    logits = (rng.standard_normal((4, 6, 9)) * 2).astype(COMPUTE_DTYPES[name].storage)
    targets = rng.integers(0, 6, size=(4, 9))
    targets[0, 3] = targets[2, 8] = -100
    expected = F.cross_entropy(
        torch.from_numpy(logits.astype(np.float64)).to(TORCH_DTYPES[name]),
        torch.from_numpy(targets),
        reduction="none",
    )
    expected = _np(expected).ravel()
    report = check(logits, targets, class_axis=1)
    got = np.array([s.stable.loss or 0.0 for s in report.samples(include_clean=True)])
    order = report.ordered(include_clean=True)
    assert report.summary.flagged == 0  # so the order is the flat index order
    np.testing.assert_array_equal(order, np.arange(36))
    _assert_close(got, expected, 3, name, "stable loss")
