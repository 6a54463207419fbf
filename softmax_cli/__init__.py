"""softmax-check: where naive and stable softmax / cross-entropy overflow, underflow or NaN.

The library first, the CLI over it::

    from softmax_cli import check
    report = check(logits, targets)
    assert_passes(logits, targets)  # in a test: fails with the worst samples, readably

``check`` and the report types are imported on first use: ``python -m softmax_cli`` and the
console script import this package before they can set up Ctrl-C handling, so it must not
pull in NumPy itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from softmax_cli.errors import ExitCode, InputError, OptionError
from softmax_cli.version import __version__

if TYPE_CHECKING:
    from softmax_cli.classify import check
    from softmax_cli.report import PathFlags, Report, SampleResult, Summary
    from softmax_cli.testing import assert_passes

_LAZY = {
    "assert_passes": "softmax_cli.testing",
    "check": "softmax_cli.classify",
    "PathFlags": "softmax_cli.report",
    "Report": "softmax_cli.report",
    "SampleResult": "softmax_cli.report",
    "Summary": "softmax_cli.report",
}

__all__ = [
    "ExitCode",
    "InputError",
    "OptionError",
    "PathFlags",
    "Report",
    "SampleResult",
    "Summary",
    "__version__",
    "assert_passes",
    "check",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'softmax_cli' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
