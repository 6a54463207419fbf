"""``--format junit``: JUnit XML, the test-report format GitLab, Jenkins and GitHub read.

One ``<testcase>`` per listed sample: its name the sample's position, its classname
``softmax-check.`` followed by the logits path with every ``.`` replaced by ``_``
(``dumps/logits.npy`` -> ``softmax-check.dumps/logits_npy``). Jenkins splits a classname at
its last dot into package and class, so its tree reads package ``softmax-check`` (apart from
the project's own tests in the same job), class ``dumps/logits_npy``, test ``sample 1``; the
exact path is the suite's ``logits`` property and its name. A sample in a ``--fail-on``
category carries a ``<failure>`` with its flags and losses; a flagged sample outside the
policy (a note) passes and says why it was listed in ``<system-out>``; CI systems show
skipped tests as "not run", which a note is not. With nothing flagged there is one passing
test case for the file (as ruff does), so a CI system always shows a result. Never capped:
``tests`` and ``failures`` are the real counts, taken from the report's masks, so the
document is written a batch of test cases at a time, never held whole.

File names are shown with control characters escaped (``errors.display``), as everywhere.

Every document is valid against Jenkins' ``junit-10.xsd`` (the tests hold a copy): the
``<testsuites>`` root carries no ``skipped``, and times are seconds with three decimals.
The suite's ``time`` is ``Report.elapsed`` when whoever ran the check measured it, else 0;
samples are checked together in vectorised chunks, so a test case has no time of its own
and carries 0.
"""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from softmax_cli.errors import display
from softmax_cli.options import DEFAULT_VIEW, View
from softmax_cli.render.words import (
    DETAIL_MEASURES,
    meaning,
    measure_text,
    path_verdict,
    policy_text,
    sample_label,
    target_text,
    verdicts,
)
from softmax_cli.report import Report, SampleResult

SUITE = "softmax-check"
_NONE = "0.000"  # the time of what was not timed

# Characters XML 1.0 cannot hold at all, escaped or not; a file name could carry one.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render(report: Report, view: View = DEFAULT_VIEW) -> str:
    """The JUnit document, with an XML declaration and a final newline."""
    return "".join(chunks(report, view))


_CASE_BATCH = 4096  # test cases serialised per chunk
_MARK = "softmax-check-cases"  # where the test cases go in the serialised skeleton


def chunks(report: Report, view: View = DEFAULT_VIEW) -> Iterator[str]:
    """The document in pieces, test cases a batch at a time: the counts on the root come
    from the report's masks, so no case is held longer than its batch (a dump with
    millions of flagged samples is never one tree in memory). The text is what
    ``ET.indent`` makes of the whole tree: the skeleton is indented with a marker where
    the cases go, and each case is indented at the depth it sits."""
    info = report.input
    listed = report.ordered(include_clean=view.include_clean)
    if len(listed):
        cases = (
            _case(report, s)
            for s in report.results(listed)  # made a batch at a time
        )
        tests, failures = len(listed), int(report.fails[listed].sum())
    else:
        files = [f.logits for f in info.files] if info.several else [info.logits]
        cases = (_clean_file_case(report, file) for file in files)
        tests, failures = len(files), 0
    root = _skeleton(report, {"tests": str(tests), "failures": str(failures), "errors": "0"})
    ET.indent(root)
    head, tail = ET.tostring(root, "unicode").split(f"<{_MARK} />")
    yield '<?xml version="1.0" encoding="UTF-8"?>\n' + head
    # A batch goes out as the children of a stand-in for <testsuite>, indented at its
    # depth, without the stand-in's own tags and the indents around them.
    separator = ""
    while batch := list(itertools.islice(cases, _CASE_BATCH)):
        holder = ET.Element(_MARK)
        holder.extend(batch)
        ET.indent(holder, level=1)
        text = ET.tostring(holder, "unicode")
        inner = text[len(f"<{_MARK}>\n    ") : -len(f"\n  </{_MARK}>")]
        yield separator + inner
        separator = "\n    "
    yield tail + "\n"


def _skeleton(report: Report, counts: dict[str, str]) -> ET.Element:
    """``<testsuites>`` holding one ``<testsuite>`` for the logits file, with a marker
    element where its test cases go."""
    info = report.input
    time = _seconds(report.elapsed)
    root = ET.Element("testsuites", {"name": SUITE, **counts, "time": time})
    suite = ET.SubElement(
        root,
        "testsuite",
        {"name": _text(f"{SUITE}: {display(info.logits)}"), **counts, "skipped": "0", "time": time},
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("logits", display(info.logits)),
        ("targets", display(info.targets or "")),
        ("shape", "x".join(map(str, info.shape))),
        ("dtype", info.dtype),
        ("class_axis", str(info.class_axis)),
        ("compute_dtype", report.compute_dtype),
        ("fail_on", policy_text(report)),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": _text(value)})
    for file in info.files:  # several logits files: each one, in order
        ET.SubElement(
            properties, "property", {"name": "file", "value": _text(display(file.logits))}
        )
    ET.SubElement(suite, _MARK)
    return root


def _case(report: Report, sample: SampleResult) -> ET.Element:
    case = ET.Element(
        "testcase",
        {
            "name": sample_label(sample),
            "classname": _classname(sample.file or report.input.logits),
            "time": _NONE,
        },
    )
    details = _details(report, sample)
    if sample.failing:
        failure = ET.SubElement(
            case,
            "failure",
            {
                "message": _text(verdicts(report, sample)),
                "type": ",".join(c.value for c in sample.failing),
            },
        )
        failure.text = _text(details)
    elif sample.flagged:
        ET.SubElement(case, "system-out").text = _text(details)
    return case


def _clean_file_case(report: Report, file: str) -> ET.Element:
    """The passing test case of a report that lists no sample: one per logits file."""
    case = ET.Element(
        "testcase", {"name": "all samples", "classname": _classname(file), "time": _NONE}
    )
    ET.SubElement(case, "system-out").text = _text(meaning(report))
    return case


def _classname(logits: str) -> str:
    """``softmax-check.`` and the logits path without dots, so Jenkins' split at the last dot
    gives package ``softmax-check`` and class the whole path (see the module docstring)."""
    return _text(f"{SUITE}.{display(logits).replace('.', '_')}")


def _seconds(elapsed: float | None) -> str:
    """Seconds as Jenkins' schema wants them: digits, a dot, at most three decimals."""
    if elapsed is None or not math.isfinite(elapsed):
        return _NONE
    return f"{max(elapsed, 0.0):.3f}"


def _details(report: Report, sample: SampleResult) -> str:
    return "\n".join(
        (
            f"{sample_label(sample)} (flat index {sample.index})",
            f"target: {target_text(sample)}",
            *(f"{m.label}: {measure_text(sample, m)}" for m in DETAIL_MEASURES),
            *(
                f"{i.name}: {path_verdict(sample, sample.results[i.name])}"
                for i in report.implementations
            ),
        )
    )


def _text(value: str) -> str:
    """``value`` with the characters XML cannot carry replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", value)
