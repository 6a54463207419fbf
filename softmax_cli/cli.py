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

from softmax_cli import config, impl
from softmax_cli.classify import check_loaded
from softmax_cli.errors import (
    ExitCode,
    ImplementationError,
    OptionError,
    SoftmaxCheckError,
    UsageError,
    printable,
)
from softmax_cli.load import ArrayKeys, load_inputs
from softmax_cli.options import CheckOptions, DtypeName, OutputFormat, View
from softmax_cli.render import render
from softmax_cli.version import __version__

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


def _config_option(ctx: typer.Context, param: typer.CallbackParam, value: object) -> object:
    """Load ``[tool.softmax-check]`` into the defaults of the other options.

    --config and --no-config are eager, so both are seen before any other option takes its
    value; whichever of the two comes second does the loading. The settings become Click's
    ``default_map``: an option given on the command line wins, one left out takes the
    project's value, and --help keeps showing the built-in defaults.
    """
    ctx.meta[f"softmax_check.{param.name}"] = value
    path, skip = (ctx.meta.get(f"softmax_check.{n}", ...) for n in ("config_path", "no_config"))
    if path is ... or skip is ... or ctx.resilient_parsing:
        return value
    try:
        if path is not None and skip:
            raise UsageError("--config and --no-config do not go together")
        if path is not None:
            project = config.load(Path(path))
        else:
            project = config.NO_CONFIG if skip else config.find(Path.cwd())
    except SoftmaxCheckError as error:
        _fail(str(error))
    ctx.default_map = {**(ctx.default_map or {}), **project.defaults}
    return value


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
            "naive, impl, any, none.",
        ),
    ] = "input,stable",
    impls: Annotated[
        list[str] | None,
        typer.Option(
            "--impl",
            metavar="[NAME=]SPEC",
            help="Also run your own softmax or cross-entropy, path/to/file.py:function or "
            "package.module:function (needs torch); repeatable.",
            show_default=False,
        ),
    ] = None,
    impl_rtol: Annotated[
        float | None,
        typer.Option(
            metavar="X",
            help="Largest error of --impl losses against the float64 reference (default: "
            "1e-10 float64, 1e-5 float32, 3e-2 bfloat16, 8e-3 float16).",
            show_default=False,
        ),
    ] = None,
    reports: Annotated[
        list[str] | None,
        typer.Option(
            "--report",
            metavar="FORMAT=PATH",
            help="Also write the report in FORMAT to PATH (atomically), e.g. "
            "junit=out/junit.xml; repeatable. Standard output still gets --format.",
            show_default=False,
        ),
    ] = None,
    config_path: Annotated[
        str | None,
        typer.Option(
            "--config",
            metavar="PATH",
            callback=_config_option,
            is_eager=True,
            help="Take defaults from \\[tool.softmax-check] in this file (default: the closest "
            "pyproject.toml with that table, from here upwards).",
            show_default=False,
        ),
    ] = None,
    no_config: Annotated[
        bool,
        typer.Option(
            "--no-config",
            callback=_config_option,
            is_eager=True,
            help="Ignore \\[tool.softmax-check] in pyproject.toml.",
        ),
    ] = False,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
) -> None:
    """The one command: see the help text above."""
    try:
        options = CheckOptions.of(dtype, class_axis, ignore_index, fail_on)
        if output is not None:
            _check_writable(output, inputs=(logits, targets))
        extra_reports = _parse_reports(reports or [], output, inputs=(logits, targets))
        # Your implementations are imported before any input is read: a typo fails at once.
        own = impl.resolve(impls)
        impl_rtol = impl.check_rtol(impl_rtol)
        loaded = load_inputs(logits, targets, ArrayKeys(logits_key, targets_key, target_column))
        with _progress(loaded.logits.size * (1 + len(own))) as on_progress:
            report = check_loaded(loaded, options, on_progress, own, impl_rtol)
        view = View(include_clean=show_all, max_rows=max_rows)
        # Files for the CI system first: if one cannot be written, exit 2 with nothing on
        # standard output, as for any other error.
        texts = [(path, render(report, fmt, view)) for fmt, path in extra_reports]
        for path, text in texts:
            _write_report(path, text)
        if output is None and output_format is OutputFormat.table:
            from softmax_cli.render import table

            # Piped or redirected, Rich would assume 80 columns; a log or file has room.
            width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120
            Console(width=width).print(table.renderable(report, view))
        else:
            _write(output, render(report, output_format, view))
    except ImplementationError as error:
        _fail(error.worded(_flag(error.option)), error.traceback)
    except OptionError as error:
        _fail(error.worded(_flag(error.option)))
    except SoftmaxCheckError as error:
        _fail(str(error))
    except MemoryError:
        _fail("not enough memory to check this input")
    except KeyboardInterrupt:
        stderr.print("softmax-check: interrupted", markup=False, emoji=False, soft_wrap=True)
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    except OSError as error:  # writing the report: a full disk, a closed pipe, ...
        _fail(f"{error.filename or 'output'}: {error.strerror or error}")
    except Exception as error:
        # A bug, not bad input: one line instead of a traceback, and the same exit status
        # as any run that could not decide (SOFTMAX_CHECK_DEBUG=1 shows the traceback).
        if os.environ.get("SOFTMAX_CHECK_DEBUG"):
            raise
        _fail(f"internal error: {type(error).__name__}: {error} (please report this bug)")
    raise typer.Exit(ExitCode.OK if report.passed else ExitCode.FINDINGS)


# Parameters whose command-line flag is not the parameter's own name in kebab-case.
_FLAGS = {"output_format": "--format", "implementations": "--impl"}


def _flag(parameter: str) -> str:
    """The command-line flag for a library parameter: ``class_axis`` -> ``--class-axis``."""
    return _FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


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


# The most lines of a user's traceback shown (the innermost ones: where it raised).
_TRACEBACK_LINES = 40


def _fail(message: str, details: str = "") -> None:
    """The error on standard error, then ``details`` (a user's traceback), and exit 2."""
    text = printable(f"softmax-check: error: {message}")
    lines = details.splitlines()
    if len(lines) > _TRACEBACK_LINES:
        lines = [lines[0], "  ...", *lines[-_TRACEBACK_LINES + 2 :]]
    # printable keeps a few lines per message; a traceback is made safe line by line.
    text += "".join(f"\n{printable(line)}" for line in lines)
    stderr.print(text, markup=False, emoji=False, soft_wrap=True)
    raise typer.Exit(ExitCode.ERROR)


def _check_writable(
    output: str, label: str | None = None, inputs: tuple[str | None, ...] = ()
) -> None:
    """Refuse an --output (or a --report path) we could not write, or one that is an
    input, before doing any work."""
    where = label or f"--output {output}"
    path = Path(output)
    if "\0" in output:
        raise UsageError(f"{where.split(' ')[0]}: a path cannot contain a NUL character")
    for source in inputs:
        if source and source != "-" and path.exists() and _same_file(path, Path(source)):
            raise UsageError(f"{where} is an input file; it would be overwritten")
    if path.exists() and not path.is_file():
        if path.is_dir():
            raise UsageError(f"{where}: is a directory")
        return  # a device or a pipe: written straight through
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{where}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{where}: directory {str(parent)!r} is not writable")


def _parse_reports(
    specs: list[str], output: str | None, inputs: tuple[str | None, ...] = ()
) -> list[tuple[OutputFormat, str]]:
    """``--report FORMAT=PATH`` values as (format, path), each path checked as --output is."""
    reports: list[tuple[OutputFormat, str]] = []
    files = {_file_identity(output)} if output is not None else set()
    for spec in specs:
        name, equals, path = spec.partition("=")
        if not equals or not name.strip() or not path:
            raise UsageError(f"--report {spec}: expected FORMAT=PATH, e.g. junit=junit.xml")
        try:
            fmt = OutputFormat(name.strip().lower())
        except ValueError:
            known = ", ".join(f.value for f in OutputFormat)
            raise UsageError(
                f"--report {spec}: unknown format {name!r} (choose from {known})"
            ) from None
        _check_writable(path, f"--report {spec}", inputs)
        identity = _file_identity(path)
        if identity is not None and identity in files:
            raise UsageError(
                f"--report {spec}: {path} is already the target of --output or another --report"
            )
        files.add(identity)
        reports.append((fmt, path))
    return reports


def _file_identity(path: str) -> Path | None:
    """The file a report path will replace; None for a device or pipe, written through."""
    target = Path(path)
    if target.exists() and not target.is_file():
        return None
    return target.resolve()


def _write_report(path: str, text: str) -> None:
    try:
        _write(path, text)
    except OSError as error:
        raise SoftmaxCheckError(
            f"--report {path}: cannot write: {error.strerror or error}"
        ) from None


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
    temporary = None
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        raise


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def main() -> None:
    """Entry point of the console script and of ``python -m softmax_cli``."""
    app(prog_name="softmax-check")
