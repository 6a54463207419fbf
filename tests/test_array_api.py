"""check() takes tensors, DLPack and __array__ objects, masked arrays and junk as the contract says.

Every flag from a foreign array is held to checking the same values as a NumPy array (the
reference: NumPy input is what the rest of the suite holds to torch and mpmath); conversions
of CPU memory are held to sharing it (np.shares_memory), not copying it.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softmax_cli import InputError, check
from softmax_cli.arrays import logits_array

DTYPES = ("float64", "float32", "float16", "bfloat16")
NUMPY_DTYPES = {
    "float64": np.float64,
    "float32": np.float32,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
}


def troubled(rng: np.random.Generator, dtype: str, rows: int = 200, classes: int = 6) -> np.ndarray:
    """Rows at scales that make each naive flag fire somewhere, with masks and a NaN, in D."""
    x = rng.standard_normal((rows, classes)) * 10 ** rng.uniform(-1, 3, (rows, 1))
    x[rng.random((rows, classes)) < 0.1] = -np.inf
    x[3, 2] = np.nan
    with np.errstate(over="ignore"):  # values beyond float16's range become inf, as intended
        return x.astype(NUMPY_DTYPES[dtype])


def flags(report) -> dict[str, np.ndarray]:
    """Every per-sample column of a report that can differ: flags and losses."""
    findings = report.findings
    out = {"input": findings.input, "has_target": findings.has_target}
    for name, impl in findings.impls.items():
        out[f"{name}.flags"], out[f"{name}.loss"] = impl.flags, impl.loss
    return out


def assert_same_report(got, expected) -> None:
    a, b = flags(got), flags(expected)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert got.compute_dtype == expected.compute_dtype
    assert got.input.dtype == expected.input.dtype


# --- torch tensors -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


TORCH_DTYPES = ("float64", "float32", "float16", "bfloat16")


@pytest.mark.torch
@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_a_tensor_is_checked_as_the_same_numpy_array_is(torch, dtype, rng):
    x = troubled(rng, dtype)
    targets = rng.integers(0, x.shape[1], len(x))
    tensor = torch.from_numpy(x.astype(np.float64)).to(getattr(torch, dtype))
    expected = check(x, targets)
    assert_same_report(check(tensor, torch.from_numpy(targets)), expected)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_a_tensor_that_requires_grad_is_checked_without_detaching_by_hand(torch, dtype, rng):
    x = troubled(rng, dtype, rows=20)
    tensor = torch.from_numpy(x.astype(np.float64)).to(getattr(torch, dtype)).requires_grad_()
    assert_same_report(check(tensor * 1), check(x))  # a non-leaf with a grad_fn too


@pytest.mark.torch
@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_a_cpu_tensor_is_read_in_place_not_copied(torch, dtype):
    tensor = torch.zeros((64, 10), dtype=getattr(torch, dtype))
    array = logits_array(tensor, "<logits>")
    raw = tensor.view(torch.uint8).numpy()  # the tensor's bytes, as NumPy sees them
    assert np.shares_memory(array, raw)
    assert array.dtype == NUMPY_DTYPES[dtype]
    tensor[5, 3] = 7.0
    assert float(array[5, 3]) == 7.0  # the very same storage


@pytest.mark.torch
def test_a_strided_tensor_view_is_read_in_place_with_its_strides(torch, rng):
    base = torch.from_numpy(rng.standard_normal((10, 8)).astype(np.float32))
    view = base.t()[::2]  # (4, 10), not contiguous
    array = logits_array(view, "<logits>")
    assert np.shares_memory(array, base.numpy())
    np.testing.assert_array_equal(array, view.numpy())
    assert_same_report(check(view, class_axis=0), check(np.ascontiguousarray(array), class_axis=0))


@pytest.mark.torch
def test_targets_tensor_of_any_integer_dtype_is_accepted(torch, rng):
    x = troubled(rng, "float32", rows=30)
    targets = rng.integers(0, x.shape[1], len(x))
    expected = check(x, targets)
    for dtype in (torch.int64, torch.int32, torch.uint8, torch.int16):
        assert_same_report(check(x, torch.from_numpy(targets).to(dtype)), expected)


@pytest.mark.torch
def test_a_tensor_on_the_meta_device_is_refused_as_input(torch):
    # The meta device has no data to copy to the CPU: any failure there is an InputError.
    with pytest.raises(InputError):
        check(torch.zeros((2, 3), device="meta"))


@pytest.mark.torch
@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda torch: torch.zeros((2, 3), dtype=torch.complex64), "complex"),
        (lambda torch: torch.zeros((2, 3)).to_sparse(), "sparse"),
        (lambda torch: torch.zeros((2, 3), dtype=torch.float8_e4m3fn), "float8_e4m3fn"),
        (lambda torch: torch.zeros((2, 3), dtype=torch.bool), "booleans"),
    ],
)
def test_tensors_that_cannot_be_checked_raise_input_error(torch, make, fragment):
    with pytest.raises(InputError, match=fragment):
        check(make(torch))


@pytest.mark.torch
def test_a_conjugate_or_negative_view_is_read_as_its_values(torch):
    x = torch.tensor([[1.0, 2.0, -3.0]])
    assert_same_report(check(torch._neg_view(x)), check(-x.numpy()))


def test_checking_numpy_arrays_does_not_import_torch():
    code = (
        "import sys, numpy as np; from softmax_cli import check; "
        "check(np.zeros((2, 3)), np.array([0, 1])); check([[1.0, 2.0]]); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- DLPack and __array__ ----------------------------------------------------------------


class DLPackOnly:
    """An array from some other library that exports only DLPack (as a JAX array can)."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


class ArrayOnly:
    """An object NumPy reads through ``__array__`` only (as xarray and pandas objects)."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def __array__(self, dtype=None, copy=None):
        return self._array if dtype is None else self._array.astype(dtype)


class BrokenDLPack(ArrayOnly):
    """DLPack that fails (a device NumPy cannot read, a dtype it lacks): __array__ works."""

    def __dlpack__(self, **kwargs):
        raise BufferError("on a device NumPy cannot read")

    def __dlpack_device__(self):
        return (2, 0)  # kDLCUDA


def test_an_object_exporting_dlpack_is_read_in_place(rng):
    x = troubled(rng, "float32")
    array = logits_array(DLPackOnly(x), "<logits>")
    assert np.shares_memory(array, x)
    assert_same_report(check(DLPackOnly(x), DLPackOnly(np.zeros(len(x), np.int64))),
                       check(x, np.zeros(len(x), np.int64)))  # fmt: skip


def test_an_object_with_array_is_checked_as_that_array(rng):
    x = troubled(rng, "float16")
    assert np.shares_memory(logits_array(ArrayOnly(x), "<logits>"), x)
    assert_same_report(check(ArrayOnly(x)), check(x))


def test_a_failing_dlpack_export_falls_back_to_array(rng):
    x = troubled(rng, "float64", rows=10)
    assert_same_report(check(BrokenDLPack(x)), check(x))


def test_a_dlpack_export_that_fails_without_array_is_an_input_error():
    class Broken:
        def __dlpack__(self, **kwargs):
            raise BufferError("on a GPU")

        def __dlpack_device__(self):
            return (2, 0)

    with pytest.raises(InputError, match="DLPack"):
        check(Broken())


@pytest.mark.torch
def test_a_torch_tensor_through_np_from_dlpack_is_checked_as_the_tensor(torch, rng):
    x = troubled(rng, "float32")
    tensor = torch.from_numpy(x)
    via_dlpack = DLPackOnly(np.from_dlpack(tensor))
    assert np.shares_memory(logits_array(via_dlpack, "<logits>"), x)
    assert_same_report(check(via_dlpack), check(tensor))


def test_nested_lists_are_checked_as_the_array_they_make():
    rows = [[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]]
    assert_same_report(check(rows, [2, 0]), check(np.array(rows), np.array([2, 0])))


# --- masked arrays: the mask is honoured ---------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_logits_are_read_as_minus_inf_masks(dtype, rng):
    x = troubled(rng, dtype)
    mask = rng.random(x.shape) < 0.3
    mask[7] = True  # a fully masked row
    expected = x.copy()
    expected[mask] = -np.inf
    got = check(np.ma.masked_array(x, mask=mask))
    assert_same_report(got, check(expected))
    assert got.findings.input[7] != 0  # the fully masked row is flagged as one


def test_a_masked_array_with_nothing_masked_is_read_in_place(rng):
    x = troubled(rng, "float32")
    masked = np.ma.masked_array(x, mask=False)
    assert np.shares_memory(logits_array(masked, "<logits>"), x)
    assert_same_report(check(masked), check(x))


def test_masked_targets_are_the_ignore_index(rng):
    x = troubled(rng, "float32", rows=40)
    targets = rng.integers(0, x.shape[1], len(x)).astype(np.uint8)
    mask = rng.random(len(x)) < 0.3
    expected = np.where(mask, -7, targets.astype(np.int64))
    got = check(x, np.ma.masked_array(targets, mask=mask), ignore_index=-7)
    assert_same_report(got, check(x, expected, ignore_index=-7))
    np.testing.assert_array_equal(got.findings.has_target, ~mask)


def test_masked_targets_keep_out_of_range_values_as_given():
    # 300 in uint16 is outside the 3 classes: holding it with the ignore index must not wrap.
    targets = np.ma.masked_array(np.array([300, 1], dtype=np.uint16), mask=[False, True])
    with pytest.raises(InputError, match="target 0 is 300"):
        check(np.zeros((2, 3)), targets)


def test_masked_integer_logits_are_refused_since_they_cannot_hold_minus_inf():
    masked = np.ma.masked_array(np.arange(6).reshape(2, 3), mask=[[0, 1, 0], [0, 0, 0]])
    with pytest.raises(InputError, match="masked array of int"):
        check(masked)


def test_a_masked_array_names_the_array_in_its_error():
    with pytest.raises(InputError, match=r"^scores:"):
        check(np.ma.masked_array(np.array([[True, False]]), mask=[[0, 1]]), logits_name="scores")


# --- junk is an InputError, never a bare exception ---------------------------------------

JUNK_FRAGMENTS = [
    (None, "None"),
    ({"logits": [1.0]}, "dict"),
    ("logits", "strings"),
    (b"\x00\x01", "strings"),
    (3.5, "single number"),
    (np.float32(2), "single number"),
    ([[1.0, 2.0], [3.0]], "not an array NumPy can read"),
    ([], "zero classes"),
    ([[object()]], "dtype object"),
    ([[1 + 2j, 0]], "complex"),
    ({1, 2}, "set"),
]


@pytest.mark.parametrize(("junk", "fragment"), JUNK_FRAGMENTS)
def test_junk_logits_raise_input_error_saying_what_they_are(junk, fragment):
    with pytest.raises(InputError, match=fragment):
        check(junk)


@pytest.mark.parametrize(("junk", "fragment"), JUNK_FRAGMENTS[1:])  # None: no targets
def test_junk_targets_raise_input_error_naming_the_targets(junk, fragment):
    with pytest.raises(InputError, match=r"^<targets>:"):
        check(np.zeros((2, 3)), junk)


class RaisingArray:
    """A foreign object whose __array__ raises whatever it likes."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __array__(self, dtype=None, copy=None):
        raise self.exc


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.complex_numbers(),
    st.text(max_size=3),
    st.binary(max_size=3),
    st.just(object()),
)
_junk = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(st.text(max_size=2), children, max_size=2),
        st.builds(
            RaisingArray,
            st.sampled_from([KeyError("k"), ValueError("v"), TypeError("t"), IndexError(0)]),
        ),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(logits=_junk, targets=st.one_of(st.none(), _junk))
def test_any_junk_is_a_report_or_an_input_error(logits, targets):
    # Nothing else: no KeyError, ValueError or TypeError from NumPy or our code escapes.
    with contextlib.suppress(InputError):
        check(logits, targets)


# --- N-D targets against the wrong sample axes: a --class-axis hint ---------------------------


def test_nd_targets_that_fit_class_axis_1_suggest_it():
    # PyTorch and ONNX lay logits out (N, C, d1): targets (N, d1) fit class_axis=1.
    logits = np.zeros((4, 6, 9), dtype=np.float32)
    with pytest.raises(InputError) as info:
        check(logits, np.zeros((4, 9), dtype=np.int64))
    assert "with class_axis 1, not with class_axis -1" in str(info.value)


def test_nd_targets_that_fit_no_axis_get_no_class_axis_hint():
    with pytest.raises(InputError) as info:
        check(np.zeros((4, 6, 9)), np.zeros((5, 9), dtype=np.int64))
    assert "class_axis" not in str(info.value)


def test_class_axis_1_checks_what_the_hint_suggests():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((4, 6, 9)).astype(np.float32)
    targets = rng.integers(0, 6, (4, 9))
    report = check(logits, targets, class_axis=1)
    assert report.summary.samples == 36
