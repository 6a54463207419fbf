"""The result of a check: per-sample flags kept compactly, a summary, and the verdict.

A dump can hold millions of samples, so per-sample results live in a few flat arrays
(:class:`RowTable`: flags as bits, losses and two floats); :class:`SampleResult` objects
are made only for the samples a renderer lists.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from softmax_cli.errors import UsageError


class RowFlag(enum.IntFlag):
    """One bit per flag of the contract, plus whether the row has a (non-ignored) target."""

    NONFINITE = 1 << 0
    FULLY_MASKED = 1 << 1
    NAIVE_OVERFLOW = 1 << 2
    NAIVE_UNDERFLOW = 1 << 3
    NAIVE_NAN_PROB = 1 << 4
    NAIVE_NAN_GRAD = 1 << 5
    STABLE_OVERFLOW = 1 << 6
    STABLE_UNDERFLOW = 1 << 7
    STABLE_NAN_PROB = 1 << 8
    STABLE_NAN_GRAD = 1 << 9
    HAS_TARGET = 1 << 10


class Path(enum.Enum):
    """The two implementations compared, with the bits of their flags."""

    naive = (RowFlag.NAIVE_OVERFLOW, RowFlag.NAIVE_UNDERFLOW, RowFlag.NAIVE_NAN_PROB,
             RowFlag.NAIVE_NAN_GRAD)  # fmt: skip
    stable = (RowFlag.STABLE_OVERFLOW, RowFlag.STABLE_UNDERFLOW, RowFlag.STABLE_NAN_PROB,
              RowFlag.STABLE_NAN_GRAD)  # fmt: skip

    @property
    def overflow(self) -> RowFlag:
        return self.value[0]

    @property
    def underflow(self) -> RowFlag:
        return self.value[1]

    @property
    def nan_prob(self) -> RowFlag:
        return self.value[2]

    @property
    def nan_grad(self) -> RowFlag:
        return self.value[3]


INPUT_FLAGS = RowFlag.NONFINITE | RowFlag.FULLY_MASKED
ANY_FLAG = RowFlag((1 << 10) - 1)


class Category(enum.StrEnum):
    """What ``--fail-on`` can name (``any`` and ``none`` are shorthands, see parse_fail_on)."""

    input = "input"
    stable = "stable"
    naive = "naive"


DEFAULT_FAIL_ON: tuple[Category, ...] = (Category.input, Category.stable)


def parse_fail_on(spec: str | Iterable[str]) -> tuple[Category, ...]:
    """``"input,stable"`` -> categories; ``any`` is all three, ``none`` is none."""
    words = spec.split(",") if isinstance(spec, str) else list(spec)
    chosen: list[Category] = []
    for word in (w.strip().lower() for w in words):
        if word == "any":
            chosen.extend(Category)
        elif word == "none":
            continue
        elif word in Category.__members__:
            chosen.append(Category(word))
        else:
            allowed = ", ".join([*Category.__members__, "any", "none"])
            raise UsageError(f"--fail-on: unknown category {word!r} (choose from {allowed})")
    return tuple(c for c in Category if c in chosen)


@dataclass(frozen=True)
class InputFlags:
    nonfinite: bool
    fully_masked: bool


@dataclass(frozen=True)
class PathFlags:
    """One path's verdict on one sample; ``nan_grad`` and ``loss`` are None without a target."""

    overflow: bool
    underflow: bool
    nan_prob: bool
    nan_grad: bool | None
    loss: float | None

    @property
    def breaks(self) -> bool:
        """Overflow, a NaN probability or gradient, or a non-finite loss (underflow is a note)."""
        loss_broken = self.loss is not None and not np.isfinite(self.loss)
        return self.overflow or self.nan_prob or bool(self.nan_grad) or loss_broken


@dataclass(frozen=True)
class SampleResult:
    index: int
    position: tuple[int, ...]
    target: int | None
    max_logit: float
    logsumexp: float
    input: InputFlags
    naive: PathFlags
    stable: PathFlags

    @property
    def flagged(self) -> bool:
        return bool(
            self.input.nonfinite or self.input.fully_masked or self.naive.breaks
            or self.stable.breaks or self.naive.underflow or self.stable.underflow
        )  # fmt: skip


@dataclass(frozen=True, eq=False)
class RowTable:
    """Per-sample results as flat arrays, one entry per sample in flat (C) order."""

    flags: np.ndarray  # uint16 RowFlag bits
    targets: np.ndarray | None  # int64 as given (ignored ones keep the ignore index)
    naive_loss: np.ndarray  # float64, meaningful where HAS_TARGET
    stable_loss: np.ndarray
    max_logit: np.ndarray  # float64
    logsumexp: np.ndarray

    def __len__(self) -> int:
        return len(self.flags)

    def has(self, flag: RowFlag) -> np.ndarray:
        return (self.flags & int(flag)) != 0

    def loss(self, path: Path) -> np.ndarray:
        return self.naive_loss if path is Path.naive else self.stable_loss

    def nonfinite_loss(self, path: Path) -> np.ndarray:
        return self.has(RowFlag.HAS_TARGET) & ~np.isfinite(self.loss(path))

    def breaks(self, path: Path) -> np.ndarray:
        """Per sample: does this path break (overflow, NaN probability or gradient, bad loss)."""
        bits = int(path.overflow | path.nan_prob | path.nan_grad)
        return ((self.flags & bits) != 0) | self.nonfinite_loss(path)

    @cached_property
    def flagged(self) -> np.ndarray:
        """Per sample: any flag set or any loss non-finite."""
        return (
            ((self.flags & int(ANY_FLAG)) != 0)
            | self.nonfinite_loss(Path.naive)
            | self.nonfinite_loss(Path.stable)
        )

    @cached_property
    def severity(self) -> np.ndarray:
        """0 both paths break, 1 only the stable one, 2 only the naive one, 3 a note, 4 clean."""
        naive, stable = self.breaks(Path.naive), self.breaks(Path.stable)
        rank = np.full(len(self), 4, dtype=np.int8)
        rank[self.flagged] = 3
        rank[naive & ~stable] = 2
        rank[stable & ~naive] = 1
        rank[naive & stable] = 0
        return rank


@dataclass(frozen=True)
class PathSummary:
    overflow: int
    underflow: int
    nan_prob: int
    nan_grad: int
    inf_loss: int
    nan_loss: int
    breaks: int


@dataclass(frozen=True)
class InputSummary:
    nonfinite: int
    fully_masked: int


@dataclass(frozen=True)
class Summary:
    samples: int
    flagged: int
    input: InputSummary
    naive: PathSummary
    stable: PathSummary

    @classmethod
    def of(cls, rows: RowTable) -> Summary:
        def count(mask: np.ndarray) -> int:
            return int(np.count_nonzero(mask))

        def path_summary(path: Path) -> PathSummary:
            with_target = rows.has(RowFlag.HAS_TARGET)
            loss = rows.loss(path)
            return PathSummary(
                overflow=count(rows.has(path.overflow)),
                underflow=count(rows.has(path.underflow)),
                nan_prob=count(rows.has(path.nan_prob)),
                nan_grad=count(rows.has(path.nan_grad)),
                inf_loss=count(with_target & np.isinf(loss)),
                nan_loss=count(with_target & np.isnan(loss)),
                breaks=count(rows.breaks(path)),
            )

        return cls(
            samples=len(rows),
            flagged=count(rows.flagged),
            input=InputSummary(
                nonfinite=count(rows.has(RowFlag.NONFINITE)),
                fully_masked=count(rows.has(RowFlag.FULLY_MASKED)),
            ),
            naive=path_summary(Path.naive),
            stable=path_summary(Path.stable),
        )

    def failing(self, category: Category) -> int:
        """How many samples fall in a ``--fail-on`` category."""
        if category is Category.input:
            return self.input.nonfinite + self.input.fully_masked
        return (self.stable if category is Category.stable else self.naive).breaks


@dataclass(frozen=True)
class InputInfo:
    """Where the logits came from and how they were read."""

    logits: str
    targets: str | None
    shape: tuple[int, ...]
    dtype: str
    class_axis: int

    @property
    def sample_shape(self) -> tuple[int, ...]:
        axis = self.class_axis % len(self.shape)
        return self.shape[:axis] + self.shape[axis + 1 :]

    @property
    def classes(self) -> int:
        return self.shape[self.class_axis]


@dataclass(frozen=True, eq=False)
class Report:
    """Everything a check found: what a renderer shows and what a CI job gates on."""

    input: InputInfo
    compute_dtype: str
    fail_on: tuple[Category, ...]
    rows: RowTable
    # Seconds the check took, when the caller measured it (the CLI); renderers stay pure.
    elapsed: float | None = None

    @cached_property
    def summary(self) -> Summary:
        return Summary.of(self.rows)

    @property
    def passed(self) -> bool:
        """No sample falls in any of the ``fail_on`` categories."""
        return not any(self.summary.failing(c) for c in self.fail_on)

    def failing_categories(self, sample: SampleResult) -> tuple[Category, ...]:
        """The ``fail_on`` categories this sample falls in (none: a note, not a failure)."""
        by_category = {
            Category.input: sample.input.nonfinite or sample.input.fully_masked,
            Category.stable: sample.stable.breaks,
            Category.naive: sample.naive.breaks,
        }
        return tuple(c for c in self.fail_on if by_category[c])

    def fails(self, sample: SampleResult) -> bool:
        """Does this sample fall in a ``fail_on`` category (an error, not a warning, in CI)."""
        return bool(self.failing_categories(sample))

    def ordered_indices(self, include_clean: bool = False) -> np.ndarray:
        """Flat indices of the flagged samples (every sample with ``include_clean``), worst
        first: both paths break, then the stable one only, the naive one only, then notes."""
        rows = self.rows
        chosen = np.arange(len(rows)) if include_clean else np.flatnonzero(rows.flagged)
        # lexsort is stable and sorts by the last key first: severity, then index.
        return chosen[np.lexsort((chosen, rows.severity[chosen]))]

    def samples(self, include_clean: bool = False) -> Iterator[SampleResult]:
        """The listed samples, worst first, made one at a time."""
        for index in self.ordered_indices(include_clean):
            yield self.sample(int(index))

    def sample(self, index: int) -> SampleResult:
        """One sample's result, made from the table (plain int bit tests: this runs once
        per listed sample, and a report may list millions)."""
        rows = self.rows
        bits = int(rows.flags[index])
        has_target = bool(bits & _HAS_TARGET)

        def path_flags(path: Path) -> PathFlags:
            overflow, underflow, nan_prob, nan_grad = _PATH_BITS[path]
            return PathFlags(
                overflow=bool(bits & overflow),
                underflow=bool(bits & underflow),
                nan_prob=bool(bits & nan_prob),
                nan_grad=bool(bits & nan_grad) if has_target else None,
                loss=float(rows.loss(path)[index]) if has_target else None,
            )

        return SampleResult(
            index=index,
            position=_unravel(index, self.input.sample_shape),
            target=None if rows.targets is None else int(rows.targets[index]),
            max_logit=float(rows.max_logit[index]),
            logsumexp=float(rows.logsumexp[index]),
            input=InputFlags(
                nonfinite=bool(bits & _NONFINITE),
                fully_masked=bool(bits & _FULLY_MASKED),
            ),
            naive=path_flags(Path.naive),
            stable=path_flags(Path.stable),
        )


_HAS_TARGET = int(RowFlag.HAS_TARGET)
_NONFINITE = int(RowFlag.NONFINITE)
_FULLY_MASKED = int(RowFlag.FULLY_MASKED)
_PATH_BITS = {path: tuple(int(flag) for flag in path.value) for path in Path}


def _unravel(index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """``np.unravel_index`` for one index, in C order, without NumPy's per-call overhead."""
    position = []
    for size in reversed(shape):
        index, at = divmod(index, size)
        position.append(at)
    return tuple(reversed(position))
