"""Project defaults from ``[tool.softmax-check]`` in pyproject.toml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
    assert document["fail_on"] == ["input", "stable", "naive", "impl", "headroom", "regression"]


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
        (
            "[tool.softmax-check]\ncolour = 1\n",
            "colour: unknown key hint: the known keys are fail-on, dtype",
        ),
        ("[tool.softmax-check]\nclass-axis = '1'\n", "class-axis: must be an integer, not '1'"),
        ("[tool.softmax-check]\nclass-axis = true\n", "class-axis: must be an integer, not True"),
        ("[tool.softmax-check]\nmax-rows = -1\n", "max-rows: must be 0 or more"),
        ("[tool.softmax-check]\ndtype = 'float8'\n", "dtype: 'float8' is not one of auto, float64"),
        ("[tool.softmax-check]\nformat = 3\n", "format: must be a string, not 3"),
        ("[tool.softmax-check]\nfail-on = 'input,oops'\n", "fail-on: unknown category 'oops'"),
        ("[tool.softmax-check]\nfail-on = [1]\n", "fail-on: must be a list of strings, not [1]"),
        ("[tool.softmax-check]\nlogits-key = 1\n", "logits-key: must be a string, not 1"),
        ("[tool.softmax-check]\nsweep = 1\n", "sweep: must be true or false, not 1"),
        ("[tool.softmax-check]\nimpl-rtol = 0\n", "impl-rtol: must be a positive number"),
        ("[tool.softmax-check]\nimpl-rtol = nan\n", "impl-rtol: must be a positive number"),
        (
            "[tool.softmax-check]\nmax-headroom-drop = -1\n",
            "max-headroom-drop: must be a finite number, 0 or more",
        ),
        ("[tool.softmax-check]\nexport-max = -2\n", "export-max: must be 0 or more"),
        (
            "[tool.softmax-check]\nimpl = [1]\n",
            "impl: must be a string or a list of strings, not [1]",
        ),
        ("[tool.softmax-check]\nimpl = 'missing.py:f'\n", "impl: 'missing.py:f':"),
        ("[tool.softmax-check]\nimpl = ['ops.py']\n", "impl: 'ops.py': expected [NAME=]path"),
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


# --- through the real command: whatever the configuration, exit 2 and a message, never a
# traceback, in bounded time and memory (issue 15, point 1) ---------------------------------

ROOT = Path(__file__).resolve().parent.parent
CLI_ENV = {
    **os.environ,
    # No empty entry: it would mean the working directory, which some tests delete.
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
}


def cli(*args: str, cwd: Path, **options: Any) -> subprocess.CompletedProcess[str]:
    """``python -m softmax_cli`` in ``cwd``: a separate process, as a user or CI runs it."""
    return subprocess.run(
        [sys.executable, "-m", "softmax_cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=CLI_ENV,
        **options,
    )


def assert_config_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    for fragment in fragments:
        assert squeezed(fragment) in squeezed(result.stderr)


def test_a_deleted_working_directory_is_an_error_not_a_traceback(project: Path) -> None:
    seed = project / "sub/sub/seed.npy"
    script = 'mkdir gone && cd gone && rmdir ../gone && exec "$0" -m softmax_cli "$1"'
    result = subprocess.run(
        ["sh", "-c", script, sys.executable, str(seed)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env=CLI_ENV,
    )
    assert_config_error(result, "the current directory", "--no-config")


def test_a_deleted_working_directory_with_no_config_still_checks(project: Path) -> None:
    seed = project / "sub/sub/seed.npy"
    script = 'mkdir gone && cd gone && rmdir ../gone && exec "$0" -m softmax_cli "$1" --no-config'
    result = subprocess.run(
        ["sh", "-c", script, sys.executable, str(seed)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env=CLI_ENV,
    )
    assert result.returncode == 0, result.stderr


def test_a_parent_pyproject_that_is_not_utf8_is_an_error_naming_it(project: Path) -> None:
    path = project / "pyproject.toml"
    path.write_bytes(b'[tool.softmax-check]\nformat = "j\xffson"\n')
    assert_config_error(cli("seed.npy", cwd=project / "sub/sub"), str(path), "not UTF-8")


def test_a_deeply_nested_parent_pyproject_is_an_error_naming_it(project: Path) -> None:
    path = pyproject(project, "x = " + "[" * 5000 + "]" * 5000 + "\n")
    assert_config_error(cli("seed.npy", cwd=project / "sub/sub"), str(path), "nested")


@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "directory"])
def test_config_that_is_not_a_regular_file_is_refused_without_reading(
    project: Path, special: str
) -> None:
    if special == "fifo":
        os.mkfifo(project / "fifo")  # no writer: reading it would wait forever
        special = str(project / "fifo")
    elif special == "directory":
        special = str(project)
    result = cli("seed.npy", "--config", special, cwd=project / "sub/sub")
    assert_config_error(result, special)
    assert "regular file" in result.stderr or "directory" in result.stderr


def test_a_config_larger_than_the_cap_is_refused(project: Path) -> None:
    path = pyproject(project, "[tool.softmax-check]\n" + "# padding\n" * (config.MAX_BYTES // 10))
    result = cli("seed.npy", "--config", str(path), cwd=project / "sub/sub")
    assert_config_error(result, str(path), "larger than 1 MiB")


def test_a_parent_directory_we_may_not_search_is_passed_over(project: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root bypasses directory permissions (the suite usually runs as root)")
    pyproject(project, '[tool.softmax-check]\nformat = "json"\n')
    locked = project / "sub"
    script = 'cd sub/sub && chmod 000 "$1" && exec "$0" -m softmax_cli seed.npy'
    try:
        result = subprocess.run(
            ["sh", "-c", script, sys.executable, str(locked)],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=120,
            env=CLI_ENV,
        )
    finally:
        locked.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["schema_version"] == 1  # the table above was found


def test_discovery_passes_over_a_directory_that_refuses_the_search(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the kernel does for a non-root user in a directory without search permission,
    # here as root too: stat() of anything inside fails with EACCES.
    found = pyproject(project, '[tool.softmax-check]\nformat = "json"\n')
    locked = project / "sub"
    original = Path.stat

    def stat(self: Path, **options: Any) -> os.stat_result:
        if self.parent in (locked, locked / "sub"):
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, **options)

    monkeypatch.setattr(Path, "stat", stat)
    assert config.discover(locked / "sub") == found


# --- fuzzing: any bytes, any table -------------------------------------------------------

SETTING_KEYS = st.sampled_from([*config.SETTINGS, "fail_on", "colour", ""])
TOML_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x7f"))
    | st.sampled_from(["json", "float16", "BFloat16", "any", "none", "input,stable", "-1"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(SETTING_KEYS, inner, max_size=3),
    max_leaves=8,
)


def toml_value(value: Any) -> str:
    """A TOML literal for a generated value (None stands for something TOML cannot say)."""
    if value is None:
        return "1979-05-27T07:32:00Z"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if value != value
            else {float("inf"): "inf", -float("inf"): "-inf"}.get(value, repr(value))
        )
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def assert_clean_outcome(result: Any) -> None:
    assert result.exit_code in (0, 1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


fuzz = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@fuzz
@given(body=st.binary(max_size=300) | st.text(max_size=300).map(str.encode), explicit=st.booleans())
def test_fuzzed_config_bytes_never_crash(project: Path, body: bytes, explicit: bool) -> None:
    path = project / "pyproject.toml"
    path.write_bytes(b"[tool.softmax-check]\n" + body)
    args = ["seed.npy", "--config", str(path)] if explicit else ["seed.npy"]
    assert_clean_outcome(runner.invoke(app, args))


@fuzz
@given(table=st.dictionaries(SETTING_KEYS, TOML_VALUES, max_size=4))
def test_fuzzed_config_tables_never_crash(project: Path, table: dict[str, Any]) -> None:
    lines = [f"{json.dumps(key)} = {toml_value(value)}" for key, value in table.items()]
    pyproject(project, "[tool.softmax-check]\n" + "\n".join(lines) + "\n")
    assert_clean_outcome(runner.invoke(app, ["seed.npy", "--targets", "seed_targets.npy"]))


# --- the 0.2 options: sweep, your implementations, the drift and export caps --------------


def test_the_02_settings_are_read_and_checked(tmp_path: Path) -> None:
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "mine.py").write_text("def ce(logits, targets): ...\n")
    path = pyproject(
        tmp_path,
        "[tool.softmax-check]\nsweep = true\nimpl-rtol = 1e-4\nmax-headroom-drop = 0.5\n"
        'export-max = 3\nimpl = ["fused=ops/mine.py:ce", "pkg.module:softmax"]\n',
    )
    defaults = dict(config.load(path).defaults)
    assert defaults == {
        "sweep": True,
        "impl_rtol": 1e-4,
        "max_headroom_drop": 0.5,
        "export_max": 3,
        # A file is the project's: relative to the pyproject.toml, not to where CI runs.
        "impls": [f"fused={tmp_path / 'ops' / 'mine.py'}:ce", "pkg.module:softmax"],
    }
    pyproject(tmp_path, '[tool.softmax-check]\nimpl = "ops/mine.py:ce"\n')
    assert config.load(path).defaults["impls"] == [f"{tmp_path / 'ops' / 'mine.py'}:ce"]


def test_sweep_from_the_project_and_no_sweep_on_the_command_line(project: Path) -> None:
    pyproject(project, "[tool.softmax-check]\nsweep = true\n")
    _, document = run_json("--format", "json")
    assert [s["compute_dtype"] for s in document["sweep"]] == [
        "float64",
        "float32",
        "bfloat16",
        "float16",
    ]
    _, document = run_json("--format", "json", "--no-sweep")
    assert "sweep" not in document


@pytest.mark.torch
def test_impl_from_the_project_runs_from_any_directory(project: Path) -> None:
    pytest.importorskip("torch")
    examples = Path(__file__).resolve().parent.parent / "examples"
    (project / "ops").mkdir()
    (project / "ops" / "online.py").write_text((examples / "online_softmax.py").read_text())
    pyproject(project, '[tool.softmax-check]\nimpl = ["online=ops/online.py:online_softmax"]\n')
    _, document = run_json("--format", "json")  # in sub/sub, two levels below the file
    _, given = run_json(
        "--format",
        "json",
        "--no-config",
        "--impl",
        f"online={project}/ops/online.py:online_softmax",
    )
    assert list(document["summary"]["impls"]) == ["online"]
    assert document["summary"]["impls"] == given["summary"]["impls"]
    _, document = run_json("--format", "json", "--impl", "pkg_that_is_not_there:f")
    assert document is None  # the command line's --impl replaces the project's
