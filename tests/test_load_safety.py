"""Loading never changes, runs or unpickles anything: inputs are opened read-only and left as
they were, every loader hands back read-only arrays, and no input format, not even an
object array inside a ``.npy`` or ``.npz``, reaches Python's pickle machinery."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, assert_error_message, invoke

from softmax_cli.errors import InputError
from softmax_cli.load import ArrayKeys, load_inputs

LOGITS = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, np.nan]], dtype=np.float32)
TARGETS = np.array([0, 2])


def _fingerprint(path: Path) -> tuple[str, int, int]:
    status = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), status.st_mtime_ns, status.st_mode


def _save_safetensors(path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"logits": LOGITS, "targets": TARGETS}, str(path))


def _save_torch(path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.save({"logits": torch.from_numpy(LOGITS), "targets": torch.from_numpy(TARGETS)}, path)


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, list[Path]]:
    """One dump per format (with findings, so every path of the check runs): the logits file
    first, then a separate targets file if the logits file does not carry its targets."""
    np.save(tmp_path / "logits.npy", LOGITS)
    np.save(tmp_path / "targets.npy", TARGETS)
    np.savez(tmp_path / "stored.npz", logits=LOGITS, targets=TARGETS)
    np.savez_compressed(tmp_path / "compressed.npz", logits=LOGITS, targets=TARGETS)
    (tmp_path / "dump.csv").write_text("c0,c1,c2,target\n1,2,3,0\n1000,0,nan,2\n")
    (tmp_path / "targets.txt").write_text("0\n2\n")
    return {
        "npy": [tmp_path / "logits.npy", tmp_path / "targets.npy"],
        "stored npz": [tmp_path / "stored.npz"],
        "compressed npz": [tmp_path / "compressed.npz"],
        "csv": [tmp_path / "dump.csv"],
        "npy + txt": [tmp_path / "logits.npy", tmp_path / "targets.txt"],
    }


# Every loader, each with a file that carries (or is given) its targets.
FORMATS = ["npy", "stored npz", "compressed npz", "csv", "safetensors", "pt"]


@pytest.fixture
def dump(request: pytest.FixtureRequest, inputs: dict[str, list[Path]], tmp_path: Path):
    """(logits path, targets path or None) for the format ``request.param``."""
    kind = request.param
    if kind == "safetensors":
        _save_safetensors(tmp_path / "dump.safetensors")
        return tmp_path / "dump.safetensors", None
    if kind == "pt":
        _save_torch(tmp_path / "dump.pt")
        return tmp_path / "dump.pt", None
    files = inputs[kind]
    return files[0], files[1] if len(files) > 1 else None


@pytest.mark.parametrize("kind", ["npy", "stored npz", "compressed npz", "csv", "npy + txt"])
def test_inputs_are_never_modified(kind, inputs, tmp_path):
    files = inputs[kind]
    before = [_fingerprint(p) for p in files]
    args = [files[0]] + (["--targets", files[1]] if len(files) > 1 else [])
    result = invoke(*args, "--format", "json", "-o", tmp_path / "out.json")
    assert result.exit_code == 1, result.stderr  # the NaN row is an input finding
    assert [_fingerprint(p) for p in files] == before


def test_inputs_are_opened_read_only(monkeypatch, inputs):
    modes: list[str] = []
    real_open = open

    def spy(file, mode="r", *args, **kwargs):
        modes.append(mode)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spy)
    real_memmap = np.memmap

    def memmap_spy(*args, **kwargs):
        modes.append("memmap:" + kwargs.get("mode", "r+"))
        return real_memmap(*args, **kwargs)

    monkeypatch.setattr(np, "memmap", memmap_spy)
    for files in inputs.values():
        load_inputs(str(files[0]), str(files[1]) if len(files) > 1 else None, ArrayKeys())
    assert modes
    assert all(mode in ("r", "rb", "memmap:r") for mode in modes), modes


# --- read-only arrays -------------------------------------------------------------------


def assert_read_only(array: np.ndarray) -> None:
    """NumPy refuses to write into ``array``: its flag says so and an assignment raises."""
    assert not array.flags.writeable, f"{type(array).__name__} is writeable"
    with pytest.raises(ValueError, match="read-only"):
        array.flat[0] = 0


def test_assert_read_only_fails_on_a_writeable_array():
    with pytest.raises(AssertionError, match="writeable"):
        assert_read_only(np.zeros((2, 3)))


@pytest.mark.parametrize("dump", FORMATS, indirect=True)
@pytest.mark.parametrize("array", ["logits", "targets"])
def test_loaded_arrays_are_read_only(dump, array):
    logits, targets = dump
    loaded = load_inputs(str(logits), str(targets) if targets else None, ArrayKeys())
    assert_read_only(getattr(loaded, array))


def test_a_compressed_member_is_read_only(tmp_path):
    path = tmp_path / "compressed.npz"
    np.savez_compressed(path, logits=np.zeros((2, 3)), targets=np.array([0, 1]))
    loaded = load_inputs(str(path), None, ArrayKeys())
    for array in (loaded.logits, loaded.targets):
        assert not isinstance(array, np.memmap)
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1


# --- never unpickle ---------------------------------------------------------------------


class _Payload:
    """Unpickling this makes a directory: proof that a file ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_a_pickle_in_the_input_is_never_run(suffix, tmp_path):
    marker = tmp_path / "pwned"
    evil = np.array([_Payload(marker), _Payload(marker)], dtype=object)
    path = tmp_path / f"evil{suffix}"
    if suffix == ".npy":
        np.save(path, evil, allow_pickle=True)
    else:
        np.savez(path, logits=evil)
    with pytest.raises(InputError, match="never unpickles"):
        load_inputs(str(path), None, ArrayKeys())
    assert_error_message(invoke(path), "never unpickles")
    assert not marker.exists()


# Runs the rest of the command line after replacing every entry into Python's unpickler
# (pure-Python and C: load, loads, Unpickler) with a tripwire that writes the marker file
# named by $PICKLE_TRIPWIRE and exits 99. It is set before anything else is imported, and a
# tripwire that fires cannot be swallowed by the CLI's error handling: the marker stays.
# The Unpickler classes become subclasses whose constructor and load() trip, since modules
# (torch's among them) subclass them at import time without unpickling anything.
TRIPWIRE = """
import os, pickle, _pickle, sys
def tripwire(*args, **kwargs):
    with open(os.environ["PICKLE_TRIPWIRE"], "w") as marker:
        marker.write(repr(args[:1]))
    os._exit(99)
for module in (pickle, _pickle):
    for name in ("load", "loads", "_load", "_loads"):
        if hasattr(module, name):
            setattr(module, name, tripwire)
    for name in ("Unpickler", "_Unpickler"):
        if hasattr(module, name):
            base = getattr(module, name)
            trap = {"__init__": tripwire, "load": tripwire}
            setattr(module, name, type(name, (base,), trap))
exec(sys.argv.pop(1))
"""


def _with_tripwire(code: str, *args: object, marker: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PICKLE_TRIPWIRE": str(marker)}
    command = [sys.executable, "-c", TRIPWIRE, code, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


CLI = "from softmax_cli.entry import main; main()"


# What an unpickling loader would do, on a file holding a pickle (argv[1] is object.npy,
# argv[2] a torch.save file): each must trip the wire, or the tests below prove nothing.
UNPICKLING = {
    "numpy.load": "import numpy, sys; numpy.load(sys.argv[1], allow_pickle=True)",
    "pickle.loads": "import pickle; pickle.loads(pickle.dumps([1.0]))",
    "pickle.Unpickler": "import io, pickle; pickle.Unpickler(io.BytesIO(pickle.dumps(1))).load()",
    "torch.load": "import sys, torch; torch.load(sys.argv[2], weights_only=False)",
}


@pytest.mark.parametrize("code", UNPICKLING.values(), ids=UNPICKLING.keys())
def test_the_tripwire_fires_on_unpickling(code, tmp_path):
    np.save(tmp_path / "object.npy", np.array([1.0, "a"], dtype=object), allow_pickle=True)
    _save_torch(tmp_path / "saved.pt")
    marker = tmp_path / "unpickled"
    done = _with_tripwire(code, tmp_path / "object.npy", tmp_path / "saved.pt", marker=marker)
    assert done.returncode == 99, done.stderr
    assert marker.exists()


@pytest.mark.parametrize("dump", FORMATS, indirect=True)
def test_no_input_format_reaches_the_unpickler(dump, tmp_path):
    """Every format checked to the end (exit 1: the dump has a NaN row) with pickle's
    entries replaced by a tripwire. ``.pt`` files are read by ``torch.load(weights_only=
    True)``, whose restricted unpickler (torch._weights_only_unpickler) decodes the pickle
    opcodes itself and rebuilds only tensors and plain containers from an allowlist: that
    is the one unpickler allowed, so "never unpickle" there means never Python's own
    ``pickle`` (which would call any callable a file names); test_load_torch.py pins that a
    .pt holding another object is refused without running it. A .pt file is always a
    pickle, so that case trips if the loader ever drops weights_only (see the torch.load
    self-test); the object arrays of the next test are where a NumPy loader would."""
    logits, targets = dump
    marker = tmp_path / "unpickled"
    args = [logits] + (["--targets", targets] if targets else [])
    done = _with_tripwire(CLI, *args, "--format", "json", marker=marker)
    assert not marker.exists(), marker.read_text()
    assert done.returncode == 1, done.stderr


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_an_object_array_is_refused_without_reaching_the_unpickler(suffix, tmp_path):
    path = tmp_path / f"object{suffix}"
    evil = np.array([1.0, "a"], dtype=object)
    if suffix == ".npy":
        np.save(path, evil, allow_pickle=True)
    else:
        np.savez(path, logits=evil)
    marker = tmp_path / "unpickled"
    done = _with_tripwire(CLI, path, marker=marker)
    assert not marker.exists(), marker.read_text()
    assert done.returncode == 2, done.stderr
    assert "never unpickles" in done.stderr
