"""The ``softmax-check`` command: parse -> load -> check -> render -> write, and exit codes.

Only this module does terminal I/O and exits; everything below it raises.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import errno
import fcntl
import functools
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from rich.console import Console

from softmax_cli import atomic, baseline, config, export, impl, sources
from softmax_cli.classify import check_loaded
from softmax_cli.errors import (
    ExitCode,
    ImplementationError,
    OptionError,
    SoftmaxCheckError,
    UsageError,
    printable,
)
from softmax_cli.load import ArrayKeys
from softmax_cli.options import (
    Category,
    CheckOptions,
    DtypeName,
    MaskedMode,
    OutputFormat,
    View,
)
from softmax_cli.render import chart, render_chunks
from softmax_cli.version import __version__


class _Command(typer.core.TyperCommand):
    """The command as a terminal user reads it: ``Usage: softmax-check [OPTIONS] LOGITS...``
    (Typer writes a required argument as ``{LOGITS...}``), and in --help no Python type
    beside LOGITS (``<str>``, ``<list[str]>``) or a flag (``<bool>``, Typer 0.29+). Typer 0.28
    and 0.29+ build that text in different places; both are covered here."""

    def get_params(self, ctx: typer.Context) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            if param.param_type_name == "argument" or getattr(param, "is_flag", False):
                param.__class__ = _untyped(type(param))
                if param.param_type_name == "argument" and hasattr(param, "type"):
                    param.type.__class__ = _untyped(type(param.type))  # Typer 0.28
        return params

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """Rich's panels below ``_NARROW`` columns cut the option names to ``--targe…``
        (``--targets``? ``--targets-key``?): there, Click's plain layout, whose names wrap."""
        columns = shutil.get_terminal_size().columns
        if columns >= _NARROW:
            return super().format_help(ctx, formatter)
        formatter.width = max(20, columns - 2)  # Click's own floor is 50 columns
        # A name longer than col_max gets a line of its own, its help the whole width below.
        formatter.write_dl = functools.partial(formatter.write_dl, col_max=_NARROW_NAMES)
        # The plain layout of the Click command below Typer's (Typer 0.30+ vendors Click).
        super(typer.core.TyperCommand, self).format_help(ctx, formatter)
        # The help texts escape Rich markup ("\\[tool.softmax-check]"); plain text does not.
        formatter.buffer[:] = [piece.replace("\\[", "[") for piece in formatter.buffer]
        return None

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        arguments = [
            p.metavar or (p.name or "").upper()
            for p in self.params
            if p.param_type_name == "argument"
        ]
        return [*([self.options_metavar] if self.options_metavar else []), *arguments]


_NARROW = 60  # columns: below, --help is plain text
_NARROW_NAMES = 10  # there, the column of option names


@functools.cache
def _untyped(cls: type) -> type:
    """``cls`` (a parameter, or its Click type) showing no type in --help: Typer 0.29+ asks
    the parameter (``display_type_rich``), 0.28 an argument's type (``get_metavar``, "" =
    none)."""
    return type(
        cls.__name__,
        (cls,),
        {"display_type_rich": lambda self, ctx: None, "get_metavar": lambda self, *a, **k: ""},
    )


app = typer.Typer(
    # --install-completion / --show-completion for bash, zsh, fish and PowerShell.
    add_completion=True,
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
    project's value, and --help keeps showing the built-in defaults. The file in use is
    remembered so that no report can overwrite it, and this run's --report files are staged
    until its context closes.
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
            project = config.NO_CONFIG if skip else config.find()
    except SoftmaxCheckError as error:
        _fail(str(error))
    _RUN.set(_Run(config_file=project.path, staged=ctx.with_resource(_StagedReports())))
    ctx.default_map = {**(ctx.default_map or {}), **project.defaults}
    return value


@app.command(
    cls=_Command,
    help="Compare the naive and the numerically stable softmax / cross-entropy on dumped "
    "logits, forward and backward, and show per sample where each one overflows, underflows "
    "or produces NaN probabilities, losses or gradients.\n\n"
    "Exit status: 0 nothing in the --fail-on categories, 1 findings, 2 usage error or bad input.",
)
def run(
    logits: Annotated[
        list[str],
        typer.Argument(
            metavar="LOGITS...",
            help="Logits: .npy, .npz, .safetensors, .pt/.pth or .csv files, or directories of "
            "them, checked as one dump; '-' reads CSV from standard input.",
            show_default=False,
        ),
    ],
    targets: Annotated[
        list[str] | None,
        typer.Option(
            "--targets",
            metavar="PATH",
            help="Integer class index per sample: .npy, .npz, .safetensors, .pt, or .csv/.txt "
            "with one per line; with several logits files, once per file in the same order.",
            show_default=False,
        ),
    ] = None,
    target_column: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="The CSV column holding the targets (default: a column named target, "
            "targets, label, labels, y or class, in any case); 'none': every column is a class.",
        ),
    ] = None,
    logits_key: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Tensor name of the logits inside an .npz, .safetensors or .pt (default: "
            "'logits', or the lone float tensor).",
        ),
    ] = None,
    targets_key: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Tensor name of the targets inside an .npz, .safetensors or .pt (default: "
            "'targets').",
        ),
    ] = None,
    dtype: Annotated[
        str,
        typer.Option(
            metavar="DTYPE",
            help="Precision to compute in: " + ", ".join(DtypeName) + ". auto = the input's "
            "float dtype, float32 for CSV and integer input; fp64, fp32, fp16, bf16 are the "
            "same as float64 ... bfloat16.",
        ),
    ] = DtypeName.auto.value,
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
        typer.Option(
            "--format",
            metavar="FORMAT",
            case_sensitive=False,
            help="Report format: " + ", ".join(OutputFormat) + ".",
        ),
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
    masked: Annotated[
        MaskedMode,
        typer.Option(
            metavar="MODE",
            case_sensitive=False,
            help="Fully masked rows (all -inf, e.g. padding queries): flag = an input finding "
            "that breaks both implementations; ignore = counted and listed as a note only.",
        ),
    ] = MaskedMode.flag,
    min_headroom: Annotated[
        float | None,
        typer.Option(
            metavar="NATS",
            help="Fail (category headroom) on samples whose headroom, ln(max of the dtype) - "
            "|logsumexp|, is below this many nats: catches logit drift before anything breaks.",
            show_default=False,
        ),
    ] = None,
    sweep: Annotated[
        bool,
        typer.Option(
            "--sweep",
            help="Also run the whole check in float64, float32, bfloat16 and float16 and "
            "show each: would this dump survive a narrower dtype? Exit status and samples "
            "stay those of --dtype.",
        ),
    ] = False,
    no_sweep: Annotated[
        bool,
        typer.Option(
            "--no-sweep", help="No sweep, even where the project's configuration asks for one."
        ),
    ] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="List every sample, not only flagged ones.")
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="Table: print only the verdict line (errors still go to stderr), no progress "
            "bar. The other formats are documents for a program and stay whole, as in ruff.",
        ),
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
            help="Exit 1 when a sample falls in one of these: comma list of "
            f"{', '.join(Category)}, any, none.",
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
    scheduler: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS",
            help="Run the check on a Dask cluster (tcp://host:8786); its workers must see "
            "the files at the same paths. Needs the 'dask' extra.",
            show_default=False,
        ),
    ] = None,
    baseline_path: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            metavar="PATH",
            help="Compare with an earlier --format json report of a dump with the same "
            "samples: newly breaking and fixed samples, min headroom and health p99 drift "
            "(category regression).",
            show_default=False,
        ),
    ] = None,
    max_headroom_drop: Annotated[
        float,
        typer.Option(
            metavar="NATS",
            help="With --baseline: a fall of the minimum headroom by more than this is a "
            "regression.",
        ),
    ] = 1.0,
    export_flagged: Annotated[
        str | None,
        typer.Option(
            metavar="DIR",
            help="Write the flagged samples (worst first) to DIR/flagged.safetensors and a "
            "standalone DIR/repro.py that reproduces them; DIR must be new or empty.",
            show_default=False,
        ),
    ] = None,
    export_max: Annotated[
        int,
        typer.Option(metavar="N", min=0, help="With --export-flagged: at most N samples; 0 = all."),
    ] = 0,
    plot: Annotated[
        str | None,
        typer.Option(
            metavar="PATH.png",
            help="Write the logit-health chart (histogram of log Z) as a PNG; needs the "
            "'plot' extra.",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
) -> None:
    """The one command: see the help text above."""
    try:
        options = CheckOptions.of(
            dtype,
            class_axis,
            ignore_index,
            fail_on,
            masked=masked,
            min_headroom=min_headroom,
            sweep=sweep and not no_sweep,
        )
        files = sources.logits_files(logits)
        targets_files = sources.pair_targets(files, targets or [])
        inputs = (*files, *targets_files)
        if scheduler is not None:  # before reading anything
            from softmax_cli import cluster

            cluster.refuse_stdin(list(inputs))
        if output is not None:
            _check_writable(output, inputs=inputs)
        extra_reports = _parse_reports(reports or [], output, inputs=inputs)
        # Your implementations are imported before any input is read: a typo fails at once.
        own = impl.resolve(impls)
        impl_rtol = impl.check_rtol(impl_rtol)
        # Everything the extra outputs need is checked before any work.
        baseline.check_headroom_drop(max_headroom_drop)
        old = None if baseline_path is None else baseline.load(baseline_path)
        if export_flagged is not None:
            export.refuse_unusable(export_flagged)
        if plot is not None:
            chart.require_matplotlib()
            _check_writable(plot, f"--plot {plot}", inputs)
        keys = ArrayKeys(logits_key, targets_key, target_column)
        started = time.perf_counter()
        loaded = sources.load_files(files, targets_files, keys)
        with _progress(
            0 if quiet else sum(f.logits.size for f in loaded) * (1 + len(own))
        ) as on_progress:
            report = check_loaded(
                loaded,
                options,
                on_progress,
                scheduler=scheduler,
                keys=keys,
                implementations=own,
                impl_rtol=impl_rtol,
                # Without --all only listed samples' losses are shown.
                listed_only=not show_all,
            )
        report = dataclasses.replace(report, elapsed=time.perf_counter() - started)
        if old is not None:
            drift = baseline.compare(report, old, max_headroom_drop)
            report = dataclasses.replace(report, drift=drift)
        if export_flagged is not None:
            export.write(export_flagged, report, loaded, limit=export_max)
        if plot is not None:
            chart.write_png(report, plot)
        view = View(include_clean=show_all, max_rows=max_rows)
        # Files for the CI system first: if one cannot be written, exit 2 with nothing on
        # standard output, as for any other error.
        for fmt, path in extra_reports:
            _write_report(path, render_chunks(report, fmt, view))
        if output is None and output_format is OutputFormat.table and quiet:
            from softmax_cli.render import table
            from softmax_cli.render.words import verdict_line

            style = table.OK_STYLE if report.passed else table.BROKEN_STYLE
            Console(soft_wrap=True).print(verdict_line(report), style=style, markup=False)
        elif output is None and output_format is OutputFormat.table:
            from softmax_cli.render import table

            # Piped or redirected, Rich would assume 80 columns; a log or file has room.
            width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120
            _write(None, table.chunks(report, view, console=Console(width=width)))
        else:
            _write(output, render_chunks(report, output_format, view))
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


# Reports are UTF-8. The renderers escape file names for display; should a name that was not
# UTF-8 (os.fsdecode's surrogate escapes) still reach a report, it is written back as the
# bytes it was, never the end of the run.
_ERRORS = "surrogateescape"

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


class _StagedReports:
    """--report files written beside their targets, put in place only when the command ends
    with exit 0 or 1: a run that then fails (the main report cannot be written, a signal)
    leaves the old reports exactly as they were and no temporary file behind.

    Entered as a resource of the command's Click context, whose teardown passes the
    exception that ends the run (``typer.Exit`` with the exit status, or anything else).
    """

    def __init__(self) -> None:
        self.pending: list[tuple[str, Iterable[str], _Target, str | None]] = []
        self.closed = False

    def __enter__(self) -> _StagedReports:
        return self

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        self.closed = True
        pending, self.pending = self.pending, []
        succeeded = error is None or (
            isinstance(error, typer.Exit) and error.exit_code in (ExitCode.OK, ExitCode.FINDINGS)
        )
        try:
            while pending:
                path, text, target, temporary = pending[0]
                if not succeeded:
                    if temporary is not None:
                        _unlink(temporary)
                elif temporary is not None:
                    try:
                        os.replace(temporary, target.path)
                    except BaseException:
                        _unlink(temporary)
                        raise
                else:
                    _write_through(target, text)
                pending.pop(0)
        except OSError as failure:
            _fail(f"--report {path}: cannot write: {failure.strerror or failure}")
        finally:
            for _, _, _, temporary in pending:
                if temporary is not None:
                    _unlink(temporary)

    def add(self, path: str, text: Iterable[str]) -> None:
        """Stage ``text`` (pieces of it) now for a file that is replaced; keep it, to be
        made and written at the end, for a descriptor, device or pipe."""
        target = _target(path)
        temporary = _stage(target, text) if target.atomic else None
        self.pending.append((path, text, target, temporary))


@dataclass(frozen=True)
class _Run:
    """What the option callbacks learnt that the output checks need."""

    config_file: Path | None = None
    staged: _StagedReports | None = None


_RUN: contextvars.ContextVar[_Run | None] = contextvars.ContextVar("softmax_check", default=None)


def _run() -> _Run:
    return _RUN.get() or _Run()


@dataclass(frozen=True)
class _Target:
    """What a report path really names, once the user's symbolic links are followed.

    ``descriptor``: one of our own open files (``/dev/stdout``, ``/dev/fd/N``,
    ``/proc/self/fd/N``), written through as it is. ``atomic``: a regular file or a new
    one, replaced by a rename. Anything else (a device, a pipe, a file under /proc) is
    opened and written straight through; none of these is ever replaced. ``append``: the
    GitHub Actions step summary (``$GITHUB_STEP_SUMMARY``), added to, never replaced: the
    step may have written to it before us.
    """

    path: Path
    descriptor: int | None = None
    atomic: bool = False
    followed: bool = False
    append: bool = False


# The kernel's "magic" links to a process's open files; the pid is ours for /proc/self.
_DESCRIPTOR_LINK = re.compile(r"/proc/(\d+)(?:/task/\d+)?/fd/(\d+)")
_MAX_LINKS = 40  # as the kernel's own limit on symbolic links in one path


def _target(output: str) -> _Target:
    """Follow ``output``'s symbolic links one at a time, stopping at a link into /proc (what
    ``/dev/stdout`` is): resolving that one too would name the file behind standard output,
    which must be written through the descriptor, never replaced."""
    path = Path(output)
    followed = False
    for _ in range(_MAX_LINKS):
        parent = Path(os.path.realpath(path.parent))
        path = parent / path.name
        match = _DESCRIPTOR_LINK.fullmatch(str(path))
        if match and int(match[1]) == os.getpid():
            return _Target(path, descriptor=int(match[2]), followed=followed)
        if parent.parts[1:2] == ("proc",):
            return _Target(path, followed=followed)
        try:
            link = os.readlink(path)
        except OSError:  # not a symbolic link, or nothing there yet
            break
        path = parent / link
        followed = True
    else:
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
    if _is_step_summary(path):
        return _Target(path, followed=followed, append=True)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return _Target(path, atomic=True, followed=followed)
    return _Target(path, atomic=stat.S_ISREG(mode), followed=followed)


def _is_step_summary(path: Path) -> bool:
    """Whether ``path`` is this GitHub Actions step's summary file, which each writer adds to
    (GitHub's convention: ``echo ... >> $GITHUB_STEP_SUMMARY``)."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not summary:
        return False
    return os.path.realpath(path) == os.path.realpath(summary) or _same_file(path, Path(summary))


def _check_writable(
    output: str, label: str | None = None, inputs: tuple[str | None, ...] = ()
) -> None:
    """Refuse an --output (or a --report path) we could not write, or one that is an input
    or the configuration file in use, before doing any work."""
    where = label or f"--output {output}"
    if "\0" in output:
        raise UsageError(f"{where.split(' ')[0]}: a path cannot contain a NUL character")
    config_file = _run().config_file
    protected = [(source, "an input file") for source in inputs if source and source != "-"]
    if config_file is not None:
        protected.append((str(config_file), "the configuration file in use"))
    for source, what in protected:
        if _same_file(Path(output), Path(source)):
            raise UsageError(f"{where} is {what}; it would be overwritten")
    try:
        target = _target(output)
        if target.descriptor is not None:
            problem = _descriptor_problem(target.descriptor)
            if problem:
                raise UsageError(f"{where}: {problem}")
            return
        if target.path.is_dir():
            raise UsageError(f"{where}: is a directory")
        if not target.atomic:
            return  # a device or a pipe: written straight through
        parent = target.path.parent
        shown = str(parent if target.followed else Path(output).parent)
        if not parent.is_dir():
            raise UsageError(f"{where}: directory {shown!r} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"{where}: directory {shown!r} is not writable")
        name_max = _name_max(parent)
        if len(os.fsencode(target.path.name)) > name_max:
            raise UsageError(f"{where}: the file name is longer than {name_max} bytes")
    except OSError as error:
        raise UsageError(f"{where}: {error.strerror or error}") from None


def _descriptor_problem(fd: int) -> str | None:
    """Why we could not write one of our open files; for 1 and 2, the standard stream
    Python set up must be there too (None when the shell closed it: ``>&-``)."""
    stream = {1: sys.stdout, 2: sys.stderr}.get(fd, ...)
    name = {1: "standard output", 2: "standard error"}.get(fd, f"file descriptor {fd}")
    if stream is None or getattr(stream, "closed", False):
        return f"{name} is closed"
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError:
        return f"{name} is not open"
    return f"{name} is open for reading only" if flags & os.O_ACCMODE == os.O_RDONLY else None


def _name_max(directory: Path) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _parse_reports(
    specs: list[str], output: str | None, inputs: tuple[str | None, ...] = ()
) -> list[tuple[OutputFormat, str]]:
    """``--report FORMAT=PATH`` values as (format, path), each path checked as --output is;
    also refuses, before any work, a closed standard output or input that the run needs."""
    if output is None and (sys.stdout is None or getattr(sys.stdout, "closed", False)):
        raise UsageError("standard output is closed; write the report with --output PATH")
    if "-" in inputs and (sys.stdin is None or getattr(sys.stdin, "closed", False)):
        raise UsageError("-: standard input is closed; there is nothing to read")
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
    """The file a report path will replace; None for a descriptor, device or pipe."""
    try:
        target = _target(path)
    except OSError:
        return None
    return target.path if target.atomic else None


def _write_report(path: str, text: str | Iterable[str]) -> None:
    """A --report file: staged now, put in place when the run has succeeded (see
    ``_StagedReports``); written at once when called outside a command run."""
    staged = _run().staged
    try:
        if staged is not None and not staged.closed:
            staged.add(path, _pieces(text))
        else:
            _write(path, text, f"--report {path}")
    except OSError as error:
        raise SoftmaxCheckError(
            f"--report {path}: cannot write: {error.strerror or error}"
        ) from None


def _pieces(text: str | Iterable[str]) -> Iterable[str]:
    """A report as the pieces of text it is written in: a whole one is one piece."""
    return (text,) if isinstance(text, str) else text


def _write(output: str | None, text: str | Iterable[str], label: str | None = None) -> None:
    """Standard output; straight through to a descriptor, device or pipe; or atomically to
    a regular file. ``text`` may come in pieces (a renderer's chunks), written as they come:
    a failure midway leaves no partial regular file. An error names the path the user gave,
    never the temporary file."""
    where = label or ("standard output" if output is None else f"--output {output}")
    text = _pieces(text)
    try:
        if output is None:
            if sys.stdout is None:
                raise SoftmaxCheckError("standard output is closed")
            for piece in text:
                sys.stdout.write(piece)
            sys.stdout.flush()
            return
        target = _target(output)
        if target.atomic:
            temporary = _stage(target, text)
            try:
                os.replace(temporary, target.path)
            except BaseException:
                _unlink(temporary)
                raise
        else:
            _write_through(target, text)
    except OSError as error:
        raise SoftmaxCheckError(f"{where}: cannot write: {error.strerror or error}") from None


def _write_through(target: _Target, text: Iterable[str]) -> None:
    """Into an open descriptor (in its place and mode: ``>>`` keeps appending), a device or
    pipe, which are never replaced, or at the end of the step summary."""
    if target.descriptor in (1, 2):
        stream = sys.stdout if target.descriptor == 1 else sys.stderr
        for piece in text:
            stream.write(piece)
        stream.flush()
    elif target.descriptor is not None:
        with os.fdopen(os.dup(target.descriptor), "w", encoding="utf-8", errors=_ERRORS) as stream:
            stream.writelines(text)
    elif target.append:
        with open(target.path, "a", encoding="utf-8", errors=_ERRORS) as stream:
            if stream.tell():  # after what the step wrote: our heading starts a new block
                stream.write("\n")
            stream.writelines(text)
    else:
        with open(target.path, "w", encoding="utf-8", errors=_ERRORS) as stream:
            stream.writelines(text)


def _stage(target: _Target, text: Iterable[str]) -> str:
    """``text`` in a new temporary file beside ``target``, with the mode the target has (or
    a new file would get): renamed over it, readers see the old report or the new one,
    never half of one. Removed again on any failure, a signal included."""
    path = target.path
    temporary = None
    try:
        # A short prefix: the temporary name must fit where the target's name just fits.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:40]}.")
        with os.fdopen(fd, "w", encoding="utf-8", errors=_ERRORS) as stream:
            stream.writelines(text)
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~atomic.umask()
        os.chmod(temporary, mode)
        return temporary
    except BaseException:
        if temporary is not None:
            _unlink(temporary)
        raise


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except (OSError, ValueError):
        return False


def main() -> None:
    """The command itself; ``softmax_cli.entry.main`` (the console script and ``python -m
    softmax_cli``) calls it once signal handling is in place."""
    app(prog_name="softmax-check")
