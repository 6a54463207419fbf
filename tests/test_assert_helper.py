"""``softmax_cli.assert_passes``: for users' own test suites, a failure a person can read."""

from __future__ import annotations

import numpy as np
import pytest

import softmax_cli
from softmax_cli import assert_passes


def test_a_clean_batch_passes_and_returns_the_report(seed_logits: np.ndarray) -> None:
    report = assert_passes(seed_logits[[0, 2]], np.array([0, 1]))
    assert report.passed
    assert report.summary.samples == 2


def test_a_failing_batch_raises_with_the_verdict_and_counts(
    seed_logits: np.ndarray, seed_targets: np.ndarray
) -> None:
    with pytest.raises(AssertionError) as failure:
        assert_passes(seed_logits, seed_targets, fail_on="naive")
    lines = str(failure.value).splitlines()
    assert lines[0] == "softmax-check FAILED --fail-on naive (naive: 1)"
    assert lines[1].startswith("The naive implementation breaks on 1 of 3 samples")
    assert lines[2] == "1 of 3 samples flagged, 1 failing; breaks: naive 1, stable 0"


def test_the_message_names_the_failing_sample_its_flags_and_losses(
    seed_logits: np.ndarray, seed_targets: np.ndarray
) -> None:
    with pytest.raises(AssertionError) as failure:
        assert_passes(seed_logits, seed_targets, fail_on="naive")
    sample = str(failure.value).splitlines()[4]
    assert sample.startswith("  sample 1 (target 2; fails naive): naive BROKEN loss=inf: overflow")
    # the stable loss of row [1000, 0, -1000] with target 2: 1000 - (-1000), in float32
    assert "stable note loss=2000: underflow" in sample


def test_the_message_lists_the_worst_five_and_counts_the_rest() -> None:
    logits = np.zeros((8, 3), dtype=np.float32)
    logits[:, 0] = np.arange(100, 108)  # exp(100) overflows float32 in every row
    with pytest.raises(AssertionError) as failure:
        assert_passes(logits, fail_on="naive")
    lines = str(failure.value).splitlines()
    assert lines[3] == "worst 5 of the failing samples:"
    assert sum(line.startswith("  sample ") for line in lines) == 5
    assert lines[-1] == "  ... and 3 more"


def test_options_reach_the_check(seed_logits: np.ndarray, seed_targets: np.ndarray) -> None:
    assert_passes(seed_logits, seed_targets, fail_on="none")
    with pytest.raises(AssertionError):
        assert_passes(seed_logits, seed_targets, dtype="float64", fail_on="naive")


def test_it_is_exported_from_the_package() -> None:
    assert "assert_passes" in softmax_cli.__all__
    assert softmax_cli.assert_passes is assert_passes
