"""Every input format the contract names reads back the arrays that were written."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from softmax_cli.errors import InputError
from softmax_cli.load import ArrayKeys, load_inputs
from softmax_cli.validate import check_targets

LOGITS = np.array([[2.0, 1.0, 0.1], [1000.0, 0.0, -1000.0], [0.5, np.inf, -np.inf]])
TARGETS = np.array([0, 2, 1])
NO_KEYS = ArrayKeys()


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int8, np.uint16])
def test_npy_reads_any_numeric_dtype_memory_mapped(tmp_path, dtype):
    values = np.arange(12).reshape(3, 4).astype(dtype)
    np.save(tmp_path / "x.npy", values)
    loaded = load_inputs(str(tmp_path / "x.npy"), None, NO_KEYS)
    assert isinstance(loaded.logits, np.memmap)
    assert loaded.logits.dtype == dtype
    np.testing.assert_array_equal(loaded.logits, values)
    assert loaded.targets is None and not loaded.from_text


def test_npy_targets_file_is_read_and_named_as_the_targets(tmp_path):
    np.save(tmp_path / "x.npy", LOGITS)
    np.save(tmp_path / "t.npy", TARGETS)
    loaded = load_inputs(str(tmp_path / "x.npy"), str(tmp_path / "t.npy"), NO_KEYS)
    np.testing.assert_array_equal(loaded.targets, TARGETS)
    assert loaded.targets_name == str(tmp_path / "t.npy")


def test_npz_with_logits_and_targets_carries_both(tmp_path):
    np.savez(tmp_path / "d.npz", logits=LOGITS, targets=TARGETS)
    loaded = load_inputs(str(tmp_path / "d.npz"), None, NO_KEYS)
    np.testing.assert_array_equal(loaded.logits, LOGITS)
    np.testing.assert_array_equal(loaded.targets, TARGETS)
    assert loaded.targets_name == str(tmp_path / "d.npz")


def test_a_stored_npz_member_is_memory_mapped_with_identical_values(tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((7, 5)).astype(np.float32)
    targets = rng.integers(0, 5, size=7)
    path = tmp_path / "stored.npz"
    np.savez(path, logits=logits, targets=targets)
    loaded = load_inputs(str(path), None, ArrayKeys())
    assert isinstance(loaded.logits, np.memmap)
    assert loaded.logits.dtype == logits.dtype
    np.testing.assert_array_equal(loaded.logits, logits)
    assert isinstance(loaded.targets, np.memmap)
    np.testing.assert_array_equal(loaded.targets, targets)


@pytest.mark.parametrize(
    "array",
    [
        np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
        np.arange(12, dtype=">f4").reshape(4, 3),
        np.arange(24, dtype=np.float16).reshape(2, 3, 4),
        np.zeros((0, 3), dtype=np.float32),
    ],
    ids=["fortran", "big-endian", "3d-float16", "empty"],
)
@pytest.mark.parametrize("save", [np.savez, np.savez_compressed], ids=["stored", "compressed"])
def test_npz_members_come_back_with_identical_values(array, save, tmp_path):
    path = tmp_path / "dump.npz"
    save(path, logits=array)
    loaded = load_inputs(str(path), None, ArrayKeys()).logits
    assert loaded.dtype == array.dtype
    assert loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)


def test_a_stored_member_in_a_large_archive_is_mapped_not_read(tmp_path):
    path = tmp_path / "big.npz"
    np.savez(path, logits=np.ones((2048, 1024), dtype=np.float32))  # 8 MiB
    tracemalloc.start()
    try:
        logits = load_inputs(str(path), None, ArrayKeys()).logits
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert float(logits[-1, -1]) == 1.0


def test_npz_lone_array_is_the_logits(tmp_path):
    np.savez(tmp_path / "d.npz", scores=LOGITS)
    loaded = load_inputs(str(tmp_path / "d.npz"), None, NO_KEYS)
    np.testing.assert_array_equal(loaded.logits, LOGITS)
    assert loaded.targets is None


def test_npz_keys_pick_the_arrays(tmp_path):
    np.savez(tmp_path / "d.npz", a=LOGITS, b=LOGITS * 2, labels=TARGETS)
    loaded = load_inputs(str(tmp_path / "d.npz"), None, ArrayKeys(logits="b", targets="labels"))
    np.testing.assert_array_equal(loaded.logits, LOGITS * 2)
    np.testing.assert_array_equal(loaded.targets, TARGETS)


def test_npz_with_several_unnamed_arrays_asks_for_a_key(tmp_path):
    np.savez(tmp_path / "d.npz", a=LOGITS, b=LOGITS)
    with pytest.raises(InputError, match="--logits-key"):
        load_inputs(str(tmp_path / "d.npz"), None, NO_KEYS)


def test_npz_targets_file_with_a_lone_array(tmp_path):
    np.save(tmp_path / "x.npy", LOGITS)
    np.savez(tmp_path / "t.npz", labels=TARGETS)
    loaded = load_inputs(str(tmp_path / "x.npy"), str(tmp_path / "t.npz"), NO_KEYS)
    np.testing.assert_array_equal(loaded.targets, TARGETS)


def test_explicit_targets_file_wins_over_carried_targets(tmp_path):
    np.savez(tmp_path / "d.npz", logits=LOGITS, targets=TARGETS)
    (tmp_path / "t.txt").write_text("1\n1\n1\n")
    loaded = load_inputs(str(tmp_path / "d.npz"), str(tmp_path / "t.txt"), NO_KEYS)
    np.testing.assert_array_equal(loaded.targets, [1, 1, 1])


def test_csv_target_column_is_taken_out_of_the_logits_wherever_it_stands(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,target,c\n2,1,0,0.1\n1000,0,2,-1000\n0.5,inf,1,-inf\n")
    loaded = load_inputs(str(tmp_path / "d.csv"), None, NO_KEYS)
    np.testing.assert_array_equal(loaded.logits, LOGITS)
    np.testing.assert_array_equal(loaded.targets, TARGETS)
    assert loaded.from_text


def test_csv_without_header_is_all_logits(tmp_path):
    (tmp_path / "d.csv").write_text("2,1,0.1\n1000,0,-1000\n0.5,inf,-inf\n\n")
    loaded = load_inputs(str(tmp_path / "d.csv"), None, NO_KEYS)
    np.testing.assert_array_equal(loaded.logits, LOGITS)
    assert loaded.targets is None


def test_csv_nan_is_read_as_nan(tmp_path):
    (tmp_path / "d.csv").write_text("nan,1\n")
    loaded = load_inputs(str(tmp_path / "d.csv"), None, NO_KEYS)
    assert np.isnan(loaded.logits[0, 0]) and loaded.logits[0, 1] == 1


@pytest.mark.parametrize("text", ["0\n2\n1\n", "target\n0\n2\n1\n", "0\n\n2\n1"])
def test_text_targets_are_read_one_per_line(tmp_path, text):
    np.save(tmp_path / "x.npy", LOGITS)
    (tmp_path / "t.csv").write_text(text)
    loaded = load_inputs(str(tmp_path / "x.npy"), str(tmp_path / "t.csv"), NO_KEYS)
    np.testing.assert_array_equal(check_targets(loaded.targets, "t", 3, 3, -100), TARGETS)


def test_integral_float_targets_are_class_indices():
    np.testing.assert_array_equal(
        check_targets(np.array([0.0, 2.0, 1.0]), "t", 3, 3, -100), TARGETS
    )


def test_targets_may_have_the_sample_shape():
    flat = check_targets(np.array([[0, 1], [2, -100]]), "t", 4, 3, -100)
    np.testing.assert_array_equal(flat, [0, 1, 2, -100])


@pytest.mark.parametrize(
    ("targets", "problem"),
    [
        (np.array([0, 3, 1]), "outside the 3 classes"),
        (np.array([0, -1, 1]), "target 1 is -1, negative"),
        (np.array([0, 1]), "has 2 targets"),
        (np.array([0.0, 1.5, 1.0]), "not an integer"),
        (np.array([0.0, np.nan, 1.0]), "not a class index"),
    ],
)
def test_targets_that_do_not_fit_are_input_errors(targets, problem):
    with pytest.raises(InputError, match=problem):
        check_targets(targets, "t.npy", 3, 3, -100)


def test_unknown_extension_is_an_input_error(tmp_path):
    (tmp_path / "x.parquet").write_text("")
    with pytest.raises(InputError, match=r"unknown logits format '\.parquet'"):
        load_inputs(str(tmp_path / "x.parquet"), None, NO_KEYS)
