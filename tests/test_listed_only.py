"""``check_loaded(listed_only=True)``, as the command line checks without ``--all``.

A half-precision check then skips the naive pass on rows it proves clean, and checks again
in full every sample a report may list. What any report shows must not change at all:
these tests compare whole JSON documents, bit for bit, with a check made in full.
"""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest
from typer.testing import CliRunner

from softmax_cli import classify
from softmax_cli.classify import check_loaded
from softmax_cli.cli import app
from softmax_cli.dtypes import COMPUTE_DTYPES
from softmax_cli.load import Loaded
from softmax_cli.options import CheckOptions, OutputFormat, View
from softmax_cli.render import render

STORAGE = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


def _dump(name: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Ordinary rows at many scales, rows near each limit of D, masks, NaN and +inf."""
    scale = 10 ** rng.uniform(-1, 1.3, size=(300, 1))
    x = rng.standard_normal((300, 40)) * scale
    limit = 11.09 if name == "float16" else 88.72
    x[:40] += limit * rng.uniform(0.8, 1.05, size=(40, 1))  # the naive sum near overflow
    x[40:60] -= limit * rng.uniform(0.8, 1.3, size=(20, 1))  # ... and near underflow
    x[60:70, :5] = -np.inf
    x[70, 3] = np.nan
    x[71, 1] = np.inf
    targets = rng.integers(0, 40, size=300)
    targets[::17] = -100
    with np.errstate(over="ignore"):
        return x.astype(STORAGE[name]), targets


def _loaded(x: np.ndarray, targets: np.ndarray) -> Loaded:
    return Loaded(logits=x, targets=targets, logits_name="x", targets_name="t", from_text=False)


def _documents(loaded: Loaded, options: CheckOptions) -> tuple[str, str, object]:
    """Every format's text of a full check and of one for listed samples only."""
    full = check_loaded(loaded, options)
    listed = check_loaded(loaded, options, listed_only=True)
    texts = [
        "\n".join(render(r, f) for f in (OutputFormat.json, OutputFormat.markdown))
        for r in (full, listed)
    ]
    return *texts, listed


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
@pytest.mark.parametrize("given", ["default", "headroom", "any", "sweep"])
def test_what_a_report_shows_is_the_full_checks_to_the_last_bit(name, given):
    # Half of log_max: the samples whose log Z is more than halfway to a limit are listed.
    headroom = COMPUTE_DTYPES[name].log_max / 2
    options = {
        "default": CheckOptions.of(),
        "headroom": CheckOptions.of(min_headroom=headroom),
        "any": CheckOptions.of(fail_on="any", min_headroom=headroom),
        "sweep": CheckOptions.of(sweep=True),
    }[given]
    x, targets = _dump(name, np.random.default_rng([3, len(given)]))
    full, listed, report = _documents(_loaded(x, targets), options)
    assert report.findings.naive_estimated.any(), "some rows skipped the naive pass"
    assert listed == full
    # The sample with the lowest headroom is a regression's when it fell: in full too.
    lowest = report.summary.headroom.index
    assert lowest is not None and not report.findings.naive_estimated[lowest]


def test_without_the_second_look_a_listed_clean_sample_would_show_an_estimate(monkeypatch):
    # Every row here is clean in bfloat16 and listed for its headroom: what the second,
    # full check of the listable samples is for.
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((200, 64)) * 3 + 10).astype(ml_dtypes.bfloat16)
    targets = rng.integers(0, 64, size=200)
    options = CheckOptions.of(min_headroom=85.0)
    monkeypatch.setattr(classify, "_compute_listable", lambda *args: None)
    full, listed, _ = _documents(_loaded(x, targets), options)
    assert '"flagged": 200' in full
    assert listed != full


def test_listing_every_sample_of_a_check_made_for_listed_ones_is_refused():
    x, targets = _dump("bfloat16", np.random.default_rng(9))
    report = check_loaded(_loaded(x, targets), CheckOptions.of(), listed_only=True)
    with pytest.raises(ValueError, match="listed ones only"):
        next(report.samples(include_clean=True))


def test_the_command_line_lists_every_sample_with_all_from_a_full_check(tmp_path):
    x, targets = _dump("float16", np.random.default_rng(11))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", targets)
    args = [str(tmp_path / "x.npy"), "--targets", str(tmp_path / "t.npy"), "--format", "json"]
    result = CliRunner().invoke(app, [*args, "--all"])
    assert result.exit_code == 1, result.output
    shown = json.loads(result.stdout)["samples"]
    assert len(shown) == len(x)
    full = json.loads(
        render(
            check_loaded(_loaded(x, targets), CheckOptions.of()),
            OutputFormat.json,
            View(include_clean=True),
        )
    )
    assert json.dumps(shown) == json.dumps(full["samples"])
    # Without --all the check skipped naive passes, and listed the same flagged samples.
    listed = json.loads(CliRunner().invoke(app, args).stdout)["samples"]
    flagged = [s for s in full["samples"] if s["index"] in {t["index"] for t in listed}]
    assert 0 < len(listed) < len(x) and json.dumps(listed) == json.dumps(flagged)
