"""What a check can be asked to do: the option enums and one frozen, validated options object.

This module sits low (it imports only errors), so the library, the configuration file and
the CLI share one definition of each choice. Options are validated when they are made,
before any work: a bad ``fail_on`` is reported at once, not after a long computation.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass

from softmax_cli.errors import OptionError


class DtypeName(enum.StrEnum):
    """What ``dtype`` (``--dtype``) accepts."""

    auto = "auto"
    float64 = "float64"
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"


# Names people and frameworks also use for the same dtypes.
DTYPE_ALIASES = {"fp64": "float64", "fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class OutputFormat(enum.StrEnum):
    """What ``--format`` (and ``--report FORMAT=PATH``) accepts."""

    table = "table"
    json = "json"
    junit = "junit"
    github = "github"
    markdown = "markdown"


class Category(enum.StrEnum):
    """What ``fail_on`` can name (``any`` and ``none`` are shorthands, see parse_fail_on)."""

    input = "input"
    stable = "stable"
    naive = "naive"
    impl = "impl"  # a user's implementation (--impl) breaks
    headroom = "headroom"
    regression = "regression"  # worse than the --baseline report (see baseline.py)


class MaskedMode(enum.StrEnum):
    """What ``masked`` (``--masked``) accepts: how fully masked rows (all ``-inf``) count."""

    flag = "flag"  # an input finding that breaks both implementations
    ignore = "ignore"  # padding meant to be there: counted and listed as a note only


DEFAULT_FAIL_ON: tuple[Category, ...] = (Category.input, Category.stable)


def parse_fail_on(spec: str | Iterable[str]) -> tuple[Category, ...]:
    """``"input,stable"`` -> categories in declaration order; ``any`` is all, ``none`` none."""
    words = spec.split(",") if isinstance(spec, str) else list(spec)
    chosen: set[Category] = set()
    for word in words:
        word = str(word).strip().lower()
        if word == "any":
            chosen.update(Category)
        elif word in Category.__members__:
            chosen.add(Category(word))
        elif word != "none":
            allowed = ", ".join([*Category.__members__, "any", "none"])
            raise OptionError(
                "fail_on", f"{{option}}: unknown category {word!r} (choose from {allowed})"
            )
    return tuple(c for c in Category if c in chosen)


_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


@dataclass(frozen=True)
class CheckOptions:
    """How to check: the compute dtype, the axes, the ignore index and the failing policy.

    Made through :meth:`of`, which validates every value and names the parameter of any
    bad one (``class_axis``, ``fail_on``); whether ``class_axis`` fits the array is checked
    against the array itself (see :mod:`softmax_cli.validate`).
    """

    dtype: DtypeName = DtypeName.auto
    class_axis: int = -1
    ignore_index: int = -100
    fail_on: tuple[Category, ...] = DEFAULT_FAIL_ON
    masked: MaskedMode = MaskedMode.flag
    min_headroom: float = 0.0
    sweep: bool = False  # also run the whole check in every compute dtype

    @classmethod
    def of(
        cls,
        dtype: str = "auto",
        class_axis: int = -1,
        ignore_index: int = -100,
        fail_on: str | Iterable[str] = DEFAULT_FAIL_ON,
        masked: str = "flag",
        min_headroom: float | None = None,
        sweep: bool = False,
    ) -> CheckOptions:
        """Validated options. Giving ``min_headroom`` adds ``headroom`` to ``fail_on``;
        ``sweep`` also runs the check in float64, float32, bfloat16 and float16."""
        try:
            name = str(dtype).lower()
            dtype_name = DtypeName(DTYPE_ALIASES.get(name, name))
        except ValueError:
            choices = ", ".join([*(d.value for d in DtypeName), *DTYPE_ALIASES])
            raise OptionError(
                "dtype", f"{{option}}: unknown dtype {dtype!r} (choose from {choices})"
            ) from None
        for name, value in (("class_axis", class_axis), ("ignore_index", ignore_index)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise OptionError(name, f"{{option}} must be an integer, not {value!r}")
        if not _INT64_MIN <= ignore_index <= _INT64_MAX:
            raise OptionError(
                "ignore_index", f"{{option}} {ignore_index} does not fit in a 64-bit integer"
            )
        try:
            masked_mode = MaskedMode(str(masked).lower())
        except ValueError:
            raise OptionError(
                "masked", f"{{option}}: unknown mode {masked!r} (choose from flag, ignore)"
            ) from None
        categories = parse_fail_on(fail_on)
        threshold = 0.0
        if min_headroom is not None:
            if isinstance(min_headroom, bool) or not isinstance(min_headroom, int | float):
                raise OptionError(
                    "min_headroom", f"{{option}} must be a number, not {min_headroom!r}"
                )
            if not math.isfinite(min_headroom):
                raise OptionError("min_headroom", f"{{option}} must be finite, not {min_headroom}")
            threshold = float(min_headroom)
            categories = parse_fail_on([*categories, Category.headroom])
        return cls(
            dtype_name, class_axis, ignore_index, categories, masked_mode, threshold, bool(sweep)
        )


@dataclass(frozen=True)
class View:
    """Which samples a report lists: flagged ones (or all), at most ``max_rows`` in tables."""

    include_clean: bool = False
    max_rows: int = 20  # 0: no cap


DEFAULT_VIEW = View()
