"""Where ``-o`` and ``--report`` write: through descriptors, devices and pipes, atomically to
regular files, never over an input or the configuration in use (issue 15, points 2 and 7)."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from softmax_cli import cli

ROOT = Path(__file__).resolve().parent.parent
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
}
runner = CliRunner()


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The seed logits (the naive path breaks on sample 1) in a directory of their own."""
    monkeypatch.chdir(tmp_path)
    logits = np.array([[2, 1, 0.1], [1000, 0, -1000], [0.5, 2.5, -1]], dtype=np.float32)
    np.save(tmp_path / "seed.npy", logits)
    return tmp_path


def cli_process(*args: str, cwd: Path, **options: Any) -> subprocess.CompletedProcess[str]:
    options.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(
        [sys.executable, "-m", "softmax_cli", *args, "--no-config"],
        cwd=cwd,
        text=True,
        timeout=120,
        env=ENV,
        **options,
    )


def invoke(*args: str):
    return runner.invoke(cli.app, ["seed.npy", "--no-config", *args])


def squeezed(text: str) -> str:
    return "".join(text.split())


@pytest.fixture(autouse=True)
def dev_stdout_kept() -> Iterator[None]:
    """The bug these tests pin replaced the machine's /dev/stdout (as root): put it back."""
    before = os.readlink("/dev/stdout") if os.path.islink("/dev/stdout") else None
    yield
    if before is not None and not os.path.islink("/dev/stdout"):
        os.unlink("/dev/stdout")
        os.symlink(before, "/dev/stdout")
        pytest.fail("/dev/stdout was replaced by a regular file")


def test_dev_stdout_redirected_to_a_file_gets_the_report_and_stays_a_link(work: Path) -> None:
    before = os.readlink("/dev/stdout")
    log = work / "log.json"
    with open(log, "w") as stdout:
        result = cli_process("seed.npy", "--format", "json", "-o", "/dev/stdout", cwd=work,
                             stdout=stdout)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(log.read_text())["summary"]["flagged"] == 1
    assert os.readlink("/dev/stdout") == before


def test_a_link_to_our_standard_output_is_written_through_and_not_replaced(work: Path) -> None:
    # The same as /dev/stdout, in a directory the old code could replace it in safely.
    link = work / "out"
    link.symlink_to("/proc/self/fd/1")
    log = work / "log.json"
    with open(log, "w") as stdout:
        result = cli_process("seed.npy", "--format", "json", "-o", str(link), cwd=work,
                             stdout=stdout)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(log.read_text())["summary"]["flagged"] == 1
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"
    assert sorted(p.name for p in work.iterdir()) == ["log.json", "out", "seed.npy"]


def test_dev_stdout_appended_to_a_log_keeps_what_the_log_had(work: Path) -> None:
    log = work / "ci.log"
    log.write_text("earlier step\n")
    with open(log, "a") as stdout:
        result = cli_process("seed.npy", "--format", "json", "-o", "/dev/stdout", cwd=work,
                             stdout=stdout)  # fmt: skip
    assert result.returncode == 0, result.stderr
    first, rest = log.read_text().split("\n", 1)
    assert first == "earlier step"
    assert json.loads(rest)["schema_version"] == 1


@pytest.mark.parametrize("option", ["-o", "--report"])
def test_a_fifo_gets_the_report_and_stays_a_fifo(work: Path, option: str) -> None:
    fifo = work / "report.fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    target = str(fifo) if option == "-o" else f"json={fifo}"
    extra = ["--format", "json"] if option == "-o" else []
    result = cli_process("seed.npy", *extra, option, target, cwd=work, stdout=subprocess.PIPE)
    reader.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(received[0])["summary"]["flagged"] == 1
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_link_to_a_regular_file_replaces_the_file_and_keeps_the_link(work: Path) -> None:
    (work / "reports").mkdir()
    real = work / "reports" / "latest.json"
    real.write_text("old report\n")
    link = work / "report.json"
    link.symlink_to("reports/latest.json")
    result = invoke("--format", "json", "-o", "report.json")
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == "reports/latest.json"
    assert json.loads(real.read_text())["summary"]["flagged"] == 1
    assert [p.name for p in (work / "reports").iterdir()] == ["latest.json"]  # no temporary


def test_a_name_longer_than_the_file_system_allows_fails_before_the_check(work: Path) -> None:
    (work / "seed.npy").write_bytes(b"not an array")  # loading would fail: it must not start
    name = "r" * 300 + ".json"
    result = invoke("-o", name)
    assert result.exit_code == 2
    assert "File name too long" in result.stderr or "longer than 255 bytes" in result.stderr


def test_a_name_that_just_fits_is_written_through_a_temporary_that_fits_too(work: Path) -> None:
    name = "r" * 250 + ".json"
    result = invoke("--format", "json", "-o", name)
    assert result.exit_code == 0, result.stderr
    assert json.loads((work / name).read_text())["schema_version"] == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_a_read_only_directory_fails_before_the_check(work: Path) -> None:
    locked = work / "locked"
    locked.mkdir(mode=0o555)
    result = invoke("-o", "locked/report.json")
    assert result.exit_code == 2
    assert "is not writable" in result.stderr


def test_a_long_path_keeps_the_problem_visible(work: Path) -> None:
    missing = "/".join(["a-directory-that-is-not-there"] * 20)
    result = invoke("-o", f"{missing}/report.json")
    assert result.exit_code == 2
    assert squeezed(result.stderr).endswith(squeezed("' does not exist"))


def test_a_failed_write_names_the_path_given_not_the_temporary(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: Any, **options: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device", str(work / ".report.json.x1y2"))

    monkeypatch.setattr(cli.tempfile, "mkstemp", full)
    result = invoke("--format", "json", "-o", "report.json")
    assert result.exit_code == 2
    assert squeezed("--output report.json: cannot write: No space left on device") in squeezed(
        result.stderr
    )
    assert ".report.json." not in result.stderr


def test_reports_stay_as_they_were_when_standard_output_then_fails(work: Path) -> None:
    report = work / "report.json"
    report.write_text("old report\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "softmax_cli", "seed.npy", "--no-config", "--format", "json",
         "--report", "json=report.json"],
        cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
    )  # fmt: skip
    process.stdout.close()  # nobody reads the report: writing it fails (EPIPE)
    _, errors = process.communicate(timeout=120)
    assert process.returncode == 2, errors
    assert report.read_text() == "old report\n"
    assert sorted(p.name for p in work.iterdir()) == ["report.json", "seed.npy"]


@pytest.mark.parametrize("option", ["-o", "--report"])
def test_the_configuration_file_in_use_is_never_overwritten(work: Path, option: str) -> None:
    settings = work / "ci.toml"
    settings.write_text('[tool.softmax-check]\nformat = "json"\n')
    target = "ci.toml" if option == "-o" else "junit=ci.toml"
    result = runner.invoke(cli.app, ["seed.npy", "--config", "ci.toml", option, target])
    assert result.exit_code == 2
    assert "is the configuration file in use" in result.stderr
    assert settings.read_text() == '[tool.softmax-check]\nformat = "json"\n'


def test_a_discovered_pyproject_is_never_overwritten(work: Path) -> None:
    (work / "sub").mkdir()
    project = work / "pyproject.toml"
    project.write_text("[tool.softmax-check]\nmax-rows = 5\n")
    os.chdir(work / "sub")
    result = runner.invoke(cli.app, ["../seed.npy", "-o", "../pyproject.toml"])
    assert result.exit_code == 2
    assert "is the configuration file in use" in result.stderr
    assert project.read_text() == "[tool.softmax-check]\nmax-rows = 5\n"
