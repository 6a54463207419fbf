"""What a file is, from its first bytes: so a file in the wrong format gets a useful hint.

Each ``is_*`` test looks only at the head of a file (:data:`HEAD_BYTES` of it); none of
them parses anything a hostile file could make expensive.
"""

from __future__ import annotations

import struct

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"  # an archive with no members is only its end record
# Enough for a ZIP local header and the name of its first member (torch.save's data.pkl).
HEAD_BYTES = 512
# safetensors refuses headers above 100 MB; a length beyond that is not a safetensors file.
MAX_SAFETENSORS_HEADER = 100_000_000
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., name length, extra length


def is_npy(head: bytes) -> bool:
    return head.startswith(NPY_MAGIC)


def is_zip(head: bytes) -> bool:
    return head.startswith((ZIP_MAGIC, EMPTY_ZIP_MAGIC))


def is_torch_zip(head: bytes) -> bool:
    """A ``torch.save`` archive: a ZIP whose first member is ``<name>/data.pkl``."""
    if not head.startswith(ZIP_MAGIC) or len(head) < _LOCAL_HEADER.size:
        return False
    _, name_length, _ = _LOCAL_HEADER.unpack_from(head)
    name = head[_LOCAL_HEADER.size : _LOCAL_HEADER.size + name_length]
    return name == b"data.pkl" or name.endswith(b"/data.pkl")


def is_npz(head: bytes) -> bool:
    """A ZIP archive that is not a torch.save file (which is a ZIP too)."""
    return is_zip(head) and not is_torch_zip(head)


def is_safetensors(head: bytes) -> bool:
    """An 8-byte little-endian header length, then the header's JSON object (whether the
    length is sane is the reader's to say)."""
    return len(head) >= 9 and int.from_bytes(head[:8], "little") >= 2 and head[8:9] == b"{"


def is_pickle(head: bytes) -> bool:
    """A pickle of protocol 2 to 5 (the PROTO opcode, then its number), as torch.save's
    legacy format and pickle.dump write."""
    return len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5


_COMPRESSED = (
    (b"\x1f\x8b", "gzip", "gunzip"),
    (b"BZh", "bzip2", "bunzip2"),
    (b"\xfd7zXZ", "xz", "unxz"),
)


def looks_like(head: bytes) -> str | None:
    """What a file that is not in the format its name says seems to be, and what reads it."""
    # safetensors first: its header length may start with 0x80 and look like a pickle.
    if is_safetensors(head) and int.from_bytes(head[:8], "little") <= MAX_SAFETENSORS_HEADER:
        return "it looks like a safetensors file; name it .safetensors"
    if is_npy(head):
        return "it looks like a .npy file (NumPy binary); name it .npy"
    if is_torch_zip(head):
        return "it looks like a PyTorch file (torch.save); name it .pt"
    if is_zip(head):
        return "it looks like a ZIP archive, as an .npz file is; name it .npz"
    if is_pickle(head):
        return (
            "it looks like a Python pickle (or a torch.save file from before PyTorch 1.6), "
            "which softmax-check never loads; save the arrays with np.save, safetensors "
            "or a current torch.save instead"
        )
    for magic, name, tool in _COMPRESSED:
        if head.startswith(magic):
            return f"it looks like a {name}-compressed file: decompress it first ({tool})"
    return None
