"""``.pt`` / ``.pth`` input (issue 10 point 2): tensors loaded only by the restricted
unpickler (``weights_only=True``), memory-mapped, shared with NumPy without a copy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from typer.testing import CliRunner

import softmax_cli
from softmax_cli import cli
from softmax_cli.errors import InputError
from softmax_cli.load import ArrayKeys, load_inputs

torch = pytest.importorskip("torch")

REPO = Path(softmax_cli.__file__).parent.parent
NO_KEYS = ArrayKeys()
LOGITS = torch.randn(6, 5, generator=torch.Generator().manual_seed(1)) * 20
TARGETS = torch.tensor([0, 4, 2, -100, 1, 3])


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


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
@pytest.mark.parametrize(
    "dtype", [torch.float64, torch.float32, torch.float16], ids=lambda d: str(d)[6:]
)
def test_a_saved_tensor_is_the_logits_read_only(tmp_path, suffix, dtype):
    path = tmp_path / f"logits{suffix}"
    torch.save(LOGITS.to(dtype), path)
    loaded = load_inputs(str(path), None, NO_KEYS)
    np.testing.assert_array_equal(loaded.logits, LOGITS.to(dtype).numpy())
    assert loaded.targets is None
    with pytest.raises(ValueError, match="read-only"):
        loaded.logits[0, 0] = 0


def test_bfloat16_comes_back_bit_for_bit(tmp_path):
    reference = (LOGITS * 10).to(torch.bfloat16)
    reference[0, :3] = torch.tensor([float("inf"), float("nan"), -1e-39])
    torch.save({"logits": reference}, tmp_path / "bf16.pt")
    logits = load_inputs(str(tmp_path / "bf16.pt"), None, NO_KEYS).logits
    assert logits.dtype == np.dtype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(
        logits.view(np.uint16), reference.view(torch.int16).numpy().view(np.uint16)
    )


def test_a_dict_carries_logits_and_targets(tmp_path):
    torch.save({"logits": LOGITS, "targets": TARGETS, "step": 7}, tmp_path / "d.pt")
    loaded = load_inputs(str(tmp_path / "d.pt"), None, NO_KEYS)
    np.testing.assert_array_equal(loaded.logits, LOGITS.numpy())
    np.testing.assert_array_equal(loaded.targets, TARGETS.numpy())
    assert loaded.targets_name == str(tmp_path / "d.pt")


def test_the_lone_float_tensor_is_the_logits(tmp_path):
    torch.save({"scores": LOGITS, "labels": TARGETS}, tmp_path / "d.pt")
    loaded = load_inputs(str(tmp_path / "d.pt"), None, NO_KEYS)
    np.testing.assert_array_equal(loaded.logits, LOGITS.numpy())


def test_keys_pick_the_tensors(tmp_path):
    torch.save({"a": LOGITS, "b": LOGITS * 2, "labels": TARGETS}, tmp_path / "d.pt")
    keys = ArrayKeys(logits="b", targets="labels")
    loaded = load_inputs(str(tmp_path / "d.pt"), None, keys)
    np.testing.assert_array_equal(loaded.logits, (LOGITS * 2).numpy())
    np.testing.assert_array_equal(loaded.targets, TARGETS.numpy())
    assert_refused(invoke(tmp_path / "d.pt"), "cannot tell which array holds the logits")


@pytest.mark.parametrize("dtype", [torch.int8, torch.int32, torch.int64, torch.uint8])
def test_targets_may_be_a_pt_file(tmp_path, dtype):
    np.save(tmp_path / "x.npy", LOGITS.numpy())
    targets = torch.tensor([0, 4, 2, 1, 1, 3], dtype=dtype)
    torch.save(targets, tmp_path / "t.pt")
    loaded = load_inputs(str(tmp_path / "x.npy"), str(tmp_path / "t.pt"), NO_KEYS)
    np.testing.assert_array_equal(loaded.targets, targets.numpy())


def test_a_non_contiguous_tensor_is_read_as_saved(tmp_path):
    torch.save({"logits": LOGITS.t()}, tmp_path / "t.pt")
    np.testing.assert_array_equal(
        load_inputs(str(tmp_path / "t.pt"), None, NO_KEYS).logits, LOGITS.t().numpy()
    )


class _Payload:
    """Unpickling this makes a directory: proof that a file ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_pickled_object_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"logits": LOGITS, "x": _Payload(marker)}, path)
    assert_refused(invoke(path), str(path), "holds Python objects besides tensors", "posix.mkdir")
    assert not marker.exists()


def test_a_file_that_is_not_tensors_is_refused(tmp_path):
    torch.save([LOGITS], tmp_path / "list.pt")
    assert_refused(invoke(tmp_path / "list.pt"), "holds a list, not a tensor or a dict")


def test_a_legacy_torch_save_file_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "old.pt"
    torch.save(LOGITS, path, _use_new_zipfile_serialization=False)
    assert_refused(invoke(path), str(path), "pickle", "torch.save")


def test_a_damaged_archive_is_refused(tmp_path):
    path = tmp_path / "cut.pt"
    torch.save(LOGITS, path)
    path.write_bytes(path.read_bytes()[:300])
    assert_refused(invoke(path), str(path), "cannot be loaded as tensors")


def test_without_torch_the_error_says_how_to_read_the_file(tmp_path, monkeypatch):
    torch.save(LOGITS, tmp_path / "x.pt")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(InputError) as caught:
        load_inputs(str(tmp_path / "x.pt"), None, NO_KEYS)
    message = str(caught.value)
    assert "needs torch" in message
    assert "pip install softmax-check[torch]" in message
    assert "safetensors.torch.save_file(torch.load(" in message
    assert_refused(invoke(tmp_path / "x.pt"), "needs torch")


def test_torch_is_imported_only_when_a_pt_file_is_read(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 3)))
    torch.save(torch.zeros(2, 3), tmp_path / "x.pt")
    script = (
        "import sys\n"
        "from softmax_cli.load import ArrayKeys, load_inputs\n"
        "load_inputs(sys.argv[1], None, ArrayKeys())\n"
        "print('torch' in sys.modules, end=' ')\n"
        "load_inputs(sys.argv[2], None, ArrayKeys())\n"
        "print('torch' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "x.npy"), str(tmp_path / "x.pt")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.stdout.strip() == "False True", done.stderr


def test_a_large_tensor_is_mapped_not_copied(tmp_path):
    torch.save({"logits": torch.ones(4096, 4096, dtype=torch.bfloat16)}, tmp_path / "big.pt")
    before = _anonymous_kib()
    logits = load_inputs(str(tmp_path / "big.pt"), None, NO_KEYS).logits
    total = sum(int(logits[i : i + 256].view(np.uint16).sum(dtype=np.uint64))
                for i in range(0, 4096, 256))  # fmt: skip
    assert total == 4096 * 4096 * 0x3F80
    assert _anonymous_kib() - before < 16 << 10  # well under the 32 MiB of the tensor


def _anonymous_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    pytest.skip("no /proc/self/status")
