"""The console script's entry: signal and stream handling set up before the heavy imports.

NumPy, ml_dtypes, Rich and Typer take a good fraction of a second to import (seconds on a
cold cache); a Ctrl-C or a SIGTERM in that time must end the run as one during the check
does: one line on standard error and exit 128 + the signal number (130 for SIGINT, 143 for
SIGTERM), never a traceback. This module imports nothing heavy until that is in place.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

STOPPED = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


class Interrupted(BaseException):
    """SIGINT or SIGTERM. Not a KeyboardInterrupt, so Click does not turn it into "Aborted!"
    and no ``except Exception`` swallows it; ``finally`` blocks and the report writer's
    cleanup of its temporary files still run on its way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_received: list[int] = []


def _stop(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise Interrupted(signum)


def _stop_now(signum: int, frame: FrameType | None) -> None:
    """While the CLI is being imported: nothing is written yet, nothing to clean up, and an
    exception raised into C extension initialisation comes out as a printed traceback and an
    ImportError (NumPy's ``import_array``). So leave at once."""
    _say(f"softmax-check: {STOPPED[signal.Signals(signum)]}")
    os._exit(128 + signum)


def _hold_closed_descriptors() -> None:
    """Put /dev/null on a closed standard descriptor (``>&-``) so no file opened later takes
    its number: otherwise a report meant for standard output could land in an input file.
    ``sys.stdout`` (or stdin, stderr) stays None, so the CLI still knows it was closed."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def _say(text: str) -> None:
    if sys.stderr is not None:
        try:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # standard error is gone too: the exit status says it


def main() -> None:
    """Run ``softmax-check``: the console script and ``python -m softmax_cli``."""
    if sys.argv[1:] == ["--version"]:
        # Answered before NumPy, Rich and Typer load: what scripts probing for the tool ask.
        from softmax_cli.version import __version__

        print(f"softmax-check {__version__}")
        return
    _hold_closed_descriptors()
    # An ignored signal (``nohup``, a shell's background job) stays ignored.
    handled = [
        signum
        for signum in STOPPED
        if signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler)
    ]
    for signum in handled:
        signal.signal(signum, _stop_now)
    try:
        from softmax_cli.cli import main as run_cli

        for signum in handled:
            signal.signal(signum, _stop)
        run_cli()
    except BaseException as error:
        # Code that the signal interrupts may turn it into an error of its own: NumPy's C
        # import does, into an ImportError. Whatever comes out after a signal is the signal.
        if isinstance(error, SystemExit) or not _received:
            raise
        # A second signal from here on ends the process at once, with no traceback either.
        for signum in STOPPED:
            signal.signal(signum, signal.SIG_DFL)
        _say(f"softmax-check: {STOPPED[signal.Signals(_received[0])]}")
        raise SystemExit(128 + _received[0]) from None
    finally:
        for signum in STOPPED:
            if signal.getsignal(signum) in (_stop, _stop_now):
                signal.signal(signum, signal.SIG_DFL)
