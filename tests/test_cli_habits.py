"""Terminal habits: shell completion, the usage line, --help at 80 columns, -q, and the
GitHub step summary that a report adds to instead of replacing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from softmax_cli.cli import app

SEED = str(Path(__file__).parent.parent / "sample_logits" / "seed.csv")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _help(runner: CliRunner, columns: int = 80) -> str:
    result = runner.invoke(
        app, ["--help"], env={"COLUMNS": str(columns), "NO_COLOR": "1"}, prog_name="softmax-check"
    )
    assert result.exit_code == 0
    return result.stdout


def test_show_completion_prints_a_bash_completion_script(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["--show-completion", "bash"], env={"SHELL": "/bin/bash"}, prog_name="softmax-check"
    )
    assert result.exit_code == 0, result.output
    assert "complete " in result.stdout
    assert "_SOFTMAX_CHECK_COMPLETE" in result.stdout


def test_help_offers_installing_completion(runner: CliRunner) -> None:
    assert "--install-completion" in _help(runner)


def test_the_usage_line_names_the_argument_as_a_person_writes_it(runner: CliRunner) -> None:
    usage = next(line for line in _help(runner).splitlines() if "Usage:" in line)
    assert usage.split("Usage:")[1].strip() == "softmax-check [OPTIONS] LOGITS..."


def test_a_usage_error_shows_the_same_usage_line(runner: CliRunner) -> None:
    result = runner.invoke(app, [], env={"NO_COLOR": "1"}, prog_name="softmax-check")
    assert result.exit_code == 2
    assert "Usage: softmax-check [OPTIONS] LOGITS...\n" in result.output


def test_help_shows_no_python_types(runner: CliRunner) -> None:
    text = _help(runner, 120)
    assert not re.search(r"<(str|bool|list\[str\]|int|float)>", text)
    assert "{LOGITS" not in text


@pytest.mark.parametrize("choice", ["bfloat16", "markdown", "float16", "github", "ignore"])
def test_help_at_80_columns_never_breaks_a_choice_mid_word(runner: CliRunner, choice: str) -> None:
    # The panel's borders and columns removed, the words of the help text in order.
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", _help(runner, 80)).split())
    assert re.search(rf"(?<![\w|]){choice}(?![\w])", text), choice


@pytest.mark.parametrize("columns", [40, 59])
def test_narrow_help_shows_every_option_name_whole_within_the_width(
    runner: CliRunner, columns: int
) -> None:
    # Rich's panels cut long names to "--targe…" there: the plain layout wraps instead.
    from typer.main import get_command

    text = _help(runner, columns)
    assert "…" not in text
    assert all(len(line) <= columns for line in text.splitlines()), text
    words = set(re.findall(r"--?[\w-]+", text))
    for param in get_command(app).params:
        for name in (*param.opts, *param.secondary_opts):
            if name.startswith("-"):
                assert name in words, name
    assert "[tool.softmax-check]" in text and "\\[" not in text  # Rich escapes undone


def test_help_at_60_columns_and_more_keeps_the_panels(runner: CliRunner) -> None:
    assert "╭─ Options" in _help(runner, 60)


def test_quiet_prints_only_the_verdict_line(runner: CliRunner) -> None:
    result = runner.invoke(app, [SEED, "-q", "--no-config"])
    assert result.exit_code == 0
    assert result.stdout == "passed: no sample fails --fail-on input,stable\n"


def test_quiet_keeps_the_exit_status_of_a_failing_run(runner: CliRunner) -> None:
    result = runner.invoke(app, [SEED, "--quiet", "--fail-on", "naive", "--no-config"])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ["FAILED --fail-on naive (naive: 1)"]


def test_quiet_leaves_a_json_report_whole(runner: CliRunner) -> None:
    """As ``ruff -q --output-format json``: a document for a program is not cut down."""
    quiet = runner.invoke(app, [SEED, "-q", "--format", "json", "--no-config"])
    loud = runner.invoke(app, [SEED, "--format", "json", "--no-config"])
    assert quiet.exit_code == loud.exit_code == 0
    assert json.loads(quiet.stdout)["summary"] == json.loads(loud.stdout)["summary"]


def test_quiet_still_writes_the_full_table_to_output(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "report.txt"
    result = runner.invoke(app, [SEED, "-q", "-o", str(out), "--no-config"])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "Flagged samples" in out.read_text()


@pytest.mark.parametrize("how", ["--report", "--output"])
def test_the_step_summary_is_added_to_not_replaced(
    runner: CliRunner, tmp_path: Path, how: str
) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("## Tests\n\nall 12 passed\n")
    target = (
        ["--report", f"markdown={summary}"]
        if how == "--report"
        else ["--format", "markdown", "-o", str(summary)]
    )
    result = runner.invoke(
        app, [SEED, "--no-config", *target], env={"GITHUB_STEP_SUMMARY": str(summary)}
    )
    assert result.exit_code == 0, result.output
    text = summary.read_text()
    assert text.startswith("## Tests\n\nall 12 passed\n\n## softmax-check: ")
    assert text.count("## softmax-check") == 1


def test_two_runs_add_two_summaries(runner: CliRunner, tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    args = [SEED, "--no-config", "--report", f"markdown={summary}"]
    for _ in range(2):
        result = runner.invoke(app, args, env={"GITHUB_STEP_SUMMARY": str(summary)})
        assert result.exit_code == 0, result.output
    assert summary.read_text().count("## softmax-check") == 2


def test_another_markdown_file_is_still_replaced(runner: CliRunner, tmp_path: Path) -> None:
    summary, other = tmp_path / "step_summary.md", tmp_path / "other.md"
    other.write_text("old\n")
    result = runner.invoke(
        app,
        [SEED, "--no-config", "--report", f"markdown={other}"],
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert result.exit_code == 0, result.output
    assert other.read_text().startswith("## softmax-check")
