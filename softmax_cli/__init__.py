"""softmax-check: where naive and stable softmax / cross-entropy overflow, underflow or NaN.

The library first, the CLI over it::

    from softmax_cli import check
    report = check(logits, targets)
    assert report.passed, report.summary
"""

from __future__ import annotations

from softmax_cli.classify import check
from softmax_cli.errors import ExitCode, InputError
from softmax_cli.report import PathFlags, Report, SampleResult, Summary
from softmax_cli.version import __version__

__all__ = [
    "ExitCode",
    "InputError",
    "PathFlags",
    "Report",
    "SampleResult",
    "Summary",
    "__version__",
    "check",
]
