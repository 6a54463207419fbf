"""The result of a check: per-sample columns, the verdicts on them as arrays, and the summary.

A dump can hold millions of samples, so per-sample results live in flat arrays, declared
once as the fields of two column sets: :class:`Findings` (what each implementation did,
and the input flags) and :class:`Measures` (numbers about the logits). A block of rows, a
file or a shard yields the same two column sets for its rows, and pieces combine by
position (:meth:`Columns.put`) or by concatenation (:meth:`Columns.concat`).

Every verdict (which samples break, are flagged, fall in a ``fail_on`` category) is a mask
computed once by the :class:`Report`; renderers ask for masks, counts and ordered indices
and only format. :class:`SampleResult` objects are made only for the samples a renderer
lists, a batch at a time.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import operator
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from softmax_cli.dtypes import COMPUTE_DTYPES
from softmax_cli.health import HealthSummary, row_chunks
from softmax_cli.options import Category, MaskedMode

if TYPE_CHECKING:
    from softmax_cli.baseline import Drift

# --- what can be wrong with a sample -------------------------------------------------------


class InputFlag(enum.IntFlag):
    """The input flags of the contract, one bit each; the JSON key is the lower-case name."""

    NONFINITE = 1 << 0  # a NaN or +inf in the file itself
    FULLY_MASKED = 1 << 1  # every entry -inf (in D)
    OUT_OF_RANGE = 1 << 2  # a finite value of the file that is +-inf in D (a cast overflow)

    @property
    def key(self) -> str:
        return self.name.lower()


class Flag(enum.IntFlag):
    """What an implementation can do wrong on a sample, one bit each (JSON: lower-case)."""

    OVERFLOW = 1 << 0
    UNDERFLOW = 1 << 1
    NAN_PROB = 1 << 2
    NAN_GRAD = 1 << 3
    # A user's implementation (--impl) whose loss is further than the tolerance from the
    # float64 reference; the built-in paths are the references' subjects, never flagged so.
    INACCURATE = 1 << 4

    @property
    def key(self) -> str:
        return self.name.lower()


# Underflow alone is a note: the stable loss stays finite when p[t] rounds to 0.
BREAKING = Flag.OVERFLOW | Flag.NAN_PROB | Flag.NAN_GRAD | Flag.INACCURATE
ALL_FLAGS = functools.reduce(operator.or_, Flag)
ALL_INPUT_FLAGS = functools.reduce(operator.or_, InputFlag)
BUILTIN_FLAGS = Flag.OVERFLOW | Flag.UNDERFLOW | Flag.NAN_PROB | Flag.NAN_GRAD
# What a user's function can be seen to do: its intermediates are its own business.
OWN_FLAGS = Flag.NAN_PROB | Flag.NAN_GRAD | Flag.INACCURATE


@dataclass(frozen=True)
class Implementation:
    """A softmax / cross-entropy implementation the check runs, and the flags it reports.

    ``builtin`` ones (naive, stable) are the contract's two paths. The others are a user's
    own (``--impl``): they are held to a float64 reference loss, so their rows carry an
    ``error`` column, and a non-finite loss breaks them only where the reference is finite
    (a target on a masked class has an infinite loss in every correct implementation).
    """

    name: str
    flags: Flag = BUILTIN_FLAGS
    builtin: bool = True

    @classmethod
    def own(cls, name: str) -> Implementation:
        """A user's implementation called ``name``."""
        return cls(name, OWN_FLAGS, builtin=False)

    @property
    def reported(self) -> tuple[Flag, ...]:
        """Its flags in declaration order (the order of the JSON keys and table rows)."""
        return tuple(f for f in Flag if f & self.flags)

    @property
    def rows(self) -> type[ImplRows]:
        """The column set of its per-sample results."""
        return ImplRows if self.builtin else OwnImplRows


NAIVE = Implementation("naive")
STABLE = Implementation("stable")
BUILTIN = (NAIVE, STABLE)


# --- per-sample columns --------------------------------------------------------------------


# A column's dtype that is the compute dtype's work dtype (float32 for float32, float16 and
# bfloat16, float64 for float64): the values computed in D fit it exactly, and the accurate
# ones (~1e-7) lose nothing a float32 does not hold. Given to :meth:`Columns.empty`.
WORK = None


def column(dtype: type | np.dtype | None, fill: Any, *, default: Any = dataclasses.MISSING) -> Any:
    """A per-sample column of ``dtype`` (``WORK``: the work dtype), ``fill`` where nothing
    was computed; ``default``, the field's value when none is given."""
    metadata = {"dtype": None if dtype is None else np.dtype(dtype), "fill": fill}
    return field(default=default, metadata=metadata)


class Columns:
    """Operations shared by every column set: each field is one array with an entry per
    sample, or a mapping of names to nested column sets (one per implementation)."""

    @classmethod
    def empty(
        cls, count: int, work: np.dtype | type = np.float64, **nested: Mapping[str, type[Columns]]
    ) -> Self:
        """``count`` rows of fill values, ``WORK`` columns in ``work``; ``nested`` gives the
        keys and column-set types of the mapping fields."""
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
            if "dtype" in spec.metadata:
                dtype = spec.metadata["dtype"] or np.dtype(work)
                values[spec.name] = np.full(count, spec.metadata["fill"], dtype)
            else:
                values[spec.name] = {k: t.empty(count, work) for k, t in nested[spec.name].items()}
        return cls(**values)

    def put(self, where: slice | np.ndarray, part: Self) -> None:
        """Write ``part``'s rows at ``where`` (a slice, or the row indices ``part`` holds).
        A mapping field of ``part`` may hold only some keys (the built-in paths of a block,
        before the user's implementations run on it)."""
        for name, mine in self._items():
            theirs = getattr(part, name)
            if isinstance(mine, np.ndarray):
                mine[where] = theirs
            else:
                for key, nested in theirs.items():
                    mine[key].put(where, nested)

    def take(self, where: slice | np.ndarray) -> Self:
        """The rows at ``where``, as a new column set."""
        values = {}
        for name, mine in self._items():
            if isinstance(mine, np.ndarray):
                values[name] = mine[where]
            else:
                values[name] = {key: nested.take(where) for key, nested in mine.items()}
        return type(self)(**values)

    @classmethod
    def concat(cls, parts: list[Self]) -> Self:
        """The parts' rows one after the other (files or shards checked as one dump)."""
        first = parts[0]
        values = {}
        for name, mine in first._items():
            if isinstance(mine, np.ndarray):
                values[name] = np.concatenate([getattr(p, name) for p in parts])
            else:
                values[name] = {
                    key: type(nested).concat([getattr(p, name)[key] for p in parts])
                    for key, nested in mine.items()
                }
        return cls(**values)

    def _items(self) -> Iterator[tuple[str, Any]]:
        for spec in dataclasses.fields(self):  # type: ignore[arg-type]
            yield spec.name, getattr(self, spec.name)

    def __len__(self) -> int:
        _, values = next(self._items())
        return len(values)


@dataclass(frozen=True, eq=False)
class ImplRows(Columns):
    """One implementation's results per sample: its :class:`Flag` bits and its loss."""

    flags: np.ndarray = column(np.uint8, 0)
    # A value of D: the built-in paths compute it there. NaN where the sample has no target.
    loss: np.ndarray = column(WORK, np.nan)


@dataclass(frozen=True, eq=False)
class OwnImplRows(ImplRows):
    """A user's implementation per sample: also the float64 reference loss it is held to
    and its ``error`` against it (NaN where either loss is not finite or there is no
    target). Its loss is kept in float64: a user's function may return any dtype."""

    loss: np.ndarray = column(np.float64, np.nan)
    reference: np.ndarray = column(np.float64, np.nan)
    error: np.ndarray = column(np.float64, np.nan)


@dataclass(frozen=True, eq=False)
class Findings(Columns):
    """What the check found per sample: input flags, and each implementation's results."""

    input: np.ndarray = column(np.uint8, 0)  # InputFlag bits
    has_target: np.ndarray = column(np.bool_, False)  # a target that is not ignored
    impls: Mapping[str, ImplRows] = field(default_factory=dict)
    # The naive loss was not computed, only proved to raise no flag: read off the stable
    # pass, within a few roundings of D (softmax_cli.fastpath.reduce_rows). Only a sample
    # that nothing lists may have it: the check computes the listed ones in full. None
    # given: no sample has it.
    naive_estimated: np.ndarray = column(np.bool_, False, default=None)

    def __post_init__(self) -> None:
        if self.naive_estimated is None:
            object.__setattr__(self, "naive_estimated", np.zeros(len(self.input), dtype=bool))

    @classmethod
    def blank(
        cls,
        count: int,
        implementations: tuple[Implementation, ...] = BUILTIN,
        work: np.dtype | type = np.float64,
    ) -> Self:
        """``count`` rows of fill values, the losses in ``work`` (the work dtype)."""
        return cls.empty(count, work, impls={i.name: i.rows for i in implementations})


_ALL = slice(None)


@dataclass(frozen=True, eq=False)
class Measures(Columns):
    """Numbers about each sample's logits in the compute dtype, shown beside the flags; each
    is kept in the work dtype (4 bytes a sample for float32 and narrower). ``log Z`` and the
    headroom are derived from them when asked (:meth:`column`)."""

    max_logit: np.ndarray = column(WORK, np.nan)
    # What the stable code in D computes: m + log(s), rounded to D.
    logsumexp: np.ndarray = column(WORK, np.nan)
    # log(sum(exp(x - m))) from the row's values in D without rounding to D, in [0,
    # log(classes)]: log Z = m + log_sum is then accurate to ~1e-7 (absolute) whatever m is.
    log_sum: np.ndarray = column(WORK, np.nan)
    # Of the stable softmax, in nats: 0 for a one-hot row, log(classes) for a uniform one.
    entropy: np.ndarray = column(WORK, np.nan)
    # Largest minus second-largest logit (how decided the row is); NaN with one class.
    margin: np.ndarray = column(WORK, np.nan)

    def log_partition_at(self, where: slice | np.ndarray = _ALL) -> np.ndarray:
        """log Z of the rows at ``where``, float64, accurate to ~1e-7; +-inf or NaN where
        the maximum is (masked, NaN and +inf rows)."""
        with np.errstate(invalid="ignore"):  # a signalling NaN's "invalid" in the cast
            log_partition = self.max_logit[where].astype(np.float64)
        np.add(
            log_partition, self.log_sum[where], out=log_partition, where=np.isfinite(log_partition)
        )
        return log_partition

    def headroom_at(self, log_max: float, where: slice | np.ndarray = _ALL) -> np.ndarray:
        """ln(max_finite(D)) - |log Z| of the rows at ``where`` (``log_max`` is D's
        ln(max_finite)), float64: how far each row is from the naive code's edge; NaN where
        log Z is not finite."""
        log_partition = self.log_partition_at(where)
        with np.errstate(invalid="ignore"):
            return np.where(np.isfinite(log_partition), log_max - np.abs(log_partition), np.nan)

    @property
    def log_partition(self) -> np.ndarray:
        """log Z of every row (a new float64 array; see :meth:`log_partition_at`)."""
        return self.log_partition_at()


@dataclass(frozen=True)
class MeasureSpec:
    """How a measure is shown: ``label`` heads its table column (if ``table``), ``json``
    puts it in each JSON sample, where NaN is ``null`` with ``null`` (the measure is
    undefined there) and ``"nan"`` otherwise; ``category`` is the ``fail_on`` category that
    judges it (a listing marks the samples that fall in it)."""

    name: str
    label: str
    table: bool = True
    json: bool = True
    null: bool = False
    category: Category | None = None


# The measures a sample shows, in the order of the JSON keys and table columns.
MEASURES: tuple[MeasureSpec, ...] = (
    MeasureSpec("max_logit", "max logit"),
    MeasureSpec("logsumexp", "logsumexp"),
    MeasureSpec("headroom", "headroom", null=True, category=Category.headroom),
    MeasureSpec("entropy", "entropy", table=False, null=True),
    MeasureSpec("margin", "margin", table=False, null=True),
)


# --- one sample, for the renderers ---------------------------------------------------------


@dataclass(frozen=True)
class InputFlags:
    """The input flags of one sample, by name."""

    nonfinite: bool
    fully_masked: bool
    out_of_range: bool


@dataclass(frozen=True)
class PathFlags:
    """One implementation's verdict on one sample; ``nan_grad`` and ``loss`` are None
    without a target. ``breaks`` comes from the report's masks. A user's implementation
    also has ``inaccurate`` and its ``error`` (None where it has none)."""

    overflow: bool
    underflow: bool
    nan_prob: bool
    nan_grad: bool | None
    loss: float | None
    breaks: bool
    inaccurate: bool = False
    error: float | None = None


@dataclass(frozen=True)
class SampleResult:
    """One sample as a renderer shows it. Each measure is an attribute (``max_logit``)."""

    index: int
    position: tuple[int, ...]  # within the sample's own file
    target: int | None
    measures: Mapping[str, float]
    input: InputFlags
    results: Mapping[str, PathFlags]  # by implementation name, in the report's order
    flagged: bool
    failing: tuple[Category, ...]  # the fail_on categories this sample falls in
    file: str | None = None  # its logits file, when several files are checked as one dump

    def __getattr__(self, name: str) -> float:
        # Only reached for names that are not fields: the declared measures.
        try:
            return self.__dict__["measures"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def naive(self) -> PathFlags:
        return self.results[NAIVE.name]

    @property
    def stable(self) -> PathFlags:
        return self.results[STABLE.name]

    @property
    def fails(self) -> bool:
        """Does this sample fall in a ``fail_on`` category (an error, not a note, in CI)."""
        return bool(self.failing)


# --- summary -------------------------------------------------------------------------------


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
class OwnImplSummary:
    """A user's implementation over the samples (the contract's ``summary.impls`` keys)."""

    nan_prob: int
    nan_grad: int
    inf_loss: int
    nan_loss: int
    inaccurate: int
    breaks: int
    max_error: float | None  # the largest finite error; None without any


@dataclass(frozen=True)
class InputSummary:
    nonfinite: int
    fully_masked: int
    out_of_range: int


@dataclass(frozen=True)
class HeadroomSummary:
    """The smallest headroom, the sample that has it, and how many are below the threshold."""

    min: float | None
    index: int | None
    below: int


@dataclass(frozen=True)
class Summary:
    samples: int
    flagged: int
    input: InputSummary
    impls: Mapping[str, PathSummary | OwnImplSummary]
    headroom: HeadroomSummary
    health: HealthSummary | None = None

    @property
    def naive(self) -> PathSummary:
        return self.impls[NAIVE.name]

    @property
    def stable(self) -> PathSummary:
        return self.impls[STABLE.name]


# --- where the logits came from ------------------------------------------------------------


@dataclass(frozen=True)
class FileInfo:
    """One logits file of several checked as one dump, and where its samples start."""

    logits: str
    targets: str | None
    shape: tuple[int, ...]
    dtype: str
    class_axis: int
    first_index: int  # the flat index, across the files, of this file's first sample

    @property
    def sample_shape(self) -> tuple[int, ...]:
        axis = self.class_axis % len(self.shape)
        return self.shape[:axis] + self.shape[axis + 1 :]

    @property
    def samples(self) -> int:
        return int(np.prod(self.sample_shape, dtype=np.int64))


@dataclass(frozen=True)
class InputInfo:
    """Where the logits came from and how they were read.

    Several files checked as one dump are listed in ``files`` (empty for one file); then
    ``logits`` is a label for them all, ``shape`` is (samples, classes) over all of them,
    and a sample's position is within its own file (see :meth:`locate`).
    """

    logits: str
    targets: str | None
    shape: tuple[int, ...]
    dtype: str
    class_axis: int
    files: tuple[FileInfo, ...] = ()
    target_column: str | None = None  # the CSV column the targets came from, as written

    @classmethod
    def of_files(cls, label: str, files: tuple[FileInfo, ...]) -> InputInfo:
        """The input of several files, ``label`` naming them together."""
        first = files[0]
        samples = sum(f.samples for f in files)
        dtypes = "/".join(dict.fromkeys(f.dtype for f in files))
        classes = first.shape[first.class_axis]
        # Each file names its own targets (see ``files``).
        return cls(label, None, (samples, classes), dtypes, first.class_axis, files)

    @property
    def several(self) -> bool:
        return bool(self.files)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        if self.files:
            return self.shape[:1]
        axis = self.class_axis % len(self.shape)
        return self.shape[:axis] + self.shape[axis + 1 :]

    @property
    def classes(self) -> int:
        if self.files:
            return self.shape[-1]
        return self.shape[self.class_axis]

    def locate(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For flat indices across the files: which file holds each, and its flat index
        within that file."""
        firsts = np.array([f.first_index for f in self.files], dtype=np.int64)
        which = np.searchsorted(firsts, indices, side="right") - 1
        return which, indices - firsts[which]


# --- the report ----------------------------------------------------------------------------

_LIST_BATCH = 4096  # samples made per batch: column values are read with one tolist() each


def _count(mask: np.ndarray) -> int:
    return int(np.count_nonzero(mask))


@dataclass(frozen=True, eq=False)
class Report:
    """Everything a check found: what a renderer shows and what a CI job gates on."""

    input: InputInfo
    compute_dtype: str
    fail_on: tuple[Category, ...]
    findings: Findings
    measures: Measures
    targets: np.ndarray | None  # int64 as given (ignored ones keep the ignore index)
    implementations: tuple[Implementation, ...] = BUILTIN
    masked: MaskedMode = MaskedMode.flag
    min_headroom: float = 0.0  # the category headroom holds samples below this
    # Seconds the check took, when the caller measured it (the CLI); renderers stay pure.
    elapsed: float | None = None
    # With sweep: the same check in every compute dtype, widest first (softmax_cli.sweep).
    sweep: tuple[Report, ...] = ()
    # The comparison with a --baseline report, when one was given (category regression).
    drift: Drift | None = None

    def __len__(self) -> int:
        return len(self.findings)

    # -- verdicts, once, as arrays --

    def has(self, flag: InputFlag) -> np.ndarray:
        return (self.findings.input & int(flag)) != 0

    def flag(self, implementation: str, flag: Flag) -> np.ndarray:
        return (self.findings.impls[implementation].flags & int(flag)) != 0

    def nonfinite_loss(self, implementation: str) -> np.ndarray:
        return self.findings.has_target & ~np.isfinite(self.findings.impls[implementation].loss)

    @property
    def own_implementations(self) -> tuple[Implementation, ...]:
        """The user's implementations (``--impl``), in the order given."""
        return tuple(i for i in self.implementations if not i.builtin)

    @cached_property
    def ignored(self) -> np.ndarray:
        """Samples no implementation is blamed for: fully masked rows under ``masked=ignore``
        (padding that is meant to be there; any softmax is NaN on it)."""
        if self.masked is MaskedMode.ignore:
            return self.has(InputFlag.FULLY_MASKED)
        return np.zeros(len(self), dtype=bool)

    @cached_property
    def breaks(self) -> Mapping[str, np.ndarray]:
        """Per implementation and sample: overflow, a NaN probability or gradient, a loss
        too far from the reference, or a non-finite loss (for a user's implementation, one
        where the reference is finite). Underflow alone is a note; never on an ignored
        sample."""
        masks = {}
        for i in self.implementations:
            rows = self.findings.impls[i.name]
            bad_loss = self.nonfinite_loss(i.name)
            if not i.builtin:
                bad_loss &= np.isfinite(rows.reference)
            masks[i.name] = (((rows.flags & int(BREAKING)) != 0) | bad_loss) & ~self.ignored
        return MappingProxyType(masks)

    @cached_property
    def log_max(self) -> float:
        """ln(max_finite(D)) of the compute dtype: the edge the headroom is measured from."""
        return COMPUTE_DTYPES[self.compute_dtype].log_max

    def measure(self, name: str, where: slice | np.ndarray = _ALL) -> np.ndarray:
        """A shown measure (see ``MEASURES``) of the rows at ``where``: a stored column's
        values, or the headroom derived from them (float64)."""
        if name == "headroom":
            return self.measures.headroom_at(self.log_max, where)
        return getattr(self.measures, name)[where]

    @property
    def headroom(self) -> np.ndarray:
        """Every sample's headroom (a new float64 array: see :meth:`Measures.headroom_at`)."""
        return self.measure("headroom")

    def _chunks(self) -> Iterator[slice]:
        """A derived measure (headroom) is reduced over a whole dump a chunk at a time."""
        return row_chunks(len(self))

    @cached_property
    def below_headroom(self) -> np.ndarray:
        """Samples whose headroom is below ``min_headroom`` (undefined headroom is not)."""
        mask = np.empty(len(self), dtype=bool)
        with np.errstate(invalid="ignore"):
            for rows in self._chunks():
                mask[rows] = self.measure("headroom", rows) < self.min_headroom
        return mask

    def _lowest_headroom(self) -> tuple[float | None, int | None]:
        """The smallest defined headroom and the first sample that has it."""
        best: tuple[float, int] | None = None
        for rows in self._chunks():
            headroom = self.measure("headroom", rows)
            defined = np.isfinite(headroom)
            if not defined.any():
                continue
            at = int(np.argmin(np.where(defined, headroom, np.inf)))
            if best is None or headroom[at] < best[0]:
                best = (float(headroom[at]), rows.start + at)
        return (None, None) if best is None else best

    @cached_property
    def flagged(self) -> np.ndarray:
        """Per sample: any flag set, any loss non-finite, or (with ``headroom`` in
        ``fail_on``) a headroom below the threshold, so that every failing sample is listed."""
        mask = self.findings.input != 0
        for i in self.implementations:
            mask = mask | (self.findings.impls[i.name].flags != 0) | self.nonfinite_loss(i.name)
        if Category.headroom in self.fail_on:
            mask = mask | self.below_headroom
        if Category.regression in self.fail_on:
            mask = mask | self.category(Category.regression)
        return mask

    @cached_property
    def failing(self) -> Mapping[Category, np.ndarray]:
        """Per ``fail_on`` category, the samples that fall in it."""
        return MappingProxyType({c: self.category(c) for c in self.fail_on})

    def category(self, category: Category) -> np.ndarray:
        """The samples that fall in ``category``, whether or not ``fail_on`` holds it."""
        match category:
            case Category.input:
                return (self.findings.input != 0) & ~self.ignored
            case Category.headroom:
                return self.below_headroom
            case Category.stable:
                return self.breaks[STABLE.name]
            case Category.naive:
                return self.breaks[NAIVE.name]
            case Category.impl:
                mask = np.zeros(len(self), dtype=bool)
                for i in self.own_implementations:
                    mask |= self.breaks[i.name]
                return mask
            case Category.regression:
                if self.drift is None:
                    return np.zeros(len(self), dtype=bool)
                return self.drift.regression

    @cached_property
    def fails(self) -> np.ndarray:
        """Per sample: does it fall in any ``fail_on`` category."""
        mask = np.zeros(len(self), dtype=bool)
        for category_mask in self.failing.values():
            mask |= category_mask
        return mask

    @property
    def passed(self) -> bool:
        """No sample falls in any of the ``fail_on`` categories."""
        return not self.fails.any()

    def failing_count(self, category: Category) -> int:
        """How many samples fall in a ``fail_on`` category."""
        return _count(self.failing[category])

    @cached_property
    def severity(self) -> np.ndarray:
        """0: the stable and another implementation break, 1: the stable one only, 2: only
        others, 3: a note, 4: clean. Worst first is ascending severity."""
        stable = self.breaks[STABLE.name]
        others = np.zeros(len(self), dtype=bool)
        for name, mask in self.breaks.items():
            if name != STABLE.name:
                others |= mask
        rank = np.full(len(self), 4, dtype=np.int8)
        rank[self.flagged] = 3
        rank[others & ~stable] = 2
        rank[stable & ~others] = 1
        rank[stable & others] = 0
        return rank

    @cached_property
    def summary(self) -> Summary:
        def impl_summary(i: Implementation) -> PathSummary | OwnImplSummary:
            has_target = self.findings.has_target
            rows = self.findings.impls[i.name]
            counts = {
                **{f.key: _count(self.flag(i.name, f)) for f in i.reported},
                "inf_loss": _count(has_target & np.isinf(rows.loss)),
                "nan_loss": _count(has_target & np.isnan(rows.loss)),
                "breaks": _count(self.breaks[i.name]),
            }
            if i.builtin:
                return PathSummary(**counts)
            errors = rows.error[np.isfinite(rows.error)]
            return OwnImplSummary(**counts, max_error=float(errors.max()) if len(errors) else None)

        lowest, index = self._lowest_headroom()
        return Summary(
            samples=len(self),
            flagged=_count(self.flagged),
            input=InputSummary(**{f.key: _count(self.has(f)) for f in InputFlag}),
            impls=MappingProxyType({i.name: impl_summary(i) for i in self.implementations}),
            headroom=HeadroomSummary(min=lowest, index=index, below=_count(self.below_headroom)),
            health=HealthSummary.of(
                self.measures, self.findings.impls[STABLE.name].loss, self.findings.has_target
            ),
        )

    # -- listing --

    def ordered(self, include_clean: bool = False, where: np.ndarray | None = None) -> np.ndarray:
        """Flat indices of the flagged samples (every sample with ``include_clean``; only
        those in the mask ``where`` if given), worst first, then by index."""
        if include_clean and self.findings.naive_estimated.any():
            # A check made for listed samples only (check_loaded(listed_only=True)) has
            # no naive loss of its own for the clean ones.
            raise ValueError("every sample is listed, but this check computed listed ones only")
        mask = np.ones(len(self), dtype=bool) if include_clean else self.flagged
        if where is not None:
            mask = mask & where
        chosen = np.flatnonzero(mask)
        # A stable sort by severity keeps the indices ascending within each level.
        return chosen[np.argsort(self.severity[chosen], kind="stable")]

    def samples(
        self, include_clean: bool = False, shortest: bool = False
    ) -> Iterator[SampleResult]:
        """The listed samples, worst first, made a batch at a time (``shortest``: see
        :meth:`results`)."""
        yield from self.results(self.ordered(include_clean), shortest)

    def sample(self, index: int) -> SampleResult:
        """One sample's result."""
        return next(self.results(np.array([index])))

    def results(self, indices: np.ndarray, shortest: bool = False) -> Iterator[SampleResult]:
        """The samples at ``indices``, in that order. Column values are read a batch at a
        time with ``tolist()`` (plain Python numbers: a report may list millions). With
        ``shortest`` a float32 value is the float of its shortest decimal (0.1, not
        0.10000000149011612), for formats that print every digit (JSON); without, it is
        exact, for formats that round it (to 6 digits: the shortest decimal rounded again
        could differ in the last one)."""
        floats = _shortest if shortest else _exact
        info = self.input
        names = [i.name for i in self.implementations]
        for start in range(0, len(indices), _LIST_BATCH):
            at = np.asarray(indices[start : start + _LIST_BATCH], dtype=np.int64)
            places = _places(info, at)
            input_bits = self.findings.input[at].tolist()
            has_target = self.findings.has_target[at].tolist()
            targets = None if self.targets is None else self.targets[at].tolist()
            measures = {m.name: floats(self.measure(m.name, at)) for m in MEASURES}
            impl_bits = {n: self.findings.impls[n].flags[at].tolist() for n in names}
            impl_loss = {n: floats(self.findings.impls[n].loss[at]) for n in names}
            impl_error = {
                i.name: self.findings.impls[i.name].error[at].tolist()
                for i in self.own_implementations
            }
            breaks = {n: self.breaks[n][at].tolist() for n in names}
            flagged = self.flagged[at].tolist()
            failing = {c: m[at].tolist() for c, m in self.failing.items()}
            for k, (index, (file, position)) in enumerate(zip(at.tolist(), places, strict=True)):
                bits = input_bits[k]
                with_target = has_target[k]
                results = {}
                for n in names:
                    b = impl_bits[n][k]
                    flags = {key: bool(b & bit) for key, bit in _FLAG_BITS}
                    if not with_target:
                        flags["nan_grad"] = None
                    if n in impl_error:
                        error = impl_error[n][k]
                        flags["error"] = None if error != error else error  # NaN: none
                    results[n] = PathFlags(
                        **flags, loss=impl_loss[n][k] if with_target else None, breaks=breaks[n][k]
                    )
                yield SampleResult(
                    index=index,
                    position=position,
                    target=None if targets is None else targets[k],
                    measures={name: values[k] for name, values in measures.items()},
                    input=InputFlags(**{key: bool(bits & bit) for key, bit in _INPUT_BITS}),
                    results=results,
                    flagged=flagged[k],
                    failing=tuple(c for c, m in failing.items() if m[k]),
                    file=file,
                )


def _shortest(values: np.ndarray) -> list[float]:
    """Python floats of ``values``, a float32 one as its shortest decimal: printed in full,
    it shows no digit the stored value does not have.

    NumPy's own shortest repr (``astype(str)``) takes some 2 us a value, too slow for
    listings of millions. Vectorised instead: every float32 has a decimal of at most 9
    significant digits that rounds back to it, and one of 6 stands for any shorter one
    (6-digit steps are coarser than float32's), so for p = 6..9 round to p digits and keep
    the first that rounds back. With ``|k| <= 22`` decimal places the power of ten is exact
    and ``N / 10**k`` (or ``N * 10**-k``) the double nearest the decimal, whose repr is
    then those digits; the rare values beyond (below 1e-14, above 1e27) take NumPy's repr.
    """
    if values.dtype != np.float32:
        return values.tolist()
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        exact = values.astype(np.float64)
        binade = np.floor(np.log10(np.abs(exact)))
        plain = np.isfinite(binade) & (binade >= 8 - 22) & (binade <= 5 + 22)
        out = exact.copy()
        todo = plain.copy()
        for digits in range(6, 10):
            k = digits - 1 - binade
            scale = np.power(10.0, np.abs(k))
            up = k >= 0
            n = np.where(up, np.round(exact * scale), np.round(exact / scale))
            decimal = np.where(up, n / scale, n * scale)
            found = todo & (decimal.astype(np.float32) == values)
            out[found] = decimal[found]
            todo &= ~found
            if not todo.any():
                break
    rest = np.flatnonzero(~plain & np.isfinite(exact))
    if len(rest):
        out[rest] = values[rest].astype(str).astype(np.float64)
    return out.tolist()


def _exact(values: np.ndarray) -> list[float]:
    return values.tolist()


# (key, bit) pairs as plain ints: the listing loop tests bits millions of times.
_FLAG_BITS = tuple((f.key, int(f)) for f in Flag)
_INPUT_BITS = tuple((f.key, int(f)) for f in InputFlag)


def _places(info: InputInfo, at: np.ndarray) -> list[tuple[str | None, tuple[int, ...]]]:
    """(file, position within it) for each flat index of a batch: the file is None for a
    single-file input."""
    if not info.files:
        shape = info.sample_shape
        return [(None, _unravel(i, shape)) for i in at.tolist()]
    which, local = info.locate(at)
    files = info.files
    return [
        (files[w].logits, _unravel(i, files[w].sample_shape))
        for w, i in zip(which.tolist(), local.tolist(), strict=True)
    ]


def _unravel(index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """``np.unravel_index`` for one index, in C order, without NumPy's per-call overhead."""
    position = []
    for size in reversed(shape):
        index, at = divmod(index, size)
        position.append(at)
    return tuple(reversed(position))
