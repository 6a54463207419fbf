"""A bad ``.npy`` file is refused: exit 2, one short message naming the file and what is wrong
with it, nothing on standard output, an existing ``--output`` report untouched.

The files live in tests/data/bad/ (made by make_bad_files.py).
"""

from __future__ import annotations

import tracemalloc

import pytest
from conftest import BAD, assert_error_message, assert_untouched, invoke

from softmax_cli.errors import InputError
from softmax_cli.load import ArrayKeys, load_inputs

# (file in tests/data/bad, what the message must say)
NPY_CASES = [
    ("empty.npy", "is empty (0 bytes)"),
    ("truncated.npy", "is truncated"),
    ("header_only.npy", "is truncated"),
    ("cut_in_magic.npy", "is not a .npy file"),
    ("wrong_magic.npy", "does not start with the .npy magic bytes"),
    ("csv_text.npy", "is not a .npy file"),
    ("zip_named.npy", "looks like a ZIP archive"),
    ("corrupt_header.npy", "corrupt .npy header"),
    ("version_9.npy", "version 9.0"),
    ("object.npy", "never unpickles"),
    ("strings.npy", "strings"),
    ("bytes.npy", "strings"),
    ("complex.npy", "complex"),
    ("bool.npy", "booleans"),
    ("structured.npy", "structured array"),
    ("bfloat16.npy", "bfloat16"),
    ("datetime.npy", "not a numeric dtype"),
    ("scalar.npy", "single number"),
    ("zero_samples.npy", "zero samples"),
    ("zero_classes.npy", "zero classes"),
    ("absurd_shape.npy", "corrupt .npy header"),
    ("huge_shape.npy", "corrupt .npy header"),
    ("negative_shape.npy", "negative shape"),
    ("zero_itemsize.npy", "hold no data"),
]


@pytest.mark.parametrize(("name", "fragment"), NPY_CASES)
def test_a_bad_npy_file_is_refused_naming_the_file(name, fragment, old_report):
    result = invoke(BAD / name, "--format", "json", "-o", old_report)
    assert_error_message(result, str(BAD / name), fragment)
    assert_untouched(old_report)


def test_an_npy_header_declaring_an_absurd_shape_allocates_nothing():
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"corrupt \.npy header"):
            load_inputs(str(BAD / "huge_shape.npy"), None, ArrayKeys())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
