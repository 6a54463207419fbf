"""``--report FORMAT=PATH``: several reports from one run, through the command line."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from softmax_cli.cli import app
from softmax_cli.options import OutputFormat

runner = CliRunner()


@pytest.fixture
def seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The seed logits and targets in an empty working directory without a pyproject."""
    monkeypatch.chdir(tmp_path)
    logits = np.array([[2, 1, 0.1], [1000, 0, -1000], [0.5, 2.5, -1]], dtype=np.float32)
    np.save(tmp_path / "seed.npy", logits)
    np.save(tmp_path / "seed_targets.npy", np.array([0, 2, 1]))
    (tmp_path / "out").mkdir()
    return tmp_path


def invoke(*args: str):
    return runner.invoke(app, ["seed.npy", "--targets", "seed_targets.npy", "--no-config", *args])


def squeezed(text: str) -> str:
    """Text without whitespace: the error console wraps (and folds long paths) at its width."""
    return "".join(text.split())


def test_writes_every_report_and_keeps_the_table_on_stdout(seed: Path) -> None:
    result = invoke("--report", "json=out/report.json", "--report", "junit=out/junit.xml")
    assert result.exit_code == 0
    assert "Flagged samples, worst first" in result.stdout
    assert result.stderr == ""
    assert json.loads((seed / "out/report.json").read_text())["summary"]["flagged"] == 1
    assert ET.parse(seed / "out/junit.xml").getroot().get("tests") == "1"


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_a_report_file_holds_what_output_would(seed: Path, fmt: OutputFormat) -> None:
    by_output = invoke("--format", fmt.value, "--fail-on", "any", "--output", "out/expected")
    by_report = invoke("--fail-on", "any", "--report", f"{fmt.value}=out/report")
    assert by_output.exit_code == by_report.exit_code == 1

    def same_run(text: str) -> str:  # JUnit carries each run's own duration
        return re.sub(r'time="[0-9.]+"', 'time="T"', text)

    assert same_run((seed / "out/report").read_text()) == same_run(
        (seed / "out/expected").read_text()
    )


def test_reports_are_written_when_the_check_fails(seed: Path) -> None:
    result = invoke("--fail-on", "any", "--report", "junit=out/junit.xml", "--format", "github")
    assert result.exit_code == 1
    assert result.stdout.startswith("::error file=seed.npy,")
    failures = ET.parse(seed / "out/junit.xml").getroot().get("failures")
    assert failures == "1"


def test_format_names_are_case_insensitive(seed: Path) -> None:
    assert invoke("--report", "JUnit=out/junit.xml").exit_code == 0
    assert (seed / "out/junit.xml").exists()


def test_a_path_may_contain_an_equals_sign(seed: Path) -> None:
    assert invoke("--report", "json=out/a=b.json").exit_code == 0
    assert (seed / "out/a=b.json").exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("junit", "--report junit: expected FORMAT=PATH"),
        ("=out/x.xml", "--report =out/x.xml: expected FORMAT=PATH"),
        ("junit=", "--report junit=: expected FORMAT=PATH"),
        ("sarif=out/x", "--report sarif=out/x: unknown format 'sarif' (choose from table, json"),
        ("junit=missing/x.xml", "--report junit=missing/x.xml: directory 'missing' does not exist"),
        ("junit=out", "--report junit=out: is a directory"),
    ],
)
def test_a_bad_report_is_a_usage_error_before_any_work(seed: Path, spec: str, message: str) -> None:
    (seed / "seed.npy").write_bytes(b"not an array")  # loading would fail: it must not start
    result = invoke("--report", spec)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert squeezed(result.stderr).startswith(squeezed(f"softmax-check: error: {message}"))


def test_two_reports_to_one_file_is_a_usage_error(seed: Path) -> None:
    result = invoke("--report", "json=out/r", "--report", "junit=out/../out/r")
    assert result.exit_code == 2
    assert squeezed("is already the target of --output or another --report") in squeezed(
        result.stderr
    )
    assert not (seed / "out/r").exists()


def test_a_report_to_the_output_file_is_a_usage_error(seed: Path) -> None:
    result = invoke("--output", "out/r", "--report", "junit=out/r")
    assert result.exit_code == 2
    assert result.stdout == ""


def test_bad_input_writes_no_report(seed: Path) -> None:
    (seed / "seed.npy").write_bytes(b"not an array")
    result = invoke("--report", "junit=out/junit.xml", "--report", "json=out/r.json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert list((seed / "out").iterdir()) == []


def test_an_existing_report_is_replaced_whole_and_keeps_its_mode(seed: Path) -> None:
    target = seed / "out/junit.xml"
    target.write_text("old report, longer than the new one would be if it were appended")
    os.chmod(target, 0o640)
    assert invoke("--report", "junit=out/junit.xml").exit_code == 0
    assert ET.parse(target).getroot().tag == "testsuites"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in (seed / "out").iterdir()] == ["junit.xml"]  # no temporary left


def test_a_report_can_go_to_a_device(seed: Path) -> None:
    """A FIFO stands for the device (writing /dev/null from a test would touch a real one):
    the report goes through it and the main output still reaches standard output."""
    fifo = seed / "out" / "github.fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    result = invoke("--report", f"github={fifo}", "--format", "json")
    reader.join(timeout=30)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["passed"] is True
    assert received and received[0].endswith("\n")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
