"""The ``softmax-check`` command: parse -> load -> check -> render -> write, and exit codes.

Only this module does terminal I/O and exits; everything below it raises.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from softmax_cli import __version__
from softmax_cli.classify import check
from softmax_cli.dtypes import DtypeName
from softmax_cli.errors import ExitCode, SoftmaxCheckError, UsageError
from softmax_cli.load import ArrayKeys, load_inputs
from softmax_cli.render import OutputFormat, View, render
from softmax_cli.render import table as table_format
from softmax_cli.report import parse_fail_on

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
stderr = Console(stderr=True, highlight=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"softmax-check {__version__}")
        raise typer.Exit()


@app.command(
    help="Compare the naive and the numerically stable softmax / cross-entropy on dumped "
    "logits, forward and backward, and show per sample where each one overflows, underflows "
    "or produces NaN probabilities, losses or gradients.\n\n"
    "Exit status: 0 nothing in the --fail-on categories, 1 findings, 2 usage error or bad input."
)
def run(
    logits: Annotated[
        str,
        typer.Argument(
            metavar="LOGITS",
            help="Logits: .npy, .npz or .csv; '-' reads CSV from standard input.",
            show_default=False,
        ),
    ],
    targets: Annotated[
        str | None,
        typer.Option(
            "--targets",
            metavar="PATH",
            help="Integer class index per sample: .npy, .npz, or .csv/.txt with one per line.",
        ),
    ] = None,
    target_column: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="CSV logits whose header has this column carry their own targets "
            "(default: 'target' if present)",
        ),
    ] = None,
    logits_key: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Array name of the logits inside an .npz (default: 'logits', or the lone array).",
        ),
    ] = None,
    targets_key: Annotated[
        str | None,
        typer.Option(
            metavar="NAME", help="Array name of the targets inside an .npz (default: 'targets')."
        ),
    ] = None,
    dtype: Annotated[
        DtypeName,
        typer.Option(
            case_sensitive=False,
            help="Precision to compute in; auto = the input's float dtype, float32 for CSV "
            "and integer input.",
        ),
    ] = DtypeName.auto,
    class_axis: Annotated[
        int,
        typer.Option(
            metavar="N", help="The class axis; every other axis is a sample axis (C order)."
        ),
    ] = -1,
    ignore_index: Annotated[
        int,
        typer.Option(metavar="N", help="Samples whose target is N have no loss and no gradient."),
    ] = -100,
    output_format: Annotated[
        OutputFormat,
        typer.Option("--format", case_sensitive=False, help="Report format."),
    ] = OutputFormat.table,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="PATH",
            help="Write the report here (atomically for a regular file) instead of stdout.",
        ),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="List every sample, not only flagged ones.")
    ] = False,
    max_rows: Annotated[
        int,
        typer.Option(
            metavar="N", min=0, help="Cap on table rows; 0 = no cap (JSON is never capped)."
        ),
    ] = 20,
    fail_on: Annotated[
        str,
        typer.Option(
            metavar="LIST",
            help="Exit 1 when a sample falls in one of these: comma list of input, stable, "
            "naive, any, none.",
        ),
    ] = "input,stable",
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
) -> None:
    """The one command: see the help text above."""
    try:
        policy = parse_fail_on(fail_on)
        if output is not None:
            _check_writable(output)
        loaded = load_inputs(logits, targets, ArrayKeys(logits_key, targets_key, target_column))
        # CSV is parsed exactly (float64); its precision is float32 unless asked otherwise.
        compute = "float32" if loaded.from_text and dtype is DtypeName.auto else dtype.value
        with _progress(loaded.logits.size) as on_progress:
            report = check(
                loaded.logits,
                loaded.targets,
                dtype=compute,
                class_axis=class_axis,
                ignore_index=ignore_index,
                fail_on=policy,
                logits_name=loaded.logits_name,
                targets_name=loaded.targets_name,
                on_progress=on_progress,
            )
        view = View(include_clean=show_all, max_rows=max_rows)
        if output is None and output_format is OutputFormat.table:
            # Piped or redirected, Rich would assume 80 columns; a log or file has room.
            width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120
            Console(width=width).print(table_format.renderable(report, view))
        else:
            _write(output, render(report, output_format, view))
    except SoftmaxCheckError as error:
        _fail(str(error))
    except MemoryError:
        _fail("not enough memory to check this input")
    except KeyboardInterrupt:
        stderr.print("softmax-check: interrupted", markup=False)
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    raise typer.Exit(ExitCode.OK if report.passed else ExitCode.FINDINGS)


# Below this many logits a check takes well under a second: no progress bar.
PROGRESS_MIN_ELEMENTS = 50_000_000


@contextlib.contextmanager
def _progress(elements: int) -> Iterator[Callable[[int, int], None] | None]:
    """A transient progress bar on standard error for a large input, only on a terminal.

    Piped, redirected or in CI (where FORCE_COLOR may make Rich think it has a terminal)
    nothing is drawn, so logs and machine-read output never see it.
    """
    if elements < PROGRESS_MIN_ELEMENTS or not sys.stderr.isatty() or "CI" in os.environ:
        yield None
        return
    from rich.progress import Progress

    with Progress(console=stderr, transient=True) as bar:
        task = bar.add_task("checking samples", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _fail(message: str) -> None:
    stderr.print(f"softmax-check: error: {message}", markup=False)
    raise typer.Exit(ExitCode.ERROR)


def _check_writable(output: str) -> None:
    """Refuse an --output we could not write before doing any work."""
    path = Path(output)
    if path.exists() and not path.is_file():
        if path.is_dir():
            raise UsageError(f"--output {output}: is a directory")
        return  # a device or a pipe: written straight through
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"--output {output}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--output {output}: directory {str(parent)!r} is not writable")


def _write(output: str | None, text: str) -> None:
    """Standard output, straight through to a device or pipe, or atomically to a file."""
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(output)
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(text)
        return
    # A temporary file beside the target, renamed over it: readers see the old report or
    # the new one, never half of one, and a failure leaves the old one in place.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def main() -> None:
    """Console-script entry point."""
    app()
