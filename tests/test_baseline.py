"""--baseline: drift against an earlier JSON report, and --fail-on regression."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from softmax_cli.cli import app
from softmax_cli.version import __version__

GOLDEN = Path(__file__).parent / "golden_baseline"
UPDATE = bool(os.environ.get("UPDATE_GOLDEN"))
SAMPLES, CLASSES = 64, 10


def dump(blow_up: list[int], seed: int = 3) -> np.ndarray:
    """Ordinary float32 rows; the rows in ``blow_up`` scaled x60, past exp's float32 range
    (max entry > 88.72), so the naive code overflows there and nowhere else."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((SAMPLES, CLASSES)) * 2).astype(np.float32)
    x[:, 0] = 5.0  # every row's max is at least 5: scaled x60 it is 300
    x[blow_up] *= 60
    return x


@pytest.fixture
def dumps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """old.npy breaks the naive code on rows 3 and 9; new.npy on 9 and 20 (3 fixed, 20 new)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COLUMNS", raising=False)  # the table is 120 columns wide
    np.save("old.npy", dump([3, 9]))
    np.save("new.npy", dump([9, 20]))
    np.save("targets.npy", np.arange(SAMPLES) % CLASSES)
    runner = CliRunner()
    result = runner.invoke(
        app, ["old.npy", "--targets", "targets.npy", "--format", "json", "-o", "old.json"]
    )
    assert result.exit_code == 0, result.output
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(app, [*args, "--no-config"])


def test_a_regression_between_two_dumps_fails_fail_on_regression(dumps: Path) -> None:
    result = invoke(
        "new.npy", "--targets", "targets.npy", "--baseline", "old.json", "--fail-on", "regression"
    )
    assert result.exit_code == 1, result.output


def test_an_unchanged_dump_passes_fail_on_regression(dumps: Path) -> None:
    result = invoke(
        "old.npy", "--targets", "targets.npy", "--baseline", "old.json", "--fail-on", "regression"
    )
    assert result.exit_code == 0, result.output


def against_old(fmt: str, fail_on: str, *extra: str):
    """new.npy checked against the baseline old.json, in ``fmt``."""
    return invoke(
        "new.npy", "--targets", "targets.npy", "--baseline", "old.json", "--format", fmt,
        "--fail-on", fail_on, *extra,
    )  # fmt: skip


def baseline_block(*extra: str, fail_on: str = "none", exit_code: int = 0) -> dict:
    """The JSON report of new.npy against the baseline old.json."""
    result = against_old("json", fail_on, *extra)
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)


def test_new_breaks_and_fixed_count_the_rows_that_changed(dumps: Path) -> None:
    block = baseline_block()["baseline"]
    assert block["path"] == "old.json"
    assert block["new_breaks"] == {"naive": 1, "stable": 0}
    assert block["fixed"] == {"naive": 1, "stable": 0}


def test_the_regression_category_holds_the_newly_breaking_sample(dumps: Path) -> None:
    document = baseline_block("--max-headroom-drop", "1e9", fail_on="regression", exit_code=1)
    assert document["passed"] is False
    # Row 20 broke; row 9 broke before too. Their headroom change is not a regression here.
    assert document["summary"]["flagged"] == 2


def test_min_headroom_and_p99_are_before_after_and_change(dumps: Path) -> None:
    old = json.loads(Path("old.json").read_text())
    new = baseline_block()
    block = new["baseline"]
    assert block["min_headroom"]["before"] == old["summary"]["headroom"]["min"]
    assert block["min_headroom"]["after"] == new["summary"]["headroom"]["min"]
    for name, change in block["health"].items():
        assert change["before"] == old["summary"]["health"][name]["p99"]
        assert change["after"] == new["summary"]["health"][name]["p99"]
        assert change["change"] == pytest.approx(change["after"] - change["before"])


def test_a_headroom_fall_beyond_the_allowed_drop_is_a_regression(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    x = dump([])
    np.save("a.npy", x)
    x[5] += 30  # log Z of row 5 rises by 30 nats: headroom falls by 30, nothing breaks
    np.save("b.npy", x)
    assert invoke("a.npy", "--format", "json", "-o", "a.json").exit_code == 0
    failed = invoke("b.npy", "--baseline", "a.json", "--fail-on", "regression", "--format", "json")
    assert failed.exit_code == 1
    assert [s["index"] for s in json.loads(failed.stdout)["samples"]] == [5]
    tolerated = invoke(
        "b.npy", "--baseline", "a.json", "--fail-on", "regression", "--max-headroom-drop", "31"
    )
    assert tolerated.exit_code == 0
    assert "the minimum headroom fell by no more than 31 nats" in tolerated.stdout
    table = invoke("b.npy", "--baseline", "a.json").stdout  # the default drop, 1
    assert "fell by more than 1 nat (--max-headroom-drop)" in " ".join(table.split())


def test_a_sample_the_baseline_does_not_list_counts_as_not_breaking(dumps: Path) -> None:
    old = json.loads(Path("old.json").read_text())
    old["samples"] = []  # as if nothing had been flagged
    Path("empty.json").write_text(json.dumps(old))
    block = invoke(
        "new.npy",
        "--targets",
        "targets.npy",
        "--baseline",
        "empty.json",
        "--format",
        "json",
        "--fail-on",
        "none",
    )
    assert json.loads(block.stdout)["baseline"]["new_breaks"]["naive"] == 2


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "not JSON"),
        (
            json.dumps({"tool": {"name": "other"}, "schema_version": 1}),
            "not a softmax-check report",
        ),
        (json.dumps({"tool": {"name": "softmax-check"}, "schema_version": 2}), "schema_version 2"),
        (json.dumps({"tool": {"name": "softmax-check"}, "schema_version": 1}), "malformed"),
    ],
)
def test_a_baseline_that_is_no_report_exits_2_naming_the_file(
    dumps: Path, content: str, words: str
) -> None:
    Path("bad.json").write_text(content)
    result = invoke("new.npy", "--baseline", "bad.json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "bad.json" in result.stderr and words in result.stderr
    assert "Traceback" not in result.stderr


def test_a_baseline_of_another_sample_count_exits_2(dumps: Path) -> None:
    np.save("short.npy", dump([])[:10])
    result = invoke("short.npy", "--baseline", "old.json")
    assert result.exit_code == 2 and result.stdout == ""
    assert "old.json" in result.stderr and "64 samples" in result.stderr


@pytest.mark.parametrize(
    ("fmt", "name"), [("json", "json.json"), ("table", "table.txt"), ("markdown", "markdown.md")]
)
def test_drift_output_matches_its_golden_file(dumps: Path, fmt: str, name: str) -> None:
    result = against_old(fmt, "regression")
    assert result.exit_code == 1
    text = result.stdout.replace(__version__, "VERSION")
    golden = GOLDEN / name
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_the_drift_report_validates_against_the_json_schema(dumps: Path) -> None:
    import importlib.resources

    import jsonschema

    from softmax_cli import schema

    resource = importlib.resources.files("softmax_cli.schema").joinpath(schema.REPORT_V1)
    validator = jsonschema.Draft202012Validator(json.loads(resource.read_text()))
    document = baseline_block()
    assert list(validator.iter_errors(document)) == []
    document["baseline"]["new_breaks"]["naive"] = -1  # the schema can fail
    assert list(validator.iter_errors(document))


def test_ignored_padding_is_neither_new_nor_fixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --masked ignore, a fully masked row breaks no path; the baseline report still
    lists its NaN flags, which read back as a break would make an unchanged dump "fix" it."""
    monkeypatch.chdir(tmp_path)
    x = dump([4])
    x[2] = -np.inf  # padding
    np.save("a.npy", x)
    made = invoke("a.npy", "--masked", "ignore", "--format", "json", "-o", "a.json")
    assert made.exit_code == 0, made.output
    again = invoke(
        "a.npy",
        "--masked",
        "ignore",
        "--baseline",
        "a.json",
        "--format",
        "json",
        "--fail-on",
        "regression",
    )
    assert again.exit_code == 0, again.output
    block = json.loads(again.stdout)["baseline"]
    assert block["fixed"] == {"naive": 0, "stable": 0}
    assert block["new_breaks"] == {"naive": 0, "stable": 0}
    # The overflowing row 4 still counts: only the ignored samples are set aside.
    flagged = invoke("a.npy", "--masked", "ignore", "--format", "json", "--fail-on", "none")
    assert json.loads(flagged.stdout)["summary"]["naive"]["breaks"] == 1


@pytest.mark.parametrize("drop", ["-1", "nan", "inf"])
def test_a_max_headroom_drop_that_is_no_distance_is_a_usage_error(dumps: Path, drop: str) -> None:
    result = invoke("new.npy", "--baseline", "old.json", "--max-headroom-drop", drop)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "--max-headroom-drop must be a finite number, 0 or more" in result.stderr
