"""What the health measures (entropy, margin) cost: this tree against a git revision.

    python benchmarks/health_bench.py                 # against b685e5c, 4096 x 32000 float32
    python benchmarks/health_bench.py --base HEAD~3 --rounds 6
    python benchmarks/health_bench.py --without-health --rounds 16
    python benchmarks/health_bench.py --without-health --in-process --rounds 30
    python benchmarks/health_bench.py --without-health --in-process --same --rounds 30

``--without-health`` compares with this very tree with the float32 check's health passes
taken out (``ABLATION``: no second-largest entry for the margin, no weighted sum for
the entropy, ``exp(x - m)`` in place as before them): what the measures cost now,
apart from everything else that changed since b685e5c. ``--in-process`` switches the
ablation on and off in one process (``fastpath.ABLATED``), alternating runs of the check;
``--same`` leaves it off on both sides, so the ratio shows what the machine's noise alone
gives (ideally 1.000x) beside the figure it qualifies.

Exports the revision's ``softmax_cli`` into a temporary directory and times the in-process
check (the minimum of 3 runs after a warm-up, in a fresh process) of the benchmark dump,
alternating the two trees ``--rounds`` times so a loaded machine hurts both alike. Prints
each figure, the ratio of the medians and the median of the rounds' own ratios.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench import make_dump  # noqa: E402

TIMED = r"""
import sys, time
import numpy as np
import softmax_cli
from softmax_cli import check
assert softmax_cli.__file__.startswith(sys.argv[3]), softmax_cli.__file__
x = np.load(sys.argv[1], mmap_mode="r"); t = np.load(sys.argv[2])
check(x, t)
times = []
for _ in range(3):
    start = time.perf_counter(); check(x, t); times.append(time.perf_counter() - start)
print(min(times))
"""


# The float32 path of fastpath.reduce_rows without its health passes, where the module's
# ABLATED is true: each (old, new) must match fastpath.py once, or the ablation is stale.
# The maximum is max's alone (no strands' running maxima for the second-largest entry),
# there is no weighted sum for the entropy, and exp(x - m) is in place as before them. The
# emulated dtypes keep theirs.
ABLATION = (
    (
        "                m = strands.maxima(piece, rows)\n",
        "                m = piece.max(axis=1) if ABLATED else strands.maxima(piece, rows)\n",
    ),
    (
        "            exact = np.exp(shifted, out=exact_buf[: stop - start])\n",
        "            exact = np.exp(shifted, out=shifted if ABLATED and not dtype.is_emulated"
        " else exact_buf[: stop - start])\n",
    ),
    (
        '            np.einsum("ij,ij->i", exact, shifted, out=out.weighted[rows])\n',
        "            if ABLATED and not dtype.is_emulated:  # no entropy\n"
        "                out.weighted[rows] = 0\n"
        "            else:\n"
        '                np.einsum("ij,ij->i", exact, shifted, out=out.weighted[rows])\n',
    ),
    (
        "if classes > 1 else np.nan\n",
        "if classes > 1 and not (ABLATED and not dtype.is_emulated) else np.nan\n",
    ),
)

# --in-process: one process alternates the check with the ablation on and off, so each
# pair of runs shares the same memory, page cache and moment.
TOGGLED = r"""
import statistics, sys, time
import numpy as np
import softmax_cli
from softmax_cli import check, fastpath
assert softmax_cli.__file__.startswith(sys.argv[3]), softmax_cli.__file__
x = np.load(sys.argv[1], mmap_mode="r"); t = np.load(sys.argv[2])
times = {True: [], False: []}
same = sys.argv[5] == "same"  # neither side ablated: the noise alone
for ablated in (True, False):
    fastpath.ABLATED = ablated and not same
    check(x, t)
for i in range(int(sys.argv[4])):
    for ablated in (i % 2 == 0, i % 2 == 1):
        fastpath.ABLATED = ablated and not same
        start = time.perf_counter(); check(x, t); times[ablated].append(time.perf_counter() - start)
print(" ".join(f"{a:.5f},{b:.5f}" for a, b in zip(times[True], times[False])))
"""


def ablated(directory: str, *, on: bool = True) -> None:
    """This tree's softmax_cli in ``directory``, its float32 health passes taken out while
    ``fastpath.ABLATED`` is true (``on``: its value at import)."""
    shutil.copytree(ROOT / "softmax_cli", Path(directory) / "softmax_cli")
    path = Path(directory) / "softmax_cli" / "fastpath.py"
    text = path.read_text()
    if not all(text.count(old) == 1 for old, _ in ABLATION):
        sys.exit("health_bench: the ablation no longer matches softmax_cli/fastpath.py")
    for old, new in ABLATION:
        text = text.replace(old, new)
    path.write_text(text + f"\n\nABLATED = {on}  # health_bench's ablation\n")


def report(base: list[float], this: list[float]) -> None:
    before, after = statistics.median(base), statistics.median(this)
    # Each round's two runs are next to each other in time: their ratio is steadier than
    # the ratio of the medians on a machine whose speed drifts.
    paired = statistics.median(a / b for a, b in zip(this, base, strict=True))
    print(
        f"median: base {before:.3f} s, this tree {after:.3f} s "
        f"({100 * (after / before - 1):+.1f}%); median of the rounds' ratios {paired:.3f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="b685e5c", help="git revision to compare with")
    parser.add_argument(
        "--without-health", action="store_true", help="compare with this tree, health ablated"
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="with --without-health: alternate both in one process, not one process each",
    )
    parser.add_argument(
        "--same",
        action="store_true",
        help="with --in-process: the ablation off on both sides, to show the noise alone",
    )
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    if args.same and not args.in_process:
        parser.error("--same needs --in-process")
    logits, targets = make_dump(4096, 32000)
    with tempfile.TemporaryDirectory() as base, tempfile.TemporaryDirectory() as neutral:
        if args.in_process:
            ablated(base)
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    TOGGLED,
                    *(str(logits), str(targets), base, str(args.rounds)),
                    "same" if args.same else "ablated",
                ],
                env={**os.environ, "PYTHONPATH": base},
                cwd=neutral,
                capture_output=True,
                text=True,
                check=True,
            )
            pairs = [tuple(map(float, pair.split(","))) for pair in out.stdout.split()]
            report([a for a, _ in pairs], [b for _, b in pairs])
            return
        if args.without_health:
            ablated(base)
        else:
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", args.base, "softmax_cli"],
                capture_output=True,
                check=True,
            ).stdout
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(base, filter="data")
        trees = {"base": base, "this": str(ROOT)}
        times: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                env = {**os.environ, "PYTHONPATH": tree}
                # Run outside the checkout: `python -c` puts the working directory first on
                # sys.path, and from the checkout's root that is this tree's package.
                out = subprocess.run(
                    [sys.executable, "-c", TIMED, str(logits), str(targets), tree],
                    env=env,
                    cwd=neutral,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                times[name].append(float(out.stdout))
                print(f"{name:5s} {times[name][-1]:.3f} s", flush=True)
    report(times["base"], times["this"])


if __name__ == "__main__":
    main()
