"""The command line as a user runs it: options, output channels and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from softmax_cli.cli import app

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logits"
SEED_CSV = str(SAMPLES / "seed.csv")
SEED_NPY = str(SAMPLES / "seed_logits.npy")
SEED_TARGETS = str(SAMPLES / "seed_targets.npy")
ATTENTION = str(SAMPLES / "attention_scores.npy")
LM_HEAD = str(SAMPLES / "lm_head_fp16.npz")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run_json(runner: CliRunner, *args: str) -> tuple[int, dict]:
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.stderr == ""
    return result.exit_code, json.loads(result.stdout)


def test_seed_csv_passes_by_default_while_the_naive_path_breaks(runner):
    result = runner.invoke(app, [SEED_CSV])
    assert result.exit_code == 0
    assert "BROKEN" in result.stdout
    assert "The naive implementation breaks on 1 of 3 samples; the stable one on none." in (
        " ".join(result.stdout.split())
    )
    assert result.stderr == ""


def test_seed_csv_and_npy_pair_give_the_same_json(runner):
    _, from_csv = run_json(runner, SEED_CSV)
    _, from_npy = run_json(runner, SEED_NPY, "--targets", SEED_TARGETS)
    assert from_csv["summary"] == from_npy["summary"]
    assert from_csv["samples"] == from_npy["samples"]


def test_json_names_the_flagged_sample_with_the_contract_keys(runner):
    code, doc = run_json(runner, SEED_NPY, "--targets", SEED_TARGETS)
    assert code == 0
    assert list(doc) == [
        "schema_version", "tool", "input", "compute_dtype", "fail_on", "passed", "summary",
        "samples",
    ]  # fmt: skip
    assert doc["input"] == {
        "logits": SEED_NPY, "targets": SEED_TARGETS, "shape": [3, 3], "dtype": "float32",
        "class_axis": -1,
    }  # fmt: skip
    (sample,) = doc["samples"]
    assert sample["index"] == 1 and sample["position"] == [1] and sample["target"] == 2
    assert sample["naive"] == {
        "overflow": True, "underflow": True, "nan_prob": True, "nan_grad": True, "loss": "inf",
    }  # fmt: skip
    assert sample["stable"] == {
        "overflow": False, "underflow": True, "nan_prob": False, "nan_grad": False,
        "loss": 2000.0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("fail_on", "expected"),
    [
        ("input,stable", 0),
        ("naive", 1),
        ("any", 1),
        ("none", 0),
        ("stable", 0),
        ("input", 0),
        ("NAIVE, input", 1),
    ],
)
def test_fail_on_decides_the_exit_code(runner, fail_on, expected):
    result = runner.invoke(app, [SEED_CSV, "--fail-on", fail_on])
    assert result.exit_code == expected


def test_fail_on_is_reported_in_json(runner):
    code, doc = run_json(runner, SEED_CSV, "--fail-on", "any")
    assert code == 1
    assert doc["fail_on"] == ["input", "stable", "naive", "impl", "headroom", "regression"]
    assert doc["passed"] is False


def test_fully_masked_attention_row_fails_the_default_policy(runner):
    code, doc = run_json(runner, ATTENTION)
    assert code == 1
    positions = [s["position"] for s in doc["samples"]]
    assert positions == [[1, 1], [0, 2]]  # both paths break first, then naive only
    assert doc["samples"][0]["input"] == {
        "nonfinite": False,
        "fully_masked": True,
        "out_of_range": False,
    }
    assert doc["samples"][0]["naive"]["loss"] is None
    assert doc["samples"][0]["naive"]["nan_grad"] is None
    assert doc["compute_dtype"] == "float16"


def test_npz_carries_its_own_targets(runner):
    code, doc = run_json(runner, LM_HEAD)
    assert code == 1
    assert doc["input"]["targets"] == LM_HEAD
    assert doc["summary"]["stable"]["inf_loss"] == 1


def test_dtype_option_changes_the_compute_dtype(runner):
    # 12.5 overflows exp in float16, not in float32.
    _, as_f16 = run_json(runner, ATTENTION)
    _, as_f32 = run_json(runner, ATTENTION, "--dtype", "float32")
    assert as_f16["summary"]["naive"]["overflow"] == 1
    assert as_f32["summary"]["naive"]["overflow"] == 0
    assert as_f32["compute_dtype"] == "float32"


def test_class_axis_moves_the_class_dimension(runner, tmp_path):
    logits = np.load(SEED_NPY)
    path = tmp_path / "transposed.npy"
    np.save(path, np.ascontiguousarray(logits.T))
    _, normal = run_json(runner, SEED_NPY, "--targets", SEED_TARGETS)
    _, moved = run_json(runner, str(path), "--targets", SEED_TARGETS, "--class-axis", "0")
    assert moved["summary"] == normal["summary"]
    assert moved["samples"][0]["stable"] == normal["samples"][0]["stable"]


def test_ignore_index_removes_loss_and_gradient(runner, tmp_path):
    targets = tmp_path / "targets.txt"
    targets.write_text("0\n-1\n1\n")
    _, doc = run_json(runner, SEED_NPY, "--targets", str(targets), "--ignore-index", "-1")
    (sample,) = doc["samples"]
    assert sample["target"] == -1
    assert sample["naive"]["loss"] is None and sample["stable"]["nan_grad"] is None


def test_all_lists_every_sample_in_json(runner):
    _, flagged = run_json(runner, SEED_CSV)
    _, every = run_json(runner, SEED_CSV, "--all")
    assert len(flagged["samples"]) == 1
    assert sorted(s["index"] for s in every["samples"]) == [0, 1, 2]


def test_max_rows_caps_the_table_and_says_how_many_more(runner):
    result = runner.invoke(app, [SEED_CSV, "--all", "--max-rows", "1"])
    assert result.exit_code == 0
    assert "... and 2 more" in result.stdout


def test_csv_from_standard_input(runner):
    result = runner.invoke(app, ["-", "--format", "json"], input=Path(SEED_CSV).read_text())
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["input"]["logits"] == "<stdin>"
    assert doc["summary"]["naive"]["breaks"] == 1


def test_target_column_names_the_csv_column(runner, tmp_path):
    path = tmp_path / "labelled.csv"
    path.write_text("label,a,b,c\n0,2,1,0.1\n2,1000,0,-1000\n1,0.5,2.5,-1\n")
    _, doc = run_json(runner, str(path), "--target-column", "label")
    assert doc["input"]["shape"] == [3, 3]
    assert doc["samples"][0]["stable"]["loss"] == 2000.0


def test_version_prints_the_name_and_a_0_x_version(runner):
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("softmax-check 0.")


def test_help_lists_every_contract_option(runner):
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--targets", "--target-column", "--logits-key", "--targets-key", "--dtype",
                   "--class-axis", "--ignore-index", "--format", "--output", "--all",
                   "--max-rows", "--fail-on"):  # fmt: skip
        assert option in result.stdout


def test_table_reads_without_colour_when_piped():
    result = subprocess.run(
        [sys.executable, "-m", "softmax_cli", SEED_CSV],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0
    assert "\x1b[" not in result.stdout
    assert "BROKEN" in result.stdout and "note" in result.stdout


def test_values_beyond_the_compute_dtype_are_flagged_without_warnings_on_stderr(tmp_path):
    # A real process: pytest would capture a RuntimeWarning before it reached stderr.
    path = tmp_path / "wide.npy"
    np.save(path, np.array([[1e300, 0.0, 1.0], [0.5, 0.25, 0.0]]))
    result = subprocess.run(
        [sys.executable, "-m", "softmax_cli", str(path), "--dtype", "float16", "--format", "json"],
        capture_output=True,
        text=True,
    )
    assert result.stderr == ""
    # +inf once cast to float16, but not the file's own +inf: a cast overflow.
    counts = json.loads(result.stdout)["summary"]["input"]
    assert counts["out_of_range"] == 1 and counts["nonfinite"] == 0


def test_python_dash_m_calls_itself_softmax_check():
    result = subprocess.run(
        [sys.executable, "-m", "softmax_cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "softmax-check [OPTIONS]" in result.stdout
