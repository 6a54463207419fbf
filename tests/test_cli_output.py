"""``-o/--output``: the report goes to the file only after the check succeeded, replacing an
existing report atomically; an output that cannot be written, or is an input, is refused
before any work and an existing report survives a failed write or Ctrl-C."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import LOGITS, assert_error_message, assert_untouched, deny, invoke

SEED_CSV = Path(__file__).resolve().parent.parent / "sample_logits" / "seed.csv"


def test_output_writes_the_report_to_a_file_and_nothing_to_stdout(tmp_path):
    out = tmp_path / "report.json"
    result = invoke(SEED_CSV, "--format", "json", "-o", out)
    assert result.exit_code == 0
    assert result.stdout == ""
    assert json.loads(out.read_text())["summary"]["flagged"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary left


def test_output_replaces_an_existing_report(tmp_path):
    out = tmp_path / "report.txt"
    out.write_text("old report\n")
    result = invoke(SEED_CSV, "-o", out)
    assert result.exit_code == 0
    assert "BROKEN" in out.read_text() and "old report" not in out.read_text()


def test_a_successful_run_replaces_the_report_atomically(old_report):
    result = invoke(LOGITS, "--format", "json", "-o", old_report)
    assert result.exit_code == 0, result.stderr
    assert old_report.read_text().startswith("{")
    assert sorted(p.name for p in old_report.parent.iterdir()) == [old_report.name]


# Merged from test_cli.py (SEED_CSV) and test_bad_input.py (LOGITS): one fact, both inputs.
@pytest.mark.parametrize("logits", [SEED_CSV, LOGITS], ids=["seed.csv", "logits.npy"])
def test_output_in_a_missing_directory_is_refused_before_any_work(logits, tmp_path):
    result = invoke(logits, "-o", tmp_path / "nowhere" / "report.json")
    assert_error_message(result, "does not exist")
    assert not (tmp_path / "nowhere").exists()


def test_output_that_is_a_directory_is_refused(tmp_path):
    assert_error_message(invoke(LOGITS, "-o", tmp_path), "is a directory")


def test_output_in_an_unwritable_directory_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "locked"
    folder.mkdir()
    deny(monkeypatch, folder)
    result = invoke(LOGITS, "-o", folder / "report.json")
    assert_error_message(result, "is not writable")
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("option", ["logits", "targets"])
def test_output_that_is_an_input_is_refused_and_the_input_kept(option, tmp_path):
    logits, targets = tmp_path / "logits.npy", tmp_path / "targets.npy"
    np.save(logits, np.zeros((2, 3)))
    np.save(targets, np.array([0, 1]))
    before = (logits.read_bytes(), targets.read_bytes())
    victim = logits if option == "logits" else targets
    result = invoke(logits, "--targets", targets, "--format", "json", "-o", victim)
    assert_error_message(result, "is an input file")
    assert (logits.read_bytes(), targets.read_bytes()) == before


def test_an_existing_report_survives_a_failed_write(old_report, monkeypatch):
    def fail(*args):
        raise OSError(28, "No space left on device", str(old_report))

    monkeypatch.setattr(os, "replace", fail)
    result = invoke(LOGITS, "--format", "json", "-o", old_report)
    assert_error_message(result, "No space left on device")
    assert_untouched(old_report)


def test_an_existing_report_survives_ctrl_c_while_it_is_written(old_report, monkeypatch):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupt)
    result = invoke(LOGITS, "--format", "json", "-o", old_report)
    assert result.exit_code == 130
    assert "interrupted" in result.stderr
    assert_untouched(old_report)
