"""Words every format shares, so a sample reads the same in each of them."""

from __future__ import annotations

import math
import os

import numpy as np

from softmax_cli.errors import display
from softmax_cli.options import MaskedMode
from softmax_cli.report import (
    MEASURES,
    STABLE,
    Flag,
    InputFlag,
    MeasureSpec,
    PathFlags,
    Report,
    SampleResult,
)

FLAG_NAMES = tuple(f.key for f in Flag)
INPUT_FLAG_NAMES = tuple(f.key for f in InputFlag)
# The rows of every summary table: the flags, then the loss counts and the verdict.
COUNT_NAMES = (*FLAG_NAMES, "inf_loss", "nan_loss", "breaks")
NOT_REPORTED = "-"  # a count an implementation does not report (a user's has no overflow)


def count_names(report: Report) -> tuple[str, ...]:
    """The summary rows of this report: the flags some implementation reports, the loss
    counts and the verdict; then, with a user's implementation, its largest error."""
    reported = {f for i in report.implementations for f in i.reported}
    names = (*(f.key for f in Flag if f in reported), "inf_loss", "nan_loss", "breaks")
    return (*names, "max_error") if report.own_implementations else names


def count_text(report: Report, implementation: str, name: str) -> str:
    """One cell of the summary: a count, the largest error, or ``-`` where not reported."""
    value = getattr(report.summary.impls[implementation], name, NOT_REPORTED)
    if value is None:
        return NOT_REPORTED
    return short_number(value) if isinstance(value, float) else str(value)


def position_text(sample: SampleResult) -> str:
    """``1`` for a 1-D batch, ``(1, 3)`` for N-D sample axes (``()`` for a lone row)."""
    position = sample.position
    if len(position) == 1:
        return str(position[0])
    return "(" + ", ".join(map(str, position)) + ")"


def file_text(report: Report, sample: SampleResult) -> str:
    """The sample's file, short: without the directory all the files share (the header
    names it), so a file column stays narrow; escaped for display (see ``errors.display``)."""
    assert sample.file is not None
    directory = shared_directory(report)
    return display(sample.file[len(directory) :] if directory else sample.file)


def shared_directory(report: Report) -> str:
    """The directory every file of a several-file input is in (with a final separator),
    or ``""``."""
    directories = {os.path.dirname(f.logits) for f in report.input.files}
    if len(directories) != 1 or not (directory := directories.pop()):
        return ""
    directory = os.path.join(directory, "")
    return directory if all(f.logits.startswith(directory) for f in report.input.files) else ""


def dump_text(report: Report) -> str:
    """``3 samples x 3 classes`` (``... in 4 files``): a report header's size of the dump."""
    info = report.input
    text = f"{samples_count(report.summary.samples)} x {info.classes} classes"
    return f"{text} in {len(info.files)} files" if info.several else text


def targets_source(report: Report) -> str | None:
    """Where the targets came from (``t.npy``, ``each file``), or None without targets;
    escaped for display."""
    info = report.input
    if info.several:
        return "each file" if report.targets is not None else None
    if info.targets is not None and info.target_column is not None:
        return f"column {display(repr(info.target_column))} of {display(info.targets)}"
    return None if info.targets is None else display(info.targets)


def sample_label(sample: SampleResult) -> str:
    """``sample 1`` for a 1-D batch, ``sample (1, 3)`` for N-D sample axes."""
    return f"sample {position_text(sample)}"


def short_number(value: float) -> str:
    """Short, exact enough for a person: 6 significant digits, and nan / inf / -inf."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.6g}"


# The measures each kind of listing shows, in declaration order.
TABLE_MEASURES = tuple(m for m in MEASURES if m.table)
DETAIL_MEASURES = tuple(m for m in MEASURES if m.json)


def measure_text(sample: SampleResult, measure: MeasureSpec) -> str:
    """A measure as a person reads it; ``-`` where it is undefined (a ``null`` in JSON), and
    ``low`` after it where the sample falls in the ``fail_on`` category that judges it."""
    value = sample.measures[measure.name]
    if measure.null and math.isnan(value):
        return "-"
    low = " low" if measure.category is not None and measure.category in sample.failing else ""
    return short_number(value) + low


def headroom_line(report: Report) -> str:
    """``headroom: min 85.3 nats (sample 1); 0 samples below 0``."""
    h = report.summary.headroom
    if h.min is None:
        return "headroom: undefined (no sample has a finite log-sum-exp)"
    lowest = next(report.results(np.array([h.index])))
    where = position_text(lowest) + (f" of {display(lowest.file)}" if lowest.file else "")
    below = f"{samples_count(h.below)} below {report.min_headroom:g}"
    return f"headroom: min {short_number(h.min)} nats (sample {where}); {below}"


def samples_count(n: int) -> str:
    """``1 sample``, ``3 samples``."""
    return f"{n} sample" if n == 1 else f"{n} samples"


def meaning(report: Report) -> str:
    """One sentence saying what the counts mean."""
    s = report.summary
    naive, stable = s.naive.breaks, s.stable.breaks
    if not naive and not stable:
        sentence = f"Neither implementation breaks on any of the {samples_count(s.samples)}"
    else:
        naive_part = f"on {naive} of {samples_count(s.samples)}" if naive else "on none"
        sentence = (
            f"The naive implementation breaks {naive_part}; the stable one on {stable or 'none'}"
        )
    inputs = []
    if s.input.nonfinite:
        inputs.append(f"{samples_count(s.input.nonfinite)} with NaN or +inf logits")
    if s.input.fully_masked:
        ignored = ", ignored as padding" if report.masked is MaskedMode.ignore else ""
        inputs.append(f"{samples_count(s.input.fully_masked)} fully masked (all -inf){ignored}")
    if s.input.out_of_range:
        inputs.append(
            f"{samples_count(s.input.out_of_range)} with values beyond {report.compute_dtype}'s "
            "range (+-inf once cast)"
        )
    if inputs:
        sentence += "; the input has " + " and ".join(inputs)
    return (
        sentence
        + "."
        + "".join(f" {own_meaning(report, i.name)}" for i in report.own_implementations)
    )


def own_meaning(report: Report, name: str) -> str:
    """``Your `online_softmax` breaks on 3 samples where the stable one breaks on none.``"""
    mine = report.breaks[name]
    count = int(mine.sum())
    if not count:
        stable = report.summary.stable.breaks
        return f"Your `{name}` breaks on none" + (
            f", where the stable one breaks on {stable}."
            if stable
            else ", nor does the stable one."
        )
    both = int((mine & report.breaks[STABLE.name]).sum())
    return (
        f"Your `{name}` breaks on {samples_count(count)} where the stable one breaks on "
        f"{both or 'none'}."
    )


def raised_flags(sample: SampleResult, flags: PathFlags) -> list[str]:
    """The implementation's true flags, then the sample's input flags, by name."""
    raised = [name for name in FLAG_NAMES if getattr(flags, name)]
    return raised + [name for name in INPUT_FLAG_NAMES if getattr(sample.input, name)]


def verdict_word(flags: PathFlags, raised: list[str]) -> str:
    """``BROKEN`` when it breaks, ``note`` when it only raised flags, else ``ok``."""
    return "BROKEN" if flags.breaks else "note" if raised else "ok"


def verdict_head(flags: PathFlags, raised: list[str]) -> str:
    """``BROKEN loss=inf`` / ``note loss=2000`` / ``ok loss=0.4`` (and ``error=`` when a
    user's implementation is inaccurate): a verdict before its flags."""
    verdict = verdict_word(flags, raised)
    if flags.loss is not None:
        verdict += f" loss={short_number(flags.loss)}"
    if flags.inaccurate and flags.error is not None:
        verdict += f" error={short_number(flags.error)}"
    return verdict


def path_verdict(sample: SampleResult, flags: PathFlags) -> str:
    """``BROKEN loss=inf: overflow, nan_prob`` / ``note loss=2000: underflow`` / ``ok loss=0.4``."""
    raised = raised_flags(sample, flags)
    verdict = verdict_head(flags, raised)
    return f"{verdict}: {', '.join(raised)}" if raised else verdict


def verdicts(report: Report, sample: SampleResult) -> str:
    """``naive <verdict>; stable <verdict>``: every implementation on one line."""
    return "; ".join(
        f"{i.name} {path_verdict(sample, sample.results[i.name])}" for i in report.implementations
    )


def target_text(sample: SampleResult) -> str:
    """The target as a person reads it: ``2``, ``-100 (ignored)`` or ``-`` for none."""
    if sample.target is None:
        return "-"
    return f"{sample.target} (ignored)" if sample.naive.loss is None else str(sample.target)


def policy_text(report: Report) -> str:
    """``--fail-on`` as given back: ``input,stable`` or ``none``."""
    return ",".join(c.value for c in report.fail_on) or "none"


def verdict_line(report: Report) -> str:
    """``passed: ...`` or ``FAILED --fail-on input,stable (input: 2)``, as the table says it."""
    policy = policy_text(report)
    if report.passed:
        return f"passed: no sample fails --fail-on {policy}"
    counts = ", ".join(
        f"{c.value}: {report.failing_count(c)}" for c in report.fail_on if report.failing_count(c)
    )
    return f"FAILED --fail-on {policy} ({counts})"


def listed_rows(report: Report, include_clean: bool, max_rows: int) -> tuple[np.ndarray, int]:
    """The indices a capped listing shows, worst first (``max_rows`` 0: all), and how many
    it hides; ``report.results`` makes the samples as a renderer reaches them."""
    listed = report.ordered(include_clean)
    shown = listed if max_rows <= 0 else listed[:max_rows]
    return shown, len(listed) - len(shown)
