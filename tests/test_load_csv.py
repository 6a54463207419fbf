"""CSV logits and text targets: which row is a header, which column holds the targets,
and that every value is read exactly (issues 14 and 15).

References are independent of the loader: Python's ``float`` and ``int`` on the same text,
and (where installed) files written by pandas itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import softmax_cli
from softmax_cli import cli
from softmax_cli.errors import InputError
from softmax_cli.load import ArrayKeys, load_inputs, text

REPO = Path(softmax_cli.__file__).parent.parent
LOGITS = [[2.0, 1.0, 0.1], [1000.0, 0.0, -1000.0], [0.5, 2.5, -1.0]]
TARGETS = [0, 2, 1]
BODY = "".join(f"{t},{a},{b},{c}\n" for t, (a, b, c) in zip(TARGETS, LOGITS, strict=True))


def write(tmp_path: Path, content: str, name: str = "d.csv") -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


def run_cli(*args: object, input: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "softmax_cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        input=input,
        check=False,
    )


def invoke(*args: object):
    """In-process, for speed; the first-row cases also run as ``python -m softmax_cli``."""
    result = CliRunner().invoke(cli.app, [str(a) for a in args])
    result.returncode = result.exit_code
    return result


def assert_refused(result, *fragments: str) -> None:
    detail = f"exit {result.returncode}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}"
    assert result.returncode == 2, detail
    assert result.stdout == "", detail
    assert "Traceback" not in result.stderr, detail
    assert 1 <= len(result.stderr.strip().splitlines()) <= 3, detail
    for fragment in fragments:
        assert fragment in result.stderr, detail


# --- the target column ------------------------------------------------------------------


@pytest.mark.parametrize("target", ["y", "label", "Target", "LABELS", " targets ", "class"])
def test_a_column_named_like_a_target_holds_the_targets(tmp_path, target):
    path = write(tmp_path, f"{target},c0,c1,c2\n" + BODY)
    logits, targets, column = text.read_logits(str(path), None)
    np.testing.assert_array_equal(logits, LOGITS)
    np.testing.assert_array_equal(targets, TARGETS)
    assert column == target.strip()


@pytest.mark.parametrize(
    "header", ["0,1,2,target", "c0,c1,c2", "class_0,class_1,class_2", "x5,x6,logit_12"]
)
def test_class_like_names_are_classes_even_when_they_hold_integers(tmp_path, header):
    body = "1,2,3,0\n4,5,6,1\n" if header.endswith("target") else "1,2,3\n4,5,6\n"
    logits, _, _ = text.read_logits(str(write(tmp_path, f"{header}\n{body}")), None)
    np.testing.assert_array_equal(logits, [[1, 2, 3], [4, 5, 6]])


def test_the_target_column_is_never_read_as_a_class(tmp_path):
    path = write(tmp_path, "c0,c1,label,c2\n2,1,0,0.1\n1000,0,2,-1000\n0.5,2.5,1,-1\n")
    loaded = load_inputs(str(path), None, ArrayKeys())
    np.testing.assert_array_equal(loaded.logits, LOGITS)
    np.testing.assert_array_equal(loaded.targets, TARGETS)
    assert loaded.target_column == "label"


def test_target_column_matches_case_insensitively(tmp_path):
    path = write(tmp_path, "Gold,c0,c1,c2\n" + BODY)
    _, targets, column = text.read_logits(str(path), "gold")
    np.testing.assert_array_equal(targets, TARGETS)
    assert column == "Gold"


def test_target_column_prefers_the_exact_name(tmp_path):
    path = write(tmp_path, "gold,c0,Gold\n0,1.5,2\n1,2.5,0\n")
    _, targets, column = text.read_logits(str(path), "Gold")
    assert column == "Gold"
    np.testing.assert_array_equal(targets, [2, 0])


def test_target_column_none_makes_every_column_a_class(tmp_path):
    path = write(tmp_path, "target,c0,c1,c2\n" + BODY)
    logits, targets, column = text.read_logits(str(path), "none")
    assert targets is None and column is None
    np.testing.assert_array_equal(logits[:, 0], TARGETS)
    assert logits.shape == (3, 4)


def test_target_column_none_on_the_command_line_runs_without_targets(tmp_path):
    path = write(tmp_path, "a,b,c\n1,2,3\n4,5,6\n")
    result = invoke(path, "--target-column", "none", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert '"targets": null' in result.stdout


def test_an_unknown_integer_column_stops_with_a_hint(tmp_path):
    path = write(tmp_path, "gold,c0,c1,c2\n" + BODY)
    assert_refused(
        invoke(path),
        "column 1 ('gold') holds only integers",
        "--target-column gold",
        "--target-column none",
    )


def test_an_unknown_column_of_floats_is_a_class(tmp_path):
    path = write(tmp_path, "score,c1\n0.5,1\n2.5,3\n")
    logits, targets, _ = text.read_logits(str(path), None)
    assert targets is None
    np.testing.assert_array_equal(logits, [[0.5, 1], [2.5, 3]])


def test_two_target_columns_are_refused(tmp_path):
    assert_refused(invoke(write(tmp_path, "label,target,c0\n0,0,1.5\n")), "--target-column")


# --- which first row is a header --------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "seen"),
    [
        ("1.0,,2", "column 2 is empty"),
        ("1.0,2.o,3", "column 2: '2.o' is not a number"),
        ("1.0,abc,3", "column 2 is the name 'abc'"),
        ("1,2,x3", "column 3 is the name 'x3'"),
        (",", "is empty"),
    ],
)
def test_a_first_row_that_is_neither_header_nor_numbers_is_refused(tmp_path, first, seen):
    path = write(tmp_path, f"{first}\n4,5,6\n")
    assert_refused(run_cli(path), "line 1 is neither a header nor a row of numbers", seen, "hint:")


def test_the_same_rule_holds_on_standard_input():
    assert_refused(run_cli("-", input="1.0,2.o,3\n4,5,6\n"), "<stdin>: line 1 is neither")


def test_the_first_non_blank_line_is_the_one_named(tmp_path):
    assert_refused(invoke(write(tmp_path, "\n\n1.0,,2\n4,5,6\n")), "line 3 is neither")


def test_a_row_of_only_empty_fields_is_not_dropped(tmp_path):
    assert_refused(invoke(write(tmp_path, "1,2\n,\n3,4\n")), "line 2, column 1: is empty")


def test_a_first_row_of_numbers_is_data(tmp_path):
    path = write(tmp_path, "nan,inf,-inf\n1e3,+2,-0.5\n")
    logits, _, _ = text.read_logits(str(path), None)
    np.testing.assert_array_equal(logits, [[np.nan, np.inf, -np.inf], [1000, 2, -0.5]])


# --- pandas exports ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        ",0,1,2\n0,2.0,1.0,0.1\n1,1000.0,0.0,-1000.0\n2,0.5,2.5,-1.0\n",
        ",c0,c1,c2\n0,2.0,1.0,0.1\n1,1000.0,0.0,-1000.0\n2,0.5,2.5,-1.0\n",
    ],
)
def test_a_pandas_index_column_is_dropped(tmp_path, content):
    logits, targets, _ = text.read_logits(str(write(tmp_path, content)), None)
    np.testing.assert_array_equal(logits, LOGITS)
    assert targets is None


def test_an_unnamed_first_column_that_is_not_an_index_is_refused(tmp_path):
    path = write(tmp_path, ",5,7\n3,1.5,2\n")
    assert_refused(invoke(path), "line 1 names every column but the first", "index=False")


@pytest.mark.parametrize("target", ["target", "Label", "y"])
@pytest.mark.parametrize("columns", ["numbers", "names"])
def test_files_written_by_pandas_read_back(tmp_path, target, columns):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(np.array(LOGITS))
    if columns == "names":
        frame.columns = [f"c{j}" for j in range(3)]
    frame[target] = TARGETS
    for index in (True, False):
        path = tmp_path / f"pandas_{index}.csv"
        frame.to_csv(path, index=index)
        logits, targets, column = text.read_logits(str(path), None)
        np.testing.assert_array_equal(logits, LOGITS)
        np.testing.assert_array_equal(targets, TARGETS)
        assert column == target


# --- values -----------------------------------------------------------------------------


def test_csv_logits_are_the_float64_python_reads(tmp_path):
    rng = np.random.default_rng(0)
    fields = [[repr(float(x)) for x in row] for row in rng.standard_normal((50, 7)) * 1e3]
    fields[3][2] = "1.000000000000000111"  # rounds: not a float64 as written
    fields[4][5] = "1_000"  # Python's float reads it; NumPy's parser does not
    path = write(tmp_path, "".join(",".join(row) + "\n" for row in fields))
    logits, _, _ = text.read_logits(str(path), None)
    assert logits.dtype == np.float64
    np.testing.assert_array_equal(logits, [[float(f) for f in row] for row in fields])


def test_a_row_of_a_million_values_is_read(tmp_path):
    values = np.random.default_rng(1).standard_normal(1_000_000)
    path = tmp_path / "wide.csv"
    np.savetxt(path, values[None, :], delimiter=",", fmt="%.17g")
    logits, _, _ = text.read_logits(str(path), None)
    assert logits.shape == (1, 1_000_000)
    np.testing.assert_array_equal(logits[0], values)


def test_a_bad_field_in_a_wide_row_is_named(tmp_path):
    fields = ["1.5"] * 100_000
    fields[76_543] = "oops"
    path = write(tmp_path, ",".join(["2.5"] * 100_000) + "\n" + ",".join(fields) + "\n")
    with pytest.raises(InputError, match="line 2, column 76544: 'oops' is not a number"):
        text.read_logits(str(path), None)


def test_rows_of_a_block_keep_their_line_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(text, "_BLOCK_ROWS", 3)
    rows = ["1,2"] * 10
    rows[7] = "1,2,3"
    with pytest.raises(InputError, match="line 8 has 3 fields, expected 2"):
        text.read_logits(str(write(tmp_path, "\n".join(rows) + "\n")), None)


def test_quoted_rows_are_read_in_order_among_plain_ones(tmp_path):
    path = write(tmp_path, 'c0,c1\n1,2\n"3","4"\n5,6\n')
    logits, _, _ = text.read_logits(str(path), None)
    np.testing.assert_array_equal(logits, [[1, 2], [3, 4], [5, 6]])


BIG = 2**62 + 1  # float64 rounds it to 2**62


def test_big_integer_targets_are_exact(tmp_path):
    path = write(tmp_path, f"target\n0\n{BIG}\n-{BIG}\n3.0\n")
    targets = text.read_targets(str(path))
    assert targets.dtype == np.int64
    assert targets.tolist() == [0, BIG, -BIG, 3]


def test_a_big_integer_in_a_target_column_is_exact(tmp_path):
    path = write(tmp_path, f"c0,c1,y\n1.5,2,{BIG}\n0.5,1,1\n")
    _, targets, _ = text.read_logits(str(path), None)
    assert targets.dtype == np.int64
    assert targets.tolist() == [BIG, 1]


def test_an_exact_big_ignore_index_matches_its_target(tmp_path):
    path = write(tmp_path, f"c0,c1,y\n1000,0,{BIG}\n0.5,1,1\n")
    result = invoke(path, "--ignore-index", BIG, "--format", "json", "--all")
    assert result.returncode == 0, result.stderr
    assert '"loss": null' in result.stdout  # the ignored sample, and only because it matched


def test_a_fractional_target_is_still_refused(tmp_path):
    logits = write(tmp_path, "1,2\n3,4\n", "l.csv")
    targets = write(tmp_path, "0\n2.5\n", "t.txt")
    assert_refused(invoke(logits, "--targets", targets), "target 1 is 2.5")


@pytest.mark.parametrize("value", ["9223372036854775808", "-9223372036854775809", "1e300"])
def test_a_target_beyond_int64_is_refused(tmp_path, value):
    logits = write(tmp_path, "1,2\n3,4\n", "l.csv")
    targets = write(tmp_path, f"0\n{value}\n", "t.txt")
    assert_refused(
        invoke(logits, "--targets", targets), f"line 2: target '{value}' does not fit in a 64-bit"
    )


def test_a_mistyped_first_target_is_not_taken_for_a_header(tmp_path):
    with pytest.raises(InputError, match=r"line 1: '2\.o' is not an integer class index"):
        text.read_targets(str(write(tmp_path, "2.o\n1\n", "t.txt")))


def test_loaded_csv_arrays_are_read_only(tmp_path):
    logits, targets, _ = text.read_logits(str(write(tmp_path, "y,c0\n1,0.5\n")), None)
    from_file = text.read_targets(str(write(tmp_path, "1\n", "t.txt")))
    for array in (logits, targets, from_file):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0
