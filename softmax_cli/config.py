"""Project defaults from ``[tool.softmax-check]`` in ``pyproject.toml``.

Found as ruff finds its settings: the closest ``pyproject.toml`` from the current directory
upwards that has the table (one without it is passed over); nothing is merged across
files. Keys are the long options in kebab-case; an option given on the command line wins.
Every key and value is checked here, so a mistake is reported against the file and the
key, before any work, instead of surfacing later as a strange command-line error. Reading
is bounded: only a regular file is read, at most ``MAX_BYTES`` of it, and whatever is wrong
with it (not UTF-8, not TOML, nested too deeply) is a ``ConfigError`` naming the file.
"""

from __future__ import annotations

import difflib
import enum
import os
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from softmax_cli import baseline, impl
from softmax_cli.errors import OptionError, SoftmaxCheckError
from softmax_cli.options import (
    DTYPE_ALIASES,
    DtypeName,
    MaskedMode,
    OutputFormat,
    parse_fail_on,
)

PYPROJECT = "pyproject.toml"
TABLE = "softmax-check"
# A pyproject.toml is a few kilobytes; this only keeps `--config /dev/zero`-like mistakes
# (or a runaway generated file) from reading without end.
MAX_BYTES = 1 << 20


class ConfigError(SoftmaxCheckError):
    """A configuration file that cannot be used: names the file and, if any, the key."""

    def __init__(self, path: Path, problem: str, key: str | None = None) -> None:
        where = f"[tool.{TABLE}] {key}" if key else None
        super().__init__(f"{path}: {where}: {problem}" if where else f"{path}: {problem}")


@dataclass(frozen=True)
class ProjectConfig:
    """Defaults for the command's options, keyed by parameter name, and where they came from."""

    path: Path | None = None
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


NO_CONFIG = ProjectConfig()


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("a string")
    return value


def _integer(value: Any) -> int:
    # TOML booleans are not integers here, whatever Python thinks.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("an integer")
    return value


def _count(value: Any) -> int:
    if _integer(value) < 0:
        raise ValueError("must be 0 or more")
    return value


def _number(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError("a number")
    return float(value)


def _choice(enum_type: type[enum.StrEnum], *aliases: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        choices = [*(m.value for m in enum_type), *aliases]
        if _string(value).lower() not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return value.lower()

    return parse


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("true or false")
    return value


def _headroom_drop(value: Any) -> float:
    """As ``--max-headroom-drop`` takes it (baseline.check_headroom_drop)."""
    try:
        return baseline.check_headroom_drop(_number(value))
    except OptionError as error:
        raise ValueError(_unnamed(error)) from None


def _rtol(value: Any) -> float:
    """As ``--impl-rtol`` takes it: impl.check_rtol's rule and words, the option unnamed."""
    try:
        rtol = impl.check_rtol(_number(value))
    except OptionError as error:
        raise ValueError(_unnamed(error)) from None
    assert rtol is not None  # a number in, a number out
    return rtol


def _unnamed(error: OptionError) -> str:
    """An option's problem in the words of a key (the key is named before it)."""
    return error.problem.format(option="").removeprefix(": ").strip()


def _fail_on(value: Any) -> str:
    """A comma string or a list of category names, as ``--fail-on`` takes them."""
    if isinstance(value, list):
        if not all(isinstance(word, str) for word in value):
            raise TypeError("a list of strings")
        words = value
    else:
        words = _string(value).split(",")
    try:
        categories = parse_fail_on(words)
    except OptionError as error:
        raise ValueError(_unnamed(error)) from None
    # "none" (or an empty list) is a policy, not a missing value: keep it explicit.
    return ",".join(c.value for c in categories) or "none"


def _implementations(value: Any, directory: Path = Path()) -> list[str]:
    """``--impl`` specs, one string or a list; a relative ``file.py:function`` is taken
    relative to the configuration file's directory, as ruff and pytest take their paths:
    the project's own code, wherever the command runs from."""
    specs = value if isinstance(value, list) else [_string(value)]
    if not all(isinstance(spec, str) for spec in specs):
        raise TypeError("a string or a list of strings")
    return [_anchored(spec, directory) for spec in specs]


def _anchored(text: str, directory: Path) -> str:
    name, equals, spec = impl.split_name(text)
    module_part, colon, attribute = spec.strip().rpartition(":")
    if not (colon and module_part and attribute):
        raise ValueError(f"{text!r}: expected [NAME=]{impl.SPEC_FORMS}")
    if not impl.is_file_spec(module_part):
        return text
    path = directory / module_part  # an absolute module_part stays itself
    if not path.is_file():
        raise ValueError(f"{text!r}: {path} is not a file")
    return f"{name}{equals}{path}:{attribute}"


# key -> (parameter name, what the value must be). Paths (--targets, --output, --report,
# --baseline) are left out on purpose: relative to what, the file or the working
# directory, is a question better not asked in CI. Your implementations' files are the
# project's code, relative to the project: ``impl`` takes them so.
SETTINGS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "fail-on": ("fail_on", _fail_on),
    "dtype": ("dtype", _choice(DtypeName, *DTYPE_ALIASES)),
    "masked": ("masked", _choice(MaskedMode)),
    "min-headroom": ("min_headroom", _number),
    "class-axis": ("class_axis", _integer),
    "ignore-index": ("ignore_index", _integer),
    "format": ("output_format", _choice(OutputFormat)),
    "max-rows": ("max_rows", _count),
    "target-column": ("target_column", _string),
    "logits-key": ("logits_key", _string),
    "targets-key": ("targets_key", _string),
    "sweep": ("sweep", _boolean),
    "impl": ("impls", _implementations),
    "impl-rtol": ("impl_rtol", _rtol),
    "max-headroom-drop": ("max_headroom_drop", _headroom_drop),
    "export-max": ("export_max", _count),
}


def discover(start: Path) -> Path | None:
    """The closest ``pyproject.toml`` at or above ``start`` with a ``[tool.softmax-check]``.

    A directory we may not search is passed over, as one without a ``pyproject.toml``.
    """
    for directory in (start, *start.parents):
        candidate = directory / PYPROJECT
        try:
            found = candidate.is_file()
        except OSError:
            continue
        if found:
            tool = _read(candidate).get("tool")
            if isinstance(tool, dict) and TABLE in tool:
                return candidate
    return None


def load(path: Path) -> ProjectConfig:
    """The defaults in ``path`` (a ``pyproject.toml``, or any TOML file with the table)."""
    tool = _read(path).get("tool", {})
    if not isinstance(tool, dict) or TABLE not in tool:
        raise ConfigError(path, f"has no [tool.{TABLE}] table")
    table = tool[TABLE]
    if not isinstance(table, dict):
        raise ConfigError(path, f"tool.{TABLE} must be a table")
    defaults: dict[str, Any] = {}
    for key, value in table.items():
        if key not in SETTINGS:
            raise ConfigError(path, _unknown(key), key)
        name, parse = SETTINGS[key]
        try:
            if key == "impl":  # the one setting whose value depends on where the file is
                defaults[name] = _implementations(value, path.parent)
            else:
                defaults[name] = parse(value)
        except TypeError as expected:
            raise ConfigError(path, f"must be {expected}, not {value!r}", key) from None
        except ValueError as error:
            raise ConfigError(path, str(error), key) from None
    return ProjectConfig(path, MappingProxyType(defaults))


def find(start: Path | None = None) -> ProjectConfig:
    """The configuration discovered from ``start`` (the working directory), or none at all."""
    if start is None:
        try:
            start = Path.cwd()
        except OSError as error:
            # Deleted under our feet (or never readable): there is nowhere to look from.
            was = f" ({os.environ['PWD']})" if os.environ.get("PWD") else ""
            raise SoftmaxCheckError(
                f"the current directory{was} cannot be used to look for {PYPROJECT}: "
                f"{error.strerror or error}\n"
                "hint: run from an existing directory, or pass --config PATH or --no-config"
            ) from None
    path = discover(start)
    return NO_CONFIG if path is None else load(path)


def _read(path: Path) -> dict[str, Any]:
    text = _text(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(path, f"not valid TOML: {error}") from None
    except RecursionError:
        raise ConfigError(
            path, "not valid TOML here: arrays or tables nested hundreds of levels deep"
        ) from None


def _text(path: Path) -> str:
    """The file's text: a regular file of at most ``MAX_BYTES``, in UTF-8 as TOML must be."""
    try:
        # O_NONBLOCK: a FIFO opens at once (and is then refused) instead of waiting for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as stream:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise ConfigError(path, "is a directory, not a TOML file")
            if not stat.S_ISREG(mode):
                raise ConfigError(path, "is not a regular file (a pipe or a device?)")
            data = stream.read(MAX_BYTES + 1)
    except OSError as error:
        raise ConfigError(path, f"cannot be read: {error.strerror or error}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(path, f"is larger than {MAX_BYTES >> 20} MiB: not a configuration file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            path, f"is not UTF-8 text (byte {data[error.start]:#04x} at offset {error.start})"
        ) from None


def _unknown(key: str) -> str:
    known = list(SETTINGS)
    # On a line of its own: after a long path, one line would be folded in the middle.
    message = f"unknown key\nhint: the known keys are {', '.join(known)}"
    close = difflib.get_close_matches(key.replace("_", "-"), known, n=1)
    return f"unknown key; did you mean {close[0]!r}?" if close else message
