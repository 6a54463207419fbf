"""Project defaults from ``[tool.softmax-check]`` in pyproject.toml."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from softmax_cli import config
from softmax_cli.cli import app

runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root holding the seed logits; the tests work in its ``sub/sub`` directory."""
    logits = np.array([[2, 1, 0.1], [1000, 0, -1000], [0.5, 2.5, -1]], dtype=np.float32)
    work = tmp_path / "sub" / "sub"
    work.mkdir(parents=True)
    np.save(work / "seed.npy", logits)
    np.save(work / "seed_targets.npy", np.array([0, 2, 1]))
    monkeypatch.chdir(work)
    return tmp_path


def pyproject(directory: Path, body: str) -> Path:
    path = directory / "pyproject.toml"
    path.write_text(body, encoding="utf-8")
    return path


def run_json(*args: str):
    """The check of the seed (naive breaks on sample 1) as a JSON document, and the result."""
    result = runner.invoke(app, ["seed.npy", "--targets", "seed_targets.npy", *args])
    document = json.loads(result.stdout) if result.exit_code in (0, 1) else None
    return result, document


def squeezed(text: str) -> str:
    """Text without whitespace: the error console wraps (and folds long paths) at its width."""
    return "".join(text.split())


def test_settings_come_from_the_closest_pyproject_with_the_table(project: Path) -> None:
    pyproject(project, '[tool.softmax-check]\nformat = "json"\nfail-on = "any"\n')
    pyproject(project / "sub", '[project]\nname = "no table here"\n')
    result, document = run_json()
    assert result.exit_code == 1
    assert document["fail_on"] == ["input", "stable", "naive", "impl"]


def test_a_closer_table_wins_and_nothing_is_merged(project: Path) -> None:
    pyproject(project, '[tool.softmax-check]\nformat = "json"\ndtype = "float64"\n')
    pyproject(project / "sub", '[tool.softmax-check]\nformat = "json"\n')
    _, document = run_json()
    assert document["compute_dtype"] == "float32"


def test_without_a_table_the_built_in_defaults_hold(project: Path) -> None:
    pyproject(project, '[project]\nname = "x"\n')
    result, document = run_json("--format", "json")
    assert result.exit_code == 0
    assert document["fail_on"] == ["input", "stable"]


def test_the_command_line_wins(project: Path) -> None:
    pyproject(project, '[tool.softmax-check]\nformat = "markdown"\nfail-on = "any"\n')
    result, document = run_json("--format", "json", "--fail-on", "input,stable")
    assert result.exit_code == 0
    assert document["fail_on"] == ["input", "stable"]


def test_the_command_line_wins_even_when_it_repeats_the_built_in_default(project: Path) -> None:
    pyproject(project, '[tool.softmax-check]\nformat = "json"\ndtype = "float64"\n')
    _, document = run_json("--dtype", "auto")
    assert document["compute_dtype"] == "float32"


@pytest.mark.parametrize(
    ("setting", "field", "expected"),
    [
        ('fail-on = ["naive"]', "fail_on", ["naive"]),
        ('fail-on = "stable, naive"', "fail_on", ["stable", "naive"]),
        ('fail-on = "none"', "fail_on", []),
        ("fail-on = []", "fail_on", []),
        ('dtype = "float16"', "compute_dtype", "float16"),
        ('dtype = "BFloat16"', "compute_dtype", "bfloat16"),
        ("class-axis = 0", "input", {"class_axis": 0}),
    ],
)
def test_each_setting_reaches_the_check(
    project: Path, setting: str, field: str, expected: object
) -> None:
    pyproject(project, f'[tool.softmax-check]\nformat = "json"\n{setting}\n')
    _, document = run_json()
    actual = document[field]
    if isinstance(expected, dict):
        actual = {k: actual[k] for k in expected}
    assert actual == expected


def test_ignore_index_from_the_project(project: Path) -> None:
    np.save(project / "sub/sub/seed_targets.npy", np.array([0, 7, 1]))
    pyproject(project, '[tool.softmax-check]\nformat = "json"\nignore-index = 7\n')
    _, document = run_json()
    assert document["samples"][0]["naive"]["loss"] is None


def test_max_rows_from_the_project(project: Path) -> None:
    pyproject(project, "[tool.softmax-check]\nmax-rows = 0\n")
    many = np.zeros((30, 2), dtype=np.float32)
    many[:, 0] = 1000.0
    np.save(project / "sub/sub/many.npy", many)
    result = runner.invoke(app, ["many.npy"])
    assert "more (--max-rows" not in result.stdout
    pyproject(project, "[tool.softmax-check]\nmax-rows = 3\n")
    result = runner.invoke(app, ["many.npy"])
    assert squeezed("... and 27 more") in squeezed(result.stdout)


def test_npz_keys_from_the_project(project: Path) -> None:
    work = project / "sub/sub"
    np.savez(work / "dump.npz", scores=np.load(work / "seed.npy"), labels=np.array([0, 2, 1]))
    pyproject(
        project,
        '[tool.softmax-check]\nformat = "json"\nlogits-key = "scores"\ntargets-key = "labels"\n',
    )
    result = runner.invoke(app, ["dump.npz", "--targets", "dump.npz"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["samples"][0]["target"] == 2


def test_target_column_from_the_project(project: Path) -> None:
    (project / "sub/sub/seed.csv").write_text("a,b,label\n1000,0,1\n0,1,0\n")
    pyproject(project, '[tool.softmax-check]\nformat = "json"\ntarget-column = "label"\n')
    result = runner.invoke(app, ["seed.csv"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["samples"][0]["target"] == 1


def test_no_config_ignores_the_project(project: Path) -> None:
    pyproject(project, '[tool.softmax-check]\nformat = "json"\n')
    result = runner.invoke(app, ["seed.npy", "--no-config"])
    assert result.exit_code == 0
    assert result.stdout.startswith("softmax-check seed.npy")


def test_no_config_also_skips_a_broken_pyproject(project: Path) -> None:
    pyproject(project, "[tool.softmax-check]\nnot toml at all\n")
    assert runner.invoke(app, ["seed.npy", "--no-config"]).exit_code == 0


def test_config_names_the_file_to_use(project: Path) -> None:
    pyproject(project, '[tool.softmax-check]\nformat = "markdown"\n')
    other = project / "ci.toml"
    other.write_text('[tool.softmax-check]\nformat = "json"\n')
    _, document = run_json("--config", str(other))
    assert document["schema_version"] == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "[tool.softmax-check]\nfail_on = 'any'\n",
            "fail_on: unknown key; did you mean 'fail-on'?",
        ),
        ("[tool.softmax-check]\ncolour = 1\n", "colour: unknown key (known keys: fail-on, dtype"),
        ("[tool.softmax-check]\nclass-axis = '1'\n", "class-axis: must be an integer, not '1'"),
        ("[tool.softmax-check]\nclass-axis = true\n", "class-axis: must be an integer, not True"),
        ("[tool.softmax-check]\nmax-rows = -1\n", "max-rows: must be 0 or more"),
        ("[tool.softmax-check]\ndtype = 'float8'\n", "dtype: 'float8' is not one of auto, float64"),
        ("[tool.softmax-check]\nformat = 3\n", "format: must be a string, not 3"),
        ("[tool.softmax-check]\nfail-on = 'input,oops'\n", "fail-on: unknown category 'oops'"),
        ("[tool.softmax-check]\nfail-on = [1]\n", "fail-on: must be a list of strings, not [1]"),
        ("[tool.softmax-check]\nlogits-key = 1\n", "logits-key: must be a string, not 1"),
    ],
)
def test_a_wrong_setting_is_an_error_naming_file_and_key(
    project: Path, body: str, message: str
) -> None:
    path = pyproject(project, body)
    result = runner.invoke(app, ["seed.npy"])
    assert result.exit_code == 2
    assert result.stdout == ""
    expected = f"softmax-check: error: {path}: [tool.softmax-check] {message}"
    assert squeezed(result.stderr).startswith(squeezed(expected))


def test_a_broken_pyproject_on_the_way_up_is_an_error(project: Path) -> None:
    path = pyproject(project / "sub", "[tool.softmax-check\n")
    result = runner.invoke(app, ["seed.npy"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert squeezed(result.stderr).startswith(
        squeezed(f"softmax-check: error: {path}: not valid TOML")
    )


def test_a_config_file_without_the_table_is_an_error(project: Path) -> None:
    path = pyproject(project, '[project]\nname = "x"\n')
    result = runner.invoke(app, ["seed.npy", "--config", str(path)])
    assert result.exit_code == 2
    expected = f"softmax-check: error: {path}: has no [tool.softmax-check] table"
    assert squeezed(result.stderr) == squeezed(expected)


def test_a_missing_config_file_is_an_error(project: Path) -> None:
    result = runner.invoke(app, ["seed.npy", "--config", "nowhere.toml"])
    assert result.exit_code == 2
    assert squeezed("nowhere.toml: cannot be read") in squeezed(result.stderr)


@pytest.mark.parametrize(
    "order", [("--config", "x.toml", "--no-config"), ("--no-config", "--config", "x.toml")]
)
def test_config_and_no_config_together_is_an_error(project: Path, order: tuple[str, ...]) -> None:
    result = runner.invoke(app, ["seed.npy", *order])
    assert result.exit_code == 2
    assert squeezed("--config and --no-config do not go together") in squeezed(result.stderr)


def test_a_config_error_comes_before_loading_the_input(project: Path) -> None:
    pyproject(project, "[tool.softmax-check]\nbogus = 1\n")
    result = runner.invoke(app, ["missing.npy"])
    assert result.exit_code == 2
    assert squeezed("bogus: unknown key") in squeezed(result.stderr)


def test_discover_stops_at_the_closest_table(tmp_path: Path) -> None:
    pyproject(tmp_path, "[tool.softmax-check]\n")
    (tmp_path / "a" / "b").mkdir(parents=True)
    pyproject(tmp_path / "a", "[tool.other]\n")
    assert config.discover(tmp_path / "a" / "b") == tmp_path / "pyproject.toml"


def test_an_empty_table_is_a_config_with_no_defaults(tmp_path: Path) -> None:
    loaded = config.load(pyproject(tmp_path, "[tool.softmax-check]\n"))
    assert loaded.path == tmp_path / "pyproject.toml"
    assert dict(loaded.defaults) == {}


def test_every_setting_names_an_option_of_the_command() -> None:
    from typer.main import get_command

    names = {p.name for p in get_command(app).params}
    assert {name for name, _ in config.SETTINGS.values()} <= names
