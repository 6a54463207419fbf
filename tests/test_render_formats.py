"""Every --format, pinned by golden files, plus the facts each CI format must keep.

Goldens live in tests/golden/<case>/<format>.<ext>. After an intended change to a renderer,
regenerate them and review the diff like code:

    UPDATE_GOLDEN=1 python -m pytest tests/test_render_formats.py

The tool version is replaced by ``VERSION`` and the logits are named ``seed.npy``, so the
files hold nothing that changes with the machine or the release.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from softmax_cli import __version__, check
from softmax_cli.errors import display
from softmax_cli.options import DEFAULT_VIEW, OutputFormat, View
from softmax_cli.render import github, junit, markdown, render
from softmax_cli.report import Report

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
EXTENSION = {
    OutputFormat.table: "txt",
    OutputFormat.json: "json",
    OutputFormat.junit: "xml",
    OutputFormat.github: "txt",
    OutputFormat.markdown: "md",
}
NEG_INF = -np.inf


def seed_report(fail_on: str = "input,stable") -> Report:
    """The issue's seed: one row the naive path cannot take (logits 1000 apart)."""
    logits = np.array([[2, 1, 0.1], [1000, 0, -1000], [0.5, 2.5, -1]], dtype=np.float32)
    return check(
        logits,
        np.array([0, 2, 1]),
        fail_on=fail_on,
        logits_name="seed.npy",
        targets_name="seed_targets.npy",
    )


def clean_report() -> Report:
    logits = np.array([[0.1, 0.2, 0.3], [1.0, -1.0, 0.0]], dtype=np.float64)
    return check(logits, np.array([2, 0]), logits_name="seed.npy", targets_name="seed_targets.npy")


def masked_report() -> Report:
    """Attention scores: a causal mask (-inf is fine) and one row that is all mask."""
    logits = np.array(
        [[0.0, NEG_INF, NEG_INF], [0.3, 0.1, NEG_INF], [NEG_INF, NEG_INF, NEG_INF]],
        dtype=np.float32,
    )
    return check(logits, logits_name="seed.npy")


def nd_report() -> Report:
    """(batch, sequence, classes) in float16: 12 overflows exp in float16 only naively."""
    logits = np.zeros((2, 3, 4), dtype=np.float16)
    logits[1, 2] = [12.0, 0.0, -3.0, 1.0]
    logits[0, 2] = [0.0, 12.0, 1.0, 2.0]  # the same overflow, with an ignored target
    logits[0, 1, 0] = np.nan
    targets = np.array([[0, 1, -100], [3, 2, 0]])
    return check(logits, targets, logits_name="seed.npy", targets_name="seed_targets.npy")


def many_report() -> Report:
    """More failing and noted samples than GitHub shows or --max-rows lists."""
    logits = np.zeros((24, 3), dtype=np.float32)
    logits[:11, 0] = np.nan  # input failures under the default --fail-on
    logits[11:22, 0] = 1000.0  # only the naive path breaks: notes under the default
    return check(logits, np.full(24, 1), logits_name="seed.npy")


CASES = {
    "seed": (seed_report, View()),
    "seed_fail_any": (lambda: seed_report("any"), View()),
    "seed_all": (seed_report, View(include_clean=True)),
    "clean": (clean_report, View()),
    "masked": (masked_report, View()),
    "nd": (nd_report, View()),
    "many": (many_report, View(max_rows=5)),
}


@pytest.mark.parametrize("fmt", list(OutputFormat))
@pytest.mark.parametrize("case", list(CASES))
def test_every_format_matches_its_golden_file(case: str, fmt: OutputFormat) -> None:
    make, view = CASES[case]
    text = render(make(), fmt, view).replace(__version__, "VERSION")
    golden = GOLDEN / case / f"{fmt.value}.{EXTENSION[fmt]}"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"no golden file {golden.name}: run with UPDATE_GOLDEN=1"
    assert text == golden.read_text(encoding="utf-8")


def test_every_golden_file_belongs_to_a_case_and_format() -> None:
    expected = {f"{c}/{f.value}.{EXTENSION[f]}" for c in CASES for f in OutputFormat}
    found = {p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*") if p.is_file()}
    assert found == expected


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_every_format_ends_in_a_newline(fmt: OutputFormat) -> None:
    assert render(seed_report(), fmt).endswith("\n")


def test_json_stays_the_contract_schema() -> None:
    document = json.loads(render(seed_report(), OutputFormat.json))
    assert document["schema_version"] == 1
    assert document["samples"][0]["naive"]["loss"] == "inf"
    assert document["samples"][0]["stable"]["loss"] == 2000.0


# JUnit: parsed back, as a CI system reads it.


def parse_junit(report: Report, view: View = DEFAULT_VIEW) -> ET.Element:
    return ET.fromstring(junit.render(report, view).encode("utf-8"))


@pytest.mark.parametrize("case", list(CASES))
def test_junit_counts_match_the_test_cases(case: str) -> None:
    make, view = CASES[case]
    root = parse_junit(make(), view)
    cases = root.findall("./testsuite/testcase")
    failures = [c for c in cases if c.find("failure") is not None]
    for element in (root, root.find("testsuite")):
        assert element.get("tests") == str(len(cases))
        assert element.get("failures") == str(len(failures))
        assert element.get("errors") == "0"
    assert root.find("testsuite").get("skipped") == "0"
    # Jenkins' junit-10.xsd has no ``skipped`` on the root (tests/test_schemas.py validates).
    assert root.get("skipped") is None


def test_junit_has_one_failure_per_sample_that_fails_the_policy() -> None:
    report = many_report()
    root = parse_junit(report)
    failing = int(report.fails.sum())
    assert failing == 11
    assert len(root.findall("./testsuite/testcase/failure")) == failing


def test_junit_names_a_case_by_position_and_classname_by_file() -> None:
    case = parse_junit(nd_report()).find("./testsuite/testcase")
    assert case is not None
    assert case.get("classname") == "softmax-check.seed_npy"
    assert re.fullmatch(r"sample \(\d, \d\)", case.get("name", ""))


def test_junit_classname_splits_into_tool_and_path_as_jenkins_reads_it() -> None:
    # Jenkins takes the classname's last dot as the package/class boundary.
    report = check(np.array([[1000.0, 0.0]]), fail_on="naive", logits_name="runs/v1.2/logits.npy")
    case = parse_junit(report).find("./testsuite/testcase")
    assert case is not None
    package, _, cls = case.get("classname", "").rpartition(".")
    assert (package, cls) == ("softmax-check", "runs/v1_2/logits_npy")
    assert (
        parse_junit(report).find("./testsuite").get("name") == "softmax-check: runs/v1.2/logits.npy"
    )


def test_junit_suite_time_is_the_measured_elapsed_time_and_cases_carry_none() -> None:
    root = parse_junit(dataclasses.replace(seed_report(), elapsed=1.23456))
    assert root.get("time") == "1.235"
    assert root.find("testsuite").get("time") == "1.235"
    assert {c.get("time") for c in root.iter("testcase")} == {"0.000"}


@pytest.mark.parametrize("elapsed", [None, float("nan"), -1.0])
def test_junit_time_is_zero_when_not_measured_or_not_a_duration(elapsed: float | None) -> None:
    root = parse_junit(dataclasses.replace(seed_report(), elapsed=elapsed))
    assert root.get("time") == root.find("testsuite").get("time") == "0.000"


def test_junit_failure_says_the_flags_losses_and_categories() -> None:
    failure = parse_junit(seed_report("any")).find("./testsuite/testcase/failure")
    assert failure is not None
    assert failure.get("type") == "naive,headroom"  # log Z = 1000: past float32's 88.7
    assert "overflow" in failure.get("message", "")
    assert "loss=inf" in (failure.text or "")
    assert "loss=2000" in (failure.text or "")


def test_junit_note_is_a_passing_case_that_says_why() -> None:
    case = parse_junit(seed_report()).find("./testsuite/testcase")
    assert case is not None
    assert case.find("failure") is None
    assert case.find("skipped") is None
    assert "underflow" in (case.findtext("system-out") or "")


def test_junit_shows_one_passing_case_when_nothing_is_flagged() -> None:
    root = parse_junit(clean_report())
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 1
    assert cases[0].get("classname") == "softmax-check.seed_npy"
    assert cases[0].find("failure") is None


@given(name=st.text(min_size=1, max_size=30))
def test_junit_is_well_formed_whatever_the_file_is_called(name: str) -> None:
    report = check(np.array([[1000.0, 0.0]]), fail_on="naive", logits_name=name)
    case = ET.fromstring(junit.render(report).encode("utf-8")).find("./testsuite/testcase")
    assert case is not None
    # Control characters (CR, LF and tab too) are shown escaped, as in every format.
    expected = "softmax-check." + display(name).replace(".", "_")
    assert case.get("classname") == expected
    assert expected.rpartition(".")[0] == "softmax-check"


# GitHub: workflow commands.


def github_lines(report: Report) -> list[str]:
    return github.render(report).splitlines()


def test_github_errors_for_failing_samples_and_warns_for_notes() -> None:
    lines = github_lines(seed_report("any"))
    assert lines[0].startswith("::error file=seed.npy,title=softmax-check%3A sample 1::")
    lines = github_lines(seed_report())
    assert lines[0].startswith("::warning file=seed.npy,title=softmax-check%3A sample 1::")


def test_github_ends_with_a_plain_summary_line() -> None:
    last = github_lines(seed_report("any"))[-1]
    assert not last.startswith("::")
    assert "1 of 3 samples flagged" in last
    assert "FAILED --fail-on input,stable,naive,impl" in last


def test_github_caps_each_level_at_ten_and_counts_the_rest() -> None:
    lines = github_lines(many_report())
    errors = [line for line in lines if line.startswith("::error ")]
    warnings = [line for line in lines if line.startswith("::warning ")]
    assert len(errors) == 10
    assert "2 more samples fail" in errors[-1]
    assert len(warnings) == 10
    assert "2 more samples are flagged" in warnings[-1]


def test_github_shows_all_when_there_are_exactly_ten() -> None:
    logits = np.zeros((10, 2), dtype=np.float32)
    logits[:, 0] = 1000.0
    lines = github_lines(check(logits, fail_on="naive", logits_name="seed.npy"))
    assert [line.split("::")[1] for line in lines[:-1]] == [
        f"error file=seed.npy,title=softmax-check%3A sample {i}" for i in range(10)
    ]


def test_github_escapes_properties_and_data_like_the_toolkit() -> None:
    report = check(np.array([[1000.0, 0.0]]), fail_on="naive", logits_name="a,b:50%\n.npy")
    first = github_lines(report)[0]
    assert first.startswith("::error file=a%2Cb%3A50%25%0A.npy,title=")


def test_github_leaves_out_the_file_for_standard_input() -> None:
    report = check(np.array([[1000.0, 0.0]]), fail_on="naive", logits_name="<stdin>")
    assert github_lines(report)[0].startswith("::error title=softmax-check%3A sample 0::")


@given(name=st.text(min_size=1, max_size=30))
def test_github_file_names_cannot_inject_commands(name: str) -> None:
    report = check(np.array([[1000.0, 0.0], [0.0, 0.0]]), fail_on="naive", logits_name=name)
    lines = github.render(report).split("\n")
    assert lines[-1] == ""
    assert len(lines) == 3
    assert lines[0].startswith("::error ")
    assert lines[1].startswith("softmax-check: ")


# Markdown: for $GITHUB_STEP_SUMMARY and merge-request comments.


def markdown_rows(text: str, header: str) -> list[str]:
    """The rows of the pipe table whose header row starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def cells(row: str) -> list[str]:
    """A pipe-table row split at unescaped pipes."""
    return re.split(r"(?<!\\)\|", row)[1:-1]


def test_markdown_lists_the_flagged_samples_up_to_max_rows() -> None:
    text = markdown.render(many_report(), View(max_rows=5))
    assert len(markdown_rows(text, "| sample |")) == 5
    assert "... and 17 more" in text


def test_markdown_says_the_verdict_first() -> None:
    assert "**FAILED --fail-on input,stable,naive,impl" in markdown.render(seed_report("any"))
    assert "**passed: no sample fails" in markdown.render(clean_report())


def test_markdown_has_no_sample_table_when_nothing_is_flagged() -> None:
    assert "| sample |" not in markdown.render(clean_report())


def test_markdown_rows_have_as_many_cells_as_the_header() -> None:
    text = markdown.render(nd_report())
    rows = markdown_rows(text, "| sample |")
    header = next(line for line in text.splitlines() if line.startswith("| sample |"))
    assert len(cells(header)) == 7  # sample, target, 3 measures, naive, stable
    assert rows
    assert all(len(cells(row)) == len(cells(header)) for row in rows)


def test_markdown_escapes_pipes_in_cells() -> None:
    assert markdown._escape("a|b") == "a\\|b"


def test_markdown_shows_a_file_name_with_backticks_in_a_longer_fence() -> None:
    report = check(np.array([[0.0, 1.0]]), logits_name="a`b<c>.npy")
    assert markdown.render(report).startswith("## softmax-check: ``a`b<c>.npy``\n")


@pytest.mark.parametrize("case", ["many", "nd", "clean"])
def test_junit_written_in_batches_is_the_document_written_at_once(case, monkeypatch) -> None:
    # The streamed document (test cases serialised a batch at a time) is byte for byte
    # what ElementTree makes of the whole tree.
    report, view = CASES[case]
    report = report()
    whole = _whole_tree_junit(report, view)
    monkeypatch.setattr(junit, "_CASE_BATCH", 2)
    assert "".join(junit.chunks(report, view)) == whole
    assert junit.render(report, view) == whole


def _whole_tree_junit(report: Report, view: View) -> str:
    root = ET.fromstring(junit.render(report, view).encode("utf-8"))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"
