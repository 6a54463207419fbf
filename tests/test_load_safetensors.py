"""``.safetensors`` input (issue 10 point 1): float logits of every width, integer targets of
any width, memory-mapped read-only; the untrusted header refused cleanly when it lies."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file
from typer.testing import CliRunner

from softmax_cli import check, cli
from softmax_cli.errors import InputError
from softmax_cli.load import ArrayKeys, load_inputs

torch = pytest.importorskip("torch")
from safetensors.torch import save_file as save_torch_file  # noqa: E402

RNG = np.random.default_rng(7)
LOGITS = (RNG.standard_normal((5, 7)) * 30).astype(np.float32)
TARGETS = np.array([0, 6, 3, -100, 2])
NO_KEYS = ArrayKeys()


def invoke(*args: object):
    return CliRunner().invoke(cli.app, [str(a) for a in args])


def assert_refused(result, *fragments: str) -> None:
    detail = f"exit {result.exit_code}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}"
    assert result.exit_code == 2, detail
    assert result.stdout == "", detail
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, detail
    assert len(result.stderr.strip().splitlines()) <= 4, detail
    for fragment in fragments:
        assert fragment in result.stderr, detail


@pytest.mark.parametrize(
    "dtype", [np.float64, np.float32, np.float16, ml_dtypes.bfloat16], ids=lambda d: d.__name__
)
def test_float_logits_are_memory_mapped_read_only_with_identical_values(tmp_path, dtype):
    path = tmp_path / "dump.safetensors"
    values = LOGITS.astype(dtype)
    save_file({"logits": values}, str(path))
    loaded = load_inputs(str(path), None, NO_KEYS)
    assert isinstance(loaded.logits, np.memmap)
    assert loaded.logits.dtype == np.dtype(dtype)
    assert loaded.logits.tobytes() == values.tobytes()
    with pytest.raises(ValueError, match="read-only"):
        loaded.logits[0, 0] = 0


def test_bfloat16_round_trips_bit_for_bit_against_torch(tmp_path):
    reference = (torch.randn(64, 33, generator=torch.Generator().manual_seed(3)) * 50).to(
        torch.bfloat16
    )
    reference[0, :4] = torch.tensor([float("inf"), float("-inf"), float("nan"), 1e-40])
    path = tmp_path / "bf16.safetensors"
    save_torch_file({"logits": reference}, str(path))
    loaded = load_inputs(str(path), None, NO_KEYS).logits
    assert loaded.dtype == np.dtype(ml_dtypes.bfloat16)
    expected_bits = reference.view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(loaded.view(np.uint16), expected_bits)
    as_float = reference.float().numpy()
    np.testing.assert_array_equal(loaded.astype(np.float32), as_float)


def test_a_bfloat16_dump_is_checked_in_bfloat16(tmp_path):
    path = tmp_path / "bf16.safetensors"
    save_torch_file({"logits": torch.tensor([[100.0, 0.0], [1.0, 2.0]], dtype=torch.bfloat16)},
                    str(path))  # fmt: skip
    loaded = load_inputs(str(path), None, NO_KEYS)
    report = check(loaded.logits, loaded.targets)
    assert report.compute_dtype == "bfloat16"
    assert report.summary.samples == 2


@pytest.mark.parametrize(
    "dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
)
def test_integer_targets_of_any_width_are_read(tmp_path, dtype):
    targets = np.array([0, 6, 3, 1, 2], dtype=dtype)
    save_file({"logits": LOGITS, "targets": targets}, str(tmp_path / "d.safetensors"))
    loaded = load_inputs(str(tmp_path / "d.safetensors"), None, NO_KEYS)
    assert loaded.targets.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(loaded.targets, targets)
    assert loaded.targets_name == str(tmp_path / "d.safetensors")


def test_targets_may_come_from_a_separate_safetensors_file(tmp_path):
    np.save(tmp_path / "x.npy", LOGITS)
    save_file({"labels": TARGETS}, str(tmp_path / "t.safetensors"))
    loaded = load_inputs(str(tmp_path / "x.npy"), str(tmp_path / "t.safetensors"), NO_KEYS)
    np.testing.assert_array_equal(loaded.targets, TARGETS)


def test_the_lone_float_tensor_is_the_logits(tmp_path):
    path = tmp_path / "d.safetensors"
    save_file({"scores": LOGITS, "labels": TARGETS, "mask": TARGETS > 0}, str(path))
    loaded = load_inputs(str(path), None, NO_KEYS)
    np.testing.assert_array_equal(loaded.logits, LOGITS)
    assert loaded.targets is None


def test_keys_pick_the_tensors(tmp_path):
    path = tmp_path / "d.safetensors"
    save_file({"a": LOGITS, "b": LOGITS * 2, "labels": TARGETS}, str(path))
    loaded = load_inputs(str(path), None, ArrayKeys(logits="b", targets="labels"))
    np.testing.assert_array_equal(loaded.logits, LOGITS * 2)
    np.testing.assert_array_equal(loaded.targets, TARGETS)


def test_several_float_tensors_ask_for_a_key(tmp_path):
    path = tmp_path / "d.safetensors"
    save_file({"a": LOGITS, "b": LOGITS}, str(path))
    assert_refused(invoke(path), str(path), "cannot tell which array holds the logits",
                   "--logits-key")  # fmt: skip
    assert_refused(invoke(path, "--logits-key", "c"), "has no array 'c'")


def test_the_cli_checks_a_safetensors_dump_with_its_targets(tmp_path):
    path = tmp_path / "d.safetensors"
    save_file({"logits": LOGITS, "targets": TARGETS}, str(path))
    result = invoke(path, "--format", "json")
    assert result.exit_code in (0, 1), result.stderr
    document = json.loads(result.stdout)
    assert document["input"]["logits"] == str(path)
    assert document["summary"]["samples"] == 5


# --- an untrusted header --------------------------------------------------------------


def _raw(header: dict, data: bytes, length: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


GOOD_HEADER = {
    "logits": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
    "targets": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]},
}
DATA = np.zeros((2, 3), np.float32).tobytes() + np.array([0, 1], np.int64).tobytes()


def _with(name: str, **entry) -> dict:
    return {**GOOD_HEADER, name: {**GOOD_HEADER[name], **entry}}


BAD_FILES = {
    "truncated": (_raw(GOOD_HEADER, DATA[:-5]), "not a valid safetensors file"),
    "cut-in-length": (_raw(GOOD_HEADER, DATA)[:6], "is not a .safetensors file"),
    "cut-in-header": (_raw(GOOD_HEADER, DATA)[:40], "header"),
    "offsets-past-the-end": (
        _raw(_with("targets", data_offsets=[24, 400]), DATA),
        "not a valid safetensors file",
    ),
    "overlapping": (
        _raw(_with("targets", data_offsets=[16, 32]), DATA),
        "not a valid safetensors file",
    ),
    "shape-times-dtype-is-not-the-span": (
        _raw(_with("targets", shape=[3]), DATA),
        "not a valid safetensors file",
    ),
    "oversized-header-length": (_raw(GOOD_HEADER, DATA, length=1 << 40), "corrupt safetensors"),
    "header-length-past-the-end": (_raw(GOOD_HEADER, DATA, length=5000), "corrupt safetensors"),
    "not-json": (struct.pack("<Q", 12) + b"{not json!!}" + DATA, "not a valid safetensors file"),
    "unknown-dtype": (_raw(_with("targets", dtype="Q9"), DATA), "not a valid safetensors file"),
    "negative-shape": (_raw(_with("targets", shape=[-2]), DATA), "not a valid safetensors file"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_a_lying_header_is_refused_naming_the_file(tmp_path, case):
    data, fragment = BAD_FILES[case]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    assert_refused(invoke(path), str(path), fragment)


def test_an_unsupported_dtype_is_refused_by_name(tmp_path):
    path = tmp_path / "f8.safetensors"
    header = {"logits": {"dtype": "F8_E4M3", "shape": [2, 3], "data_offsets": [0, 6]}}
    path.write_bytes(_raw(header, bytes(6)))
    assert_refused(invoke(path), str(path), "dtype F8_E4M3", "does not read")


def test_an_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    assert_refused(invoke(path), "is empty (0 bytes)")


def test_a_file_without_tensors_is_refused(tmp_path):
    path = tmp_path / "none.safetensors"
    path.write_bytes(_raw({"__metadata__": {"by": "test"}}, b""))
    with pytest.raises(InputError, match="holds no arrays"):
        load_inputs(str(path), None, NO_KEYS)


def test_bad_targets_file_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 3)))
    path = tmp_path / "t.safetensors"
    path.write_bytes(_raw(GOOD_HEADER, DATA[:-1]))
    assert_refused(invoke(tmp_path / "x.npy", "--targets", path), str(path))


def test_reading_a_large_dump_allocates_no_copy(tmp_path):
    """The tensor is mapped, not read: touching all of it adds file pages, not heap."""
    path = tmp_path / "big.safetensors"
    save_file({"logits": np.ones((4096, 4096), dtype=ml_dtypes.bfloat16)}, str(path))  # 32 MiB
    before = _anonymous_kib()
    logits = load_inputs(str(path), None, NO_KEYS).logits
    total = sum(float(logits[i : i + 256].view(np.uint16).sum(dtype=np.uint64))
                for i in range(0, 4096, 256))  # fmt: skip
    assert total == 4096 * 4096 * 0x3F80
    assert _anonymous_kib() - before < 16 << 10  # well under the 32 MiB of the tensor


def _anonymous_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    pytest.skip("no /proc/self/status")
