"""Writes the bad input files of this folder: ``python tests/data/bad/make_bad_files.py``.

Each file is one way an input can be wrong; tests/test_load_*_errors.py pin what softmax-check
says about it. The files are committed, so this script only documents how they were made
(and remakes them if a case is added). Files that must be hostile or depend on the machine
(unreadable, hundreds of megabytes, pickles that would run code) are made by test fixtures.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np

HERE = Path(__file__).parent
LOGITS = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]], dtype=np.float32)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_with_header(header: dict, data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + data


def npz_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def files() -> dict[str, bytes]:
    good = npy_bytes(LOGITS)
    f8 = {"descr": "<f8", "fortran_order": False}
    compressed = npz_bytes({"logits.npy": npy_bytes(np.zeros((64, 64)))}, zipfile.ZIP_DEFLATED)
    middle = len(compressed) // 3  # inside the deflate stream of the only member
    corrupt = compressed[:middle] + bytes(b ^ 0x55 for b in compressed[middle : middle + 40])
    corrupt += compressed[middle + 40 :]
    return {
        # .npy
        "empty.npy": b"",
        "truncated.npy": good[: len(good) - 5],
        "header_only.npy": good[:128],
        "cut_in_magic.npy": good[:5],
        "wrong_magic.npy": b"this is not a numpy file\n",
        "csv_text.npy": b"1,2,3\n4,5,6\n",
        "zip_named.npy": npz_bytes({"logits.npy": good}),
        "corrupt_header.npy": good[:10] + b"{'descr': '<f4', 'fortran_order': Fal" + good[48:],
        "version_9.npy": good[:6] + b"\x09\x00" + good[8:],
        "object.npy": npy_with_header({**f8, "descr": "|O", "shape": (2,)}, b"\x80\x04N."),
        "strings.npy": npy_bytes(np.array([["a", "b"], ["c", "d"]])),
        "bytes.npy": npy_bytes(np.array([[b"a", b"b"]])),
        "complex.npy": npy_bytes(LOGITS.astype(np.complex64)),
        "bool.npy": npy_bytes(LOGITS > 1),
        "structured.npy": npy_bytes(np.zeros(2, dtype=[("logit", "<f4"), ("target", "<i8")])),
        "bfloat16.npy": npy_bytes(LOGITS.astype(ml_dtypes.bfloat16)),
        "datetime.npy": npy_bytes(np.array([[1, 2]], dtype="datetime64[s]")),
        "scalar.npy": npy_bytes(np.float32(1.0)),
        "zero_samples.npy": npy_bytes(np.zeros((0, 3), dtype=np.float32)),
        "zero_classes.npy": npy_bytes(np.zeros((3, 0), dtype=np.float32)),
        "absurd_shape.npy": npy_with_header({**f8, "shape": (10**12, 10**12)}, b"\0" * 64),
        "huge_shape.npy": npy_with_header({**f8, "shape": (1 << 40, 1 << 30)}, b"\0" * 64),
        "negative_shape.npy": npy_with_header({**f8, "shape": (-2, 3)}, b"\0" * 48),
        "zero_itemsize.npy": npy_with_header({**f8, "descr": "<U0", "shape": (3, 3)}),
        # .npz
        "empty.npz": b"",
        "npy_named.npz": good,
        "csv_text.npz": b"1,2,3\n",
        "truncated.npz": npz_bytes({"logits.npy": good})[:100],
        "corrupt_member.npz": corrupt,
        "no_arrays.npz": npz_bytes({}),
        "ambiguous.npz": npz_bytes({"a.npy": good, "b.npy": good}),
        "object_member.npz": npz_bytes(
            {"logits.npy": npy_with_header({**f8, "descr": "|O", "shape": (2,)}, b"\x80\x04N.")}
        ),
        "not_npy_member.npz": npz_bytes({"logits.npy": b"just some text, not an array"}),
        "truncated_member.npz": npz_bytes({"logits.npy": good[:-5]}),
        "absurd_member.npz": npz_bytes(
            {"logits.npy": npy_with_header({**f8, "shape": (10**12, 10**12)}, b"\0" * 64)}
        ),
        # CSV
        "empty.csv": b"",
        "blank_lines.csv": b"\n  \n\n",
        "header_only.csv": b"a,b,c\n",
        "ragged.csv": b"1,2,3\n4,5\n",
        "non_numeric.csv": b"1,2,3\n4,five,6\n",
        "empty_field.csv": b"1,2,3\n4,,6\n",
        "binary.csv": bytes(range(128, 256)) * 4,
        "nul.csv": b"1,2,3\n4,\x005,6\n",
        "latin1.csv": "caf\xe9,b\n1,2\n".encode("latin-1"),
        "npy_named.csv": good,
        "zero_classes.csv": b",\n,\n",
        # targets
        "logits.npy": good,
        "targets_count.npy": npy_bytes(np.array([0, 1, 2])),
        "targets_range.npy": npy_bytes(np.array([0, 3])),
        "targets_negative.npy": npy_bytes(np.array([0, -1])),
        "targets_fraction.npy": npy_bytes(np.array([0.0, 1.5])),
        "targets_nan.npy": npy_bytes(np.array([0.0, np.nan])),
        "targets_bool.npy": npy_bytes(np.array([True, False])),
        "targets_strings.npy": npy_bytes(np.array(["0", "1"])),
        "targets_wrapping.npy": npy_bytes(np.array([0, 2**64 - 100], dtype=np.uint64)),
        "targets_words.txt": b"target\n0\ncat\n",
        "targets_empty.txt": b"",
        "targets_fraction.csv": b"0\n0.5\n",
        "targets_nan_column.csv": b"a,b,c,target\n1,2,3,0\n4,5,6,nan\n",
    }


def main() -> None:
    for name, data in files().items():
        (HERE / name).write_bytes(data)


if __name__ == "__main__":
    main()
