"""A ``.npy`` dump is read from the file a block at a time, never copied whole into memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from softmax_cli import check, classify
from softmax_cli.load import ArrayKeys, load_inputs

ROWS, CLASSES = 4096, 512  # 8 MiB of float32: many pieces of 64 KiB


@pytest.fixture
def dump(tmp_path) -> tuple[str, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((ROWS, CLASSES)).astype(np.float32) * 3
    x[::97] *= 50  # naive overflow
    x[5::89] -= 1000  # naive underflow
    x[11, 7] = np.nan
    path = tmp_path / "logits.npy"
    np.save(path, x)
    return str(path), x


@pytest.fixture
def small_pieces(monkeypatch):
    monkeypatch.setattr(classify, "PIECE_BYTES", 64 * 1024)
    monkeypatch.setattr(classify, "BLOCK_PIECES", 4)


def test_npy_logits_are_memory_mapped(dump):
    path, _ = dump
    assert isinstance(load_inputs(path, None, ArrayKeys()).logits, np.memmap)


def test_check_reports_progress_block_by_block(dump, small_pieces):
    path, _ = dump
    calls = []
    check(load_inputs(path, None, ArrayKeys()).logits, on_progress=lambda *a: calls.append(a))
    # 32 rows a piece, 4 pieces a block: 32 blocks, reported in order as they finish.
    assert calls == [(128 * i, ROWS) for i in range(1, 33)]


def test_checking_a_memory_map_allocates_far_less_than_the_file(dump, small_pieces):
    path, x = dump
    logits = load_inputs(path, None, ArrayKeys()).logits
    tracemalloc.start()
    try:
        check(logits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The table (34 bytes a row) and a few work buffers per thread, not a copy of the input.
    assert peak < x.nbytes / 4


def test_memory_mapped_result_equals_the_in_memory_one(dump, small_pieces):
    path, x = dump
    targets = np.random.default_rng(8).integers(0, CLASSES, size=ROWS)
    mapped = check(load_inputs(path, None, ArrayKeys()).logits, targets)
    in_memory = check(x, targets)
    for name in ("naive", "stable"):
        ours, theirs = mapped.findings.impls[name], in_memory.findings.impls[name]
        np.testing.assert_array_equal(ours.flags, theirs.flags)
        np.testing.assert_array_equal(ours.loss.view(np.uint64), theirs.loss.view(np.uint64))
    for name in ("max_logit", "logsumexp"):
        np.testing.assert_array_equal(
            getattr(mapped.measures, name).view(np.uint64),
            getattr(in_memory.measures, name).view(np.uint64),
        )
