"""Several logits files are checked as one dump: the same findings as the single file of
their concatenation, each sample naming its file and its position there."""

from __future__ import annotations

import json
import sys
import tracemalloc
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from softmax_cli import classify, cli

IGNORE = -100
BATCHES = (5, 1, 9)  # the shards' first-axis sizes


def invoke(*args: object):
    return CliRunner().invoke(cli.app, ["--no-config", *(str(a) for a in args)])


def assert_refused(result, *fragments: str) -> None:
    detail = f"exit {result.exit_code}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}"
    assert result.exit_code == 2, detail
    assert result.stdout == "", detail
    assert "Traceback" not in result.stderr, detail
    for fragment in fragments:
        assert fragment in result.stderr, detail


def troubled_rows(rng: np.random.Generator, shape: tuple[int, ...], classes: int) -> np.ndarray:
    """Random logits with the rows each path can trip on scattered through them."""
    x = rng.normal(0, 3, (*shape, classes)).astype(np.float32)
    flat = x.reshape(-1, classes)
    n = len(flat)
    picks = rng.choice(n, size=min(n, 6), replace=False)
    flat[picks[0], 0] = 1000.0  # naive overflow
    flat[picks[1 % len(picks)]] = -np.inf  # fully masked
    flat[picks[2 % len(picks)], 1] = np.nan  # non-finite input
    flat[picks[3 % len(picks)]] -= 200.0  # naive underflow
    flat[picks[4 % len(picks)], 2] = np.inf
    return x


@pytest.fixture(params=[(), (3,)], ids=["2-d", "3-d"])
def shards(request, tmp_path, rng):
    """Three .npy shards of different sizes with targets beside them, and the single file
    of their concatenation along the first sample axis."""
    inner, classes = request.param, 7
    logits, targets = [], []
    for i, batch in enumerate(BATCHES):
        x = troubled_rows(rng, (batch, *inner), classes)
        t = rng.integers(0, classes, (batch, *inner))
        t.reshape(-1)[0] = IGNORE
        np.save(tmp_path / f"shard_{i}.npy", x)
        np.save(tmp_path / f"targets_{i}.npy", t)
        logits.append(x)
        targets.append(t)
    np.save(tmp_path / "all.npy", np.concatenate(logits))
    np.save(tmp_path / "all_targets.npy", np.concatenate(targets))
    files = [tmp_path / f"shard_{i}.npy" for i in range(3)]
    target_files = [tmp_path / f"targets_{i}.npy" for i in range(3)]
    return files, target_files, tmp_path, [len(x.reshape(-1, classes)) for x in logits]


def several_args(files, target_files) -> list[object]:
    args: list[object] = [*files]
    for t in target_files:
        args += ["--targets", t]
    return args


def run_json(*args: object) -> tuple[int, dict]:
    result = invoke(*args, "--format", "json", "--all", "--fail-on", "any")
    assert result.exit_code in (0, 1), result.stderr
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64"])
def test_several_files_find_what_their_concatenation_finds(shards, dtype):
    files, target_files, root, counts = shards
    code, several = run_json(*several_args(files, target_files), "--dtype", dtype)
    single_code, single = run_json(
        root / "all.npy", "--targets", root / "all_targets.npy", "--dtype", dtype
    )
    assert code == single_code
    assert several["summary"] == single["summary"]
    assert several["passed"] == single["passed"]
    # Same samples in the same order (worst first across the files), index for index.
    assert [s["index"] for s in several["samples"]] == [s["index"] for s in single["samples"]]
    firsts = np.cumsum([0, *counts])
    per_batch_entry = counts[0] // BATCHES[0]  # samples per entry of the first axis
    for mine, theirs in zip(several["samples"], single["samples"], strict=True):
        which = int(np.searchsorted(firsts, mine["index"], side="right") - 1)
        assert mine["file"] == str(files[which])
        # The position is within the sample's own file: only the first axis is offset.
        offset = int(firsts[which]) // per_batch_entry
        assert mine["position"] == [theirs["position"][0] - offset, *theirs["position"][1:]]
        rest = {k: v for k, v in mine.items() if k not in ("file", "position")}
        assert rest == {k: v for k, v in theirs.items() if k != "position"}


def test_the_several_file_input_lists_each_file_and_where_its_samples_start(shards):
    files, target_files, _, counts = shards
    _, report = run_json(*several_args(files, target_files))
    info = report["input"]
    assert set(info) == {"files", "samples", "class_axis"}
    assert info["samples"] == sum(counts)
    assert info["class_axis"] == -1
    assert [f["logits"] for f in info["files"]] == [str(f) for f in files]
    assert [f["targets"] for f in info["files"]] == [str(t) for t in target_files]
    assert [f["samples"] for f in info["files"]] == counts
    assert [f["first_index"] for f in info["files"]] == [0, counts[0], counts[0] + counts[1]]
    assert all(f["dtype"] == "float32" for f in info["files"])


def test_small_blocks_across_files_give_the_same_report(shards, monkeypatch):
    """Many blocks per file in one pool: the task list spans the files, and block bounds
    inside a file change nothing."""
    files, target_files, _, _ = shards
    args = several_args(files, target_files)
    _, whole = run_json(*args)
    monkeypatch.setattr(classify, "PIECE_BYTES", 7 * 4)  # one row per piece
    monkeypatch.setattr(classify, "BLOCK_PIECES", 2)
    assert len(classify.blocks(_parts(files, target_files), 1)) > 3
    _, blocked = run_json(*args)
    assert blocked == whole


def _parts(files, target_files):
    from softmax_cli import sources
    from softmax_cli.load import ArrayKeys
    from softmax_cli.options import CheckOptions

    loaded = sources.load_files(
        [str(f) for f in files], [str(t) for t in target_files], ArrayKeys()
    )
    return classify._prepare(loaded, CheckOptions.of())


def test_a_directory_is_every_logits_file_directly_in_it_sorted_by_name(tmp_path, rng):
    x = rng.normal(size=(2, 4)).astype(np.float32)
    for name in ("b.npy", "a.npy", ".hidden.npy"):
        np.save(tmp_path / name, x)
    np.savez(tmp_path / "c.npz", logits=x)
    (tmp_path / "notes.txt").write_text("not logits\n")
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "d.npy", x)
    _, report = run_json(tmp_path)
    names = [Path(f["logits"]).name for f in report["input"]["files"]]
    assert names == ["a.npy", "b.npy", "c.npz"]


def test_files_and_directories_mix_in_the_order_given(tmp_path, rng):
    x = rng.normal(size=(2, 4)).astype(np.float32)
    (tmp_path / "d").mkdir()
    for path in (tmp_path / "z.npy", tmp_path / "d" / "a.npy", tmp_path / "d" / "b.npy"):
        np.save(path, x)
    _, report = run_json(tmp_path / "z.npy", tmp_path / "d")
    assert [Path(f["logits"]).name for f in report["input"]["files"]] == ["z.npy", "a.npy", "b.npy"]


def test_one_file_keeps_the_single_file_input_form(shards):
    files, target_files, _, _ = shards
    _, report = run_json(files[0], "--targets", target_files[0])
    assert set(report["input"]) == {"logits", "targets", "shape", "dtype", "class_axis"}
    assert all("file" not in s for s in report["samples"])


# --- refused before any work ------------------------------------------------------------


def test_a_targets_count_that_does_not_match_the_logits_files_is_refused(shards):
    files, target_files, _, _ = shards
    assert_refused(invoke(*several_args(files, target_files[:2])), "2 --targets for 3 logits")


def test_a_file_with_other_classes_is_named(shards, tmp_path):
    files, _, _, _ = shards
    odd = tmp_path / "odd.npy"
    np.save(odd, np.zeros((2, 5), np.float32))
    assert_refused(invoke(files[0], odd, files[1]), str(odd), "5 classes", "has 7")


def test_a_file_computed_in_another_dtype_is_named(shards, tmp_path):
    files, _, _, _ = shards
    odd = tmp_path / "odd.npy"
    np.save(odd, np.zeros((2, 7), np.float16))
    assert_refused(invoke(files[0], odd), str(odd), "float16", "--dtype")
    assert invoke(files[0], odd, "--dtype", "float32", "--fail-on", "none").exit_code == 0


def test_files_with_and_without_targets_are_refused(shards, tmp_path):
    files, _, _, _ = shards
    with_targets = tmp_path / "with.npz"
    np.savez(with_targets, logits=np.zeros((2, 7), np.float32), targets=np.array([0, 1]))
    assert_refused(invoke(files[0], with_targets), str(with_targets), "has targets")


def test_a_bad_file_among_several_exits_2_naming_it_before_any_report(shards, tmp_path):
    files, _, _, _ = shards
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"\x93NUMPY garbage")
    report = tmp_path / "out.json"
    result = invoke(files[0], bad, files[1], "--format", "json", "-o", report)
    assert_refused(result, str(bad))
    assert not report.exists()


def test_an_empty_directory_is_refused(tmp_path):
    assert_refused(invoke(tmp_path), str(tmp_path), "no logits files")


def test_standard_input_cannot_be_one_of_several_files(shards):
    files, _, _, _ = shards
    assert_refused(invoke(files[0], "-"), "standard input")


def test_the_work_starts_only_after_every_file_is_validated(shards, tmp_path, monkeypatch):
    files, _, _, _ = shards
    odd = tmp_path / "odd.npy"
    np.save(odd, np.zeros((2, 5), np.float32))
    started = []
    monkeypatch.setattr(classify, "classify_block", lambda *a, **k: started.append(1))
    assert_refused(invoke(*files, odd), str(odd))
    assert started == []


# --- each format points at the sample's own file ----------------------------------------


@pytest.fixture
def overflowing(tmp_path):
    """Two files in a directory; the second file's row 1 overflows the naive path."""
    directory = tmp_path / "shards"
    directory.mkdir()
    np.save(directory / "a.npy", np.zeros((2, 3), np.float32))
    np.save(directory / "b.npy", np.array([[0, 0, 0], [1000, 0, 0]], np.float32))
    return directory


def _jenkins_class(path) -> str:
    """The classname JUnit gives a file: the suite's name, a dot, the path without dots."""
    return "softmax-check." + str(path).replace(".", "_")


def test_junit_classname_is_the_samples_file(overflowing):
    result = invoke(overflowing, "--format", "junit", "--fail-on", "naive")
    cases = ET.fromstring(result.stdout).findall(".//testcase")
    assert [(c.get("name"), c.get("classname")) for c in cases] == [
        ("sample 1", _jenkins_class(overflowing / "b.npy"))
    ]


def test_junit_has_a_passing_case_per_file_when_nothing_is_flagged(overflowing):
    np.save(overflowing / "b.npy", np.zeros((2, 3), np.float32))
    result = invoke(overflowing, "--format", "junit")
    cases = ET.fromstring(result.stdout).findall(".//testcase")
    assert [c.get("classname") for c in cases] == [
        _jenkins_class(overflowing / "a.npy"),
        _jenkins_class(overflowing / "b.npy"),
    ]


def test_github_annotations_point_at_the_samples_file(overflowing):
    result = invoke(overflowing, "--format", "github", "--fail-on", "naive")
    first = result.stdout.splitlines()[0]
    assert first.startswith("::error file=" + str(overflowing / "b.npy").replace(":", "%3A"))
    assert "flat index 3" in first


def test_markdown_has_a_file_column(overflowing):
    result = invoke(overflowing, "--format", "markdown")
    header = next(line for line in result.stdout.splitlines() if line.startswith("| file |"))
    assert header.startswith("| file | sample | target |")
    assert f"| `{overflowing / 'b.npy'}` | 1 |" in result.stdout


def test_the_table_names_the_file_and_fits_80_columns(overflowing, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = invoke(overflowing)
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert f"{overflowing}/ (2 files)" in result.stdout
    row = next(i for i, line in enumerate(lines) if "BROKEN" in line)
    assert lines[row].split()[0] == "1"
    assert lines[row + 1].split()[0] == "b.npy"


def test_without_dask_the_scheduler_option_says_how_to_install_it(shards, monkeypatch):
    files, _, _, _ = shards
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    result = invoke(*files, "--scheduler", "tcp://127.0.0.1:8786")
    assert_refused(result, "--scheduler", "pip install 'softmax-check[dask]'")


# --- memory and the pool ----------------------------------------------------------------


def test_checking_many_shards_allocates_per_sample_not_per_logit(tmp_path, monkeypatch):
    """Memory-mapped shards: the results (a few tens of bytes a sample) and the pieces'
    work buffers, never a copy of the files."""
    monkeypatch.setattr(classify, "PIECE_BYTES", 64 * 1024)
    monkeypatch.setattr(classify, "BLOCK_PIECES", 4)
    rng = np.random.default_rng(3)
    rows, classes, count = 512, 1024, 8  # 16 MiB of float32 in 8 files
    files = []
    for i in range(count):
        path = tmp_path / f"s{i}.npy"
        np.save(path, rng.standard_normal((rows, classes)).astype(np.float32))
        files.append(str(path))
    from softmax_cli import sources
    from softmax_cli.load import ArrayKeys
    from softmax_cli.options import CheckOptions

    loaded = sources.load_files(files, [None] * count, ArrayKeys())
    tracemalloc.start()
    try:
        classify.check_loaded(loaded, CheckOptions.of())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    total_bytes = rows * classes * count * 4
    assert peak < total_bytes / 16
