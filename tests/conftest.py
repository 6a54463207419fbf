"""What the test modules share: the seed example, the compute dtypes, Hypothesis strategies
over their values, and the assertions every refused command line is held to.

Fixtures are found by pytest; the plain names (dtype lists, strategies, assertion functions)
are imported with ``from conftest import ...`` (tests/ is on ``sys.path``: it has no
``__init__.py``).
"""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from typer.testing import CliRunner, Result

import softmax_cli
from softmax_cli import cli
from softmax_cli.dtypes import COMPUTE_DTYPES, ComputeDtype

# --- the compute dtypes -----------------------------------------------------------------

#: Every compute dtype by name, in the order of softmax_cli.dtypes (float64, float32,
#: float16, bfloat16): the one list tests parametrise over. Seeds derived from a name's
#: position (``COMPUTE_DTYPE_NAMES.index(name)``) change only if a dtype is inserted.
COMPUTE_DTYPE_NAMES: tuple[str, ...] = tuple(COMPUTE_DTYPES)


def eps(dtype: str | ComputeDtype) -> float:
    """The machine epsilon of a compute dtype, given by name or as the ComputeDtype."""
    storage = (COMPUTE_DTYPES[dtype] if isinstance(dtype, str) else dtype).storage
    return float(ml_dtypes.finfo(storage).eps)


@pytest.fixture(params=list(COMPUTE_DTYPES.values()), ids=lambda d: d.name)
def compute_dtype(request: pytest.FixtureRequest) -> ComputeDtype:
    """Each compute dtype in turn."""
    return request.param


# --- Hypothesis strategies --------------------------------------------------------------

compute_dtype_names = st.sampled_from(COMPUTE_DTYPE_NAMES)


def values_of(storage: np.dtype) -> st.SearchStrategy[float]:
    """Finite values of the dtype, from tiny to its largest, and the three non-finite ones."""
    largest = float(ml_dtypes.finfo(storage).max)
    return st.one_of(
        st.floats(-largest, largest, allow_nan=False, allow_infinity=False),
        st.floats(-30, 30),
        st.sampled_from([0.0, -0.0, largest, -largest, math.nan, math.inf, -math.inf]),
    )


@st.composite
def finite_rows(draw, dtype: ComputeDtype, max_classes: int = 32, masks: bool = False):
    """(rows of finite values of D in the work dtype, a target per row); with ``masks``
    some entries are -inf, but never a whole row."""
    rows = draw(st.integers(1, 6))
    classes = draw(st.integers(1, max_classes))
    biggest = float(ml_dtypes.finfo(dtype.storage).max)
    elements = st.floats(-biggest, biggest, allow_nan=False, allow_infinity=False)
    x = draw(hnp.arrays(np.float64, (rows, classes), elements=elements))
    x = dtype.to_work(x.astype(dtype.storage))  # in range, so rounding stays finite
    if masks:
        mask = draw(hnp.arrays(np.bool_, (rows, classes)))
        mask[:, 0] &= ~mask.all(axis=1)  # keep at least one entry per row
        x[mask] = -np.inf
    targets = draw(hnp.arrays(np.int64, rows, elements=st.integers(0, classes - 1)))
    return x, targets


# --- the seed example of issue 1 --------------------------------------------------------


@pytest.fixture
def seed_logits() -> np.ndarray:
    """Three samples: an ordinary row, one spanning +-1000 (the naive path's nightmare), and
    a second ordinary row."""
    return np.array([[2.0, 1.0, 0.1], [1000.0, 0.0, -1000.0], [0.5, 2.5, -1.0]], dtype=np.float32)


@pytest.fixture
def seed_targets() -> np.ndarray:
    return np.array([0, 2, 1])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240607)


# --- refused command lines --------------------------------------------------------------

BAD = Path(__file__).parent / "data" / "bad"
"""The bad input files made by tests/data/bad/make_bad_files.py."""
LOGITS = BAD / "logits.npy"
"""A good 2 x 3 float dump beside them."""
OLD_REPORT = "an earlier report that must survive\n"
REPO = Path(softmax_cli.__file__).parent.parent
"""The checkout under test: a subprocess imports softmax_cli from here."""


def invoke(*args: object, input: str | bytes | None = None) -> Result:
    """softmax-check run in-process with these arguments (stringified)."""
    return CliRunner().invoke(cli.app, [str(a) for a in args], input=input)


def assert_refused(result: Result, *fragments: str, max_lines: int = 4) -> None:
    """Exit 2, a short message on stderr with every fragment, no traceback, empty stdout."""
    detail = f"exit {result.exit_code}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}"
    assert result.exit_code == 2, detail
    assert result.exception is None or isinstance(result.exception, SystemExit), detail
    assert result.stdout == "", detail
    assert "Traceback" not in result.stderr, detail
    assert "internal error" not in result.stderr, detail
    assert 1 <= len(result.stderr.strip().splitlines()) <= max_lines, detail
    for fragment in fragments:
        assert fragment in result.stderr, detail


def assert_error_message(result: Result, *fragments: str) -> None:
    """A refusal from softmax-check itself: the one-line prefix, then what is wrong."""
    assert_refused(result, *fragments)
    assert result.stderr.startswith("softmax-check: error: "), result.stderr


def assert_usage_error(result: Result, *fragments: str) -> None:
    """A command line Click rejects: its usage line, a pointer to --help, and the error (Typer
    draws the error in a box, so a long one takes a few more lines)."""
    assert_refused(result, "Usage:", "-h", *fragments, max_lines=8)


@pytest.fixture
def old_report(tmp_path: Path) -> Path:
    """An existing report in an otherwise empty folder."""
    folder = tmp_path / "reports"
    folder.mkdir()
    path = folder / "report.json"
    path.write_text(OLD_REPORT)
    return path


def assert_untouched(report: Path) -> None:
    """The report still holds the earlier text and no temporary lies beside it."""
    assert report.read_text() == OLD_REPORT
    assert sorted(p.name for p in report.parent.iterdir()) == [report.name]


def run_process(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """``args`` run as a real process that imports this checkout's softmax_cli."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, **kwargs)


def deny(monkeypatch: pytest.MonkeyPatch, denied: Path) -> None:
    """Make os.access say no for ``denied``, as it does for anyone but root on a 000 file."""
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p) == str(denied) else real_access(p, mode)
    )
