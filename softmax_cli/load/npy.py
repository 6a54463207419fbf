"""``.npy`` files: memory-mapped read-only, never unpickled."""

from __future__ import annotations

import numpy as np

from softmax_cli.errors import InputError


def read_array(path: str) -> np.ndarray:
    """The array in ``path``, memory-mapped (pages are read as the chunk loop reaches them)."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, not a .npy file") from None
    except PermissionError:
        raise InputError(path, "permission denied") from None
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(path, f"not a readable .npy file: {exc}") from None
