"""--export-flagged: the flagged rows as a safetensors dump and a script that reproduces them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from typer.testing import CliRunner

from softmax_cli import check
from softmax_cli.cli import app

DTYPES = {
    "float64": np.float64,
    "float32": np.float32,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
}


def invoke(*args: str):
    return CliRunner().invoke(app, [*args, "--no-config"])


def extreme_dump(dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Ordinary rows with some that break the naive code in every dtype (x +-1e4 is beyond
    float16's and float32's exp), a masked row, a NaN row and an ignored target."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((50, 12)) * 2
    x[[4, 17, 30]] *= 400
    x[11, :] = -np.inf
    x[23, 2] = np.nan
    x[40] -= 1e4
    targets = rng.integers(0, 12, 50)
    targets[30] = -100
    return x.astype(dtype), targets


def save(x: np.ndarray, t: np.ndarray | None = None) -> None:
    """dump.safetensors: .npy cannot hold bfloat16."""
    tensors = {"logits": x} if t is None else {"logits": x, "targets": t.astype(np.int64)}
    save_file(tensors, "dump.safetensors")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", DTYPES)
def test_the_export_gives_the_same_flags_for_those_rows(workdir: Path, name: str) -> None:
    x, t = extreme_dump(DTYPES[name])
    save(x, t)
    first = invoke(
        "dump.safetensors",
        "--format",
        "json",
        "--export-flagged",
        "out",
        "--fail-on",
        "none",
    )
    assert first.exit_code == 0, first.output
    original = {s["index"]: s for s in json.loads(first.stdout)["samples"]}
    again = invoke(
        "out/flagged.safetensors", "--dtype", name, "--format", "json", "--fail-on", "none"
    )
    assert again.exit_code == 0, again.output
    tensors = load_file("out/flagged.safetensors")
    redone = json.loads(again.stdout)["samples"]
    assert len(redone) == len(original)
    for sample in redone:
        before = original[int(tensors["index"][sample["index"]])]
        for key in ("input", "naive", "stable", "target"):
            assert sample[key] == before[key]


@pytest.mark.parametrize("name", DTYPES)
def test_logits_keep_the_dump_dtype_bit_for_bit(workdir: Path, name: str) -> None:
    x, _ = extreme_dump(DTYPES[name])
    save(x)
    assert invoke("dump.safetensors", "--export-flagged", "out", "--fail-on", "none").exit_code == 0
    tensors = load_file("out/flagged.safetensors")
    assert tensors["logits"].dtype == x.dtype
    rows = x[tensors["index"]]
    assert rows.view(np.uint8).tobytes() == tensors["logits"].view(np.uint8).tobytes()
    np.testing.assert_array_equal(tensors["position"][:, 0], tensors["index"])


def test_rows_are_worst_first_and_export_max_caps_them(workdir: Path) -> None:
    x, t = extreme_dump(np.float32)
    report = check(x, t, fail_on="none")
    save(x, t)
    assert invoke("dump.safetensors", "--export-flagged", "out", "--export-max", "3").exit_code == 1
    tensors = load_file("out/flagged.safetensors")
    np.testing.assert_array_equal(tensors["index"], report.ordered()[:3])
    np.testing.assert_array_equal(tensors["targets"], t[report.ordered()[:3]])


def test_a_directory_that_is_not_empty_is_refused_before_any_work(workdir: Path) -> None:
    Path("out").mkdir()
    Path("out/keep.txt").write_text("mine")
    np.save("dump.safetensors", np.zeros((2, 3), np.float32))
    result = invoke(
        "dump.safetensors", "--export-flagged", "out", "--format", "json", "-o", "report.json"
    )
    assert result.exit_code == 2
    assert "out" in result.stderr and "not empty" in result.stderr
    assert not Path("report.json").exists()
    assert sorted(p.name for p in Path("out").iterdir()) == ["keep.txt"]


def test_repro_script_runs_and_prints_the_breaks(workdir: Path) -> None:
    x, t = extreme_dump(np.float32)
    save(x, t)
    assert invoke("dump.safetensors", "--export-flagged", "out").exit_code == 1
    ran = subprocess.run(
        [sys.executable, "out/repro.py"], capture_output=True, text=True, timeout=300, check=False
    )
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    # Row 4 (scaled x400) overflows the naive exp; its stable loss is finite.
    row = next(i for i, line in enumerate(lines) if "sample 4 " in line)
    assert "naive  numpy: BROKEN" in lines[row + 1] and "overflow" in lines[row + 1]
    assert "stable numpy: ok" in lines[row + 2]
    if "torch:" in lines[row + 1]:
        assert "torch: BROKEN" in lines[row + 1]


def test_the_bundled_reproducer_is_what_export_writes_today() -> None:
    """sample_logits/health/repro is export's output (README: how it was made): a change to
    the script must be exported again, not left to drift from what users get."""
    from softmax_cli import export

    bundled = Path(__file__).resolve().parent.parent / "sample_logits/health/repro/repro.py"
    assert bundled.read_text(encoding="utf-8") == export.SCRIPT.replace("@DTYPE@", "float32")
