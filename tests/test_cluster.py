"""``--scheduler``: the check on a Dask cluster gives the local run's report, byte for byte,
and bad input met on a worker exits 2 naming the file.

The cluster is a ``distributed.LocalCluster`` of two single-threaded worker processes,
started once for the module and closed after it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from softmax_cli import classify, cli, cluster, sources
from softmax_cli.load import ArrayKeys
from softmax_cli.options import CheckOptions

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.dask

START_SECONDS = 120


@pytest.fixture(scope="module")
def scheduler():
    """The address of a local cluster of two worker processes, one thread each."""
    local = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
        timeout=START_SECONDS,
    )
    try:
        with distributed.Client(local, timeout=START_SECONDS) as client:
            client.wait_for_workers(2, timeout=START_SECONDS)
        yield local.scheduler_address
    finally:
        local.close(timeout=START_SECONDS)


def invoke(*args: object):
    return CliRunner().invoke(cli.app, ["--no-config", *(str(a) for a in args)])


@pytest.fixture
def shards(tmp_path, rng) -> Path:
    """Four .npz shards carrying their targets, with overflowing, masked and NaN rows."""
    directory = tmp_path / "shards"
    directory.mkdir()
    for i, batch in enumerate((6, 2, 9, 4)):
        x = rng.normal(0, 4, (batch, 3, 11)).astype(np.float32)
        x[i % batch, 0, 0] = 1000.0
        x[(i + 1) % batch, 1] = -np.inf
        x[(i + 2) % batch, 2, 3] = np.nan
        t = rng.integers(0, 11, (batch, 3))
        t[0, 0] = -100
        np.savez(directory / f"shard_{i:02d}.npz", logits=x, targets=t)
    return directory


def run(*args: object) -> tuple[int, str]:
    result = invoke(*args)
    assert result.exit_code in (0, 1), result.stderr
    return result.exit_code, result.stdout


@pytest.mark.parametrize(
    ("dtype", "sweep"), [("float32", ()), ("float16", ()), ("float32", ("--sweep",))]
)
def test_the_cluster_report_is_the_local_one_byte_for_byte(scheduler, shards, dtype, sweep):
    """With --sweep too: the float64 the sweep reads off float32 is read off the same way."""
    args = (shards, "--format", "json", "--all", "--dtype", dtype, *sweep)
    assert run(*args, "--scheduler", scheduler) == run(*args)


def test_many_blocks_per_file_give_the_local_report(scheduler, shards, monkeypatch):
    monkeypatch.setattr(classify, "PIECE_BYTES", 11 * 4 * 2)  # two rows a piece
    monkeypatch.setattr(classify, "BLOCK_PIECES", 2)
    args = (shards, "--format", "json", "--all")
    assert run(*args, "--scheduler", scheduler) == run(*args)


def test_one_file_on_the_cluster_is_the_local_report(scheduler, shards):
    one = shards / "shard_02.npz"
    assert run(one, "--format", "json", "--scheduler", scheduler) == run(one, "--format", "json")


def test_separate_targets_files_are_read_on_the_workers(scheduler, tmp_path, rng):
    args: list[object] = []
    for i in range(3):
        np.save(tmp_path / f"l{i}.npy", rng.normal(0, 30, (5, 4)).astype(np.float16))
        np.save(tmp_path / f"t{i}.npy", rng.integers(0, 4, 5))
        args += [tmp_path / f"l{i}.npy", "--targets", tmp_path / f"t{i}.npy"]
    args += ["--format", "json", "--all"]
    assert run(*args, "--scheduler", scheduler) == run(*args)


def test_progress_follows_the_tasks(scheduler, shards, monkeypatch):
    monkeypatch.setattr(cluster, "TASK_BLOCKS", 1)
    monkeypatch.setattr(classify, "PIECE_BYTES", 11 * 4 * 3)  # three rows a piece
    monkeypatch.setattr(classify, "BLOCK_PIECES", 1)
    files = sources.logits_files([str(shards)])
    loaded = sources.load_files(files, [None] * len(files), ArrayKeys())
    seen: list[tuple[int, int]] = []
    report = classify.check_loaded(
        loaded,
        CheckOptions.of(),
        lambda done, total: seen.append((done, total)),
        scheduler=scheduler,
    )
    total = len(report)
    assert len(seen) > len(files)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1] == (total, total)


def test_a_shard_corrupt_on_the_workers_exits_2_naming_it(scheduler, shards, monkeypatch):
    """The client reads a good file; by the time the workers read it, it is garbage."""
    victim = shards / "shard_01.npz"
    prepare = classify._prepare

    def then_corrupt(*args, **kwargs):
        parts = prepare(*args, **kwargs)
        victim.write_bytes(b"PK\x03\x04 not a zip any more" * 10)
        return parts

    monkeypatch.setattr(classify, "_prepare", then_corrupt)
    output = shards.parent / "report.json"
    result = invoke(shards, "--scheduler", scheduler, "--format", "json", "-o", output)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert str(victim) in result.stderr
    assert "Dask worker" in result.stderr
    assert "Traceback" not in result.stderr
    assert not output.exists()


def test_a_shard_the_workers_cannot_see_is_named(scheduler, shards, monkeypatch, tmp_path):
    victim = shards / "shard_03.npz"
    prepare = classify._prepare

    def then_move(*args, **kwargs):
        parts = prepare(*args, **kwargs)
        shutil.move(victim, tmp_path / "elsewhere.npz")
        return parts

    monkeypatch.setattr(classify, "_prepare", then_move)
    result = invoke(shards, "--scheduler", scheduler)
    assert result.exit_code == 2, result.stderr
    assert f"{victim}: no such file" in result.stderr
    assert "same path" in result.stderr


def test_an_unreachable_scheduler_exits_2(shards, monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_SECONDS", 1)
    result = invoke(shards, "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "--scheduler tcp://127.0.0.1:9: cannot reach a Dask scheduler" in result.stderr


def test_standard_input_cannot_go_to_a_cluster(scheduler):
    result = CliRunner().invoke(
        cli.app, ["--no-config", "-", "--scheduler", scheduler], input="a,b\n1,2\n"
    )
    assert result.exit_code == 2
    assert "standard input" in result.stderr


def test_the_readme_cluster_example_prints_what_the_readme_shows(scheduler):
    """The README's Dask block, run against the test cluster instead of 127.0.0.1:8786."""
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    command = "softmax-check sample_logits/shards/ --scheduler tcp://127.0.0.1:8786"
    block = readme.split(f"$ {command}\n", 1)[1].split("```", 1)[0]
    args = shlex.split(command.replace("tcp://127.0.0.1:8786", scheduler))[1:]
    result = subprocess.run(
        [sys.executable, "-m", "softmax_cli", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "PYTHONPATH": str(root)},
    )
    assert result.stderr == ""
    printed = "\n".join(line.rstrip() for line in result.stdout.rstrip().splitlines()) + "\n"
    assert printed == block
