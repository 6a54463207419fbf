"""Errors a user can act on, and the exit codes the CLI maps them to."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What the process exit status means (the same convention as ruff and pip-audit)."""

    OK = 0
    FINDINGS = 1
    ERROR = 2
    INTERRUPTED = 130
    TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process that SIGTERM stopped


class SoftmaxCheckError(Exception):
    """Base class of every error softmax-check reports to the user without a traceback."""


class InputError(SoftmaxCheckError):
    """An input file (or array) that cannot be checked: names the file and what is wrong."""

    def __init__(self, source: str, problem: str, hint: str | None = None) -> None:
        self.source = source
        self.problem = problem
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        message = f"{self.source}: {self.problem}"
        return f"{message}\nhint: {self.hint}" if self.hint else message


class UsageError(SoftmaxCheckError):
    """Options that do not fit together or do not fit the input."""


class OptionError(UsageError):
    """An option value that cannot be used, named by its parameter (``class_axis``).

    ``problem`` holds ``{option}`` where the option's name goes: the library says
    ``class_axis``, the CLI says ``--class-axis`` (see :meth:`worded`), from one message.
    """

    def __init__(
        self, option: str, problem: str, source: str | None = None, hint: str | None = None
    ) -> None:
        self.option = option
        self.problem = problem
        self.source = source
        self.hint = hint
        super().__init__(self.worded(option))

    def worded(self, name: str) -> str:
        """The message with the option called ``name``."""
        message = self.problem.format(option=name)
        if self.source is not None:
            message = f"{self.source}: {message}"
        return f"{message}\nhint: {self.hint}" if self.hint else message


class ImplementationError(OptionError):
    """A user's own implementation (``implementations``, ``--impl``) that cannot be used:
    it does not import, raised, or returned the wrong thing. ``traceback`` holds the frames
    of the user's code only (none of softmax-check's), for the CLI to show below."""

    def __init__(self, problem: str, traceback: str = "") -> None:
        self.traceback = traceback
        super().__init__("implementations", problem)


# A message names files and quotes their contents: both may hold anything.
_MAX_LINES = 6
_MAX_LINE_CHARS = 300


def printable(message: str) -> str:
    """``message`` safe to show on a terminal: control characters (an escape sequence in a
    file name, a NUL from a binary file) shown as escapes, at most a few short lines. A long
    line loses its middle, not its end: after a long path comes what is wrong with it."""
    lines = []
    head = _MAX_LINE_CHARS // 3
    tail = _MAX_LINE_CHARS - head - 5
    for line in message.splitlines()[:_MAX_LINES]:
        safe = display(line)
        lines.append(safe if len(safe) <= _MAX_LINE_CHARS else f"{safe[:head]} ... {safe[-tail:]}")
    return "\n".join(lines)


def display(text: str) -> str:
    """``text`` (a file name, an array key) as one line that is safe to show anywhere: every
    character that is not printable (a line break that would start a GitHub workflow command
    ``::error``, an escape sequence, a bidirectional override) as its Python escape, and a
    byte that was not UTF-8 (``os.fsdecode``'s surrogate escape) as ``\\xNN``, the byte."""
    if text.isprintable():
        return text
    return "".join(_display_char(c) for c in text)


def _display_char(char: str) -> str:
    if char.isprintable():
        return char
    if "\udc80" <= char <= "\udcff":  # a byte os.fsdecode could not decode
        return f"\\x{ord(char) - 0xDC00:02x}"
    return repr(char)[1:-1]
