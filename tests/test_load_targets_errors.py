"""A bad targets file is refused naming the targets file, whatever its format; a negative
target is accepted only when it is the ignore index, and the hint says which index that is.
"""

from __future__ import annotations

import pytest
from conftest import BAD, LOGITS, assert_error_message, assert_untouched, invoke

# (targets file in tests/data/bad, what the message must say); the logits are logits.npy
TARGET_CASES = [
    ("targets_count.npy", "has 3 targets (shape (3,)) but the logits have 2 samples"),
    ("targets_range.npy", "target 1 is 3, outside the 3 classes (0 to 2)"),
    ("targets_negative.npy", "target 1 is -1, negative"),
    ("targets_fraction.npy", "target 1 is 1.5, not an integer class index"),
    ("targets_nan.npy", "target 1 is nan"),
    ("targets_bool.npy", "booleans"),
    ("targets_strings.npy", "not integer class indices"),
    ("targets_wrapping.npy", "target 1 is 18446744073709551516"),
    ("targets_words.txt", "line 3: 'cat' is not an integer class index"),
    ("targets_empty.txt", "holds no targets"),
    ("targets_fraction.csv", "target 1 is 0.5"),
    ("empty.npy", "is empty"),
    ("ambiguous.npz", "cannot tell which array holds the targets"),
    ("make_bad_files.py", "unknown targets format '.py'"),
]


@pytest.mark.parametrize(("name", "fragment"), TARGET_CASES)
def test_a_bad_targets_file_is_refused_naming_the_file(name, fragment, old_report):
    result = invoke(LOGITS, "--targets", BAD / name, "--format", "json", "-o", old_report)
    assert_error_message(result, str(BAD / name), fragment)
    assert_untouched(old_report)


def test_negative_target_equal_to_the_ignore_index_is_accepted():
    result = invoke(LOGITS, "--targets", BAD / "targets_negative.npy", "--ignore-index", "-1")
    assert result.exit_code == 0, result.stderr


def test_a_refused_target_names_the_ignore_index_in_its_hint():
    result = invoke(LOGITS, "--targets", BAD / "targets_range.npy", "--ignore-index", "-7")
    assert_error_message(result, "hint:", "ignore index (-7)")


def test_ignore_index_beyond_int64_is_refused():
    result = invoke(LOGITS, "--targets", BAD / "targets_range.npy", "--ignore-index", str(2**70))
    assert_error_message(result, "--ignore-index", "64-bit")
