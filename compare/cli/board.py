"""``backprop-parity board [RUN ...] [--all] [--experiment NAME]``: TensorBoard on 127.0.0.1, serving every
run under --logdir (and any run directory named outside it), opened on the runs that matter: by default
the latest run and every run that did not pass, selected through TensorBoard's own run filter
(``compare.output.board``), at smoothing 0. It prints who is shown, the address, and how to open more."""

import argparse
import textwrap
import threading
from pathlib import Path

from tensorboard import program

from compare import exits
from compare.cli import PROG
from compare.errors import InputError
from compare.output import textwidth
from compare.output.board import Board
from compare.output.runlist import Listed, has_events, listing

TABS = ("custom_scalars", "timeseries", "hparams", "text", "images", "scalars", "histograms")
MORE = "more: board --all | board RUN ... | board --experiment NAME, or edit the run filter; Ctrl-C stops"


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "board",
        help="open TensorBoard on the latest and the failing runs (or those named), on 127.0.0.1",
        description="Serve the runs under --logdir with TensorBoard on 127.0.0.1 and print the address of the tab "
        "to open, filtered to the latest run and every run that did not pass (or to the runs named, an experiment, "
        "or all), at smoothing 0. Ctrl-C stops it.",
    )
    parser.add_argument(
        "runs",
        nargs="*",
        metavar="RUN",
        help="a run's name under --logdir (as `backprop-parity runs` lists it) or a run directory",
    )
    parser.add_argument("--all", action="store_true", help="every run under --logdir, no filter")
    parser.add_argument("--experiment", metavar="NAME", help="the runs of this experiment (as `runs` lists them)")
    parser.add_argument("--logdir", default="runs", help="where the runs are (default: runs)")
    parser.add_argument(
        "--port", type=int, default=6006, help="the port on 127.0.0.1, 0 for any free one (default: 6006)"
    )
    parser.add_argument(
        "--tab",
        choices=TABS,
        help="the tab to open (default: custom_scalars, or timeseries when the runs opened make over 40 "
        "TensorBoard runs, which the other dashboards would leave unticked)",
    )
    parser.set_defaults(handler=board_command)


def served_runs(logdir: Path, named: list[str]) -> tuple[dict[str, Path], list[str]]:
    """{TensorBoard name: run directory}: every run under ``logdir`` with event files, and the named ones
    that are directories elsewhere; and the TensorBoard names of the named ones. A name that is neither
    is an error, before anything starts."""
    if not logdir.is_dir() and not named:
        raise InputError(f"--logdir {logdir}: no such directory")
    runs = {path.name: path for path in sorted(logdir.iterdir()) if path.is_dir()} if logdir.is_dir() else {}
    keys = []
    for name in named:
        path = logdir / name if (logdir / name).is_dir() else Path(name)
        if not path.is_dir():
            raise InputError(f"{name}: no such run under {logdir}, nor a directory")
        if not has_events(path):
            raise InputError(f"{name}: no TensorBoard event files in {path} (was it run with --no-tensorboard?)")
        key, n = path.resolve().name, 2
        while key in runs and runs[key].resolve() != path.resolve():
            key, n = f"{path.resolve().name}-{n}", n + 1
        runs[key] = path
        keys.append(key)
    runs = {key: path for key, path in runs.items() if has_events(path)}
    if not runs:
        raise InputError(f"no runs with TensorBoard event files under {logdir}")
    return runs, keys


def choose(
    args: argparse.Namespace, runs: dict[str, Path], named: list[str], listed: list[Listed]
) -> tuple[list[str] | None, str]:
    """The top-level names to open (None: all) and a line saying which."""
    if args.all:
        return None, f"all {len(runs)} runs"
    if named:
        return named, ", ".join(named)
    shown = [entry for entry in listed if entry.path.name in runs]
    if args.experiment:
        names = [entry.name for entry in shown if entry.name.startswith(f"experiment-{args.experiment}-")]
        return names, f"experiment {args.experiment}: {', '.join(names)}"
    failing = [entry.name for entry in shown if not entry.passed]
    latest = shown[-1].name if shown else max(runs, key=lambda key: runs[key].stat().st_mtime)
    names = [latest, *(name for name in failing if name != latest)]
    said = f"the latest, {latest}"
    if failing:
        said += f", and {len(failing)} that did not pass: {', '.join(failing)}"
    return names, said


def check_choice(args: argparse.Namespace, logdir: Path) -> None:
    if args.all and (args.runs or args.experiment):
        raise InputError("--all opens every run: give it without RUN names or --experiment")
    if args.runs and args.experiment:
        raise InputError("give RUN names or --experiment, not both")
    if args.experiment and not any(
        path.name.startswith(f"experiment-{args.experiment}-") for path in (logdir.iterdir() if logdir.is_dir() else [])
    ):
        raise InputError(f"--experiment {args.experiment}: no such experiment under {logdir} (`runs` lists them)")


def experiment_lines(board: Board, chosen: list[str]) -> list[str]:
    """An experiment's pictures and conclusion, each an address of its own: its ``summary`` run alone,
    so that the Images and Text tabs tick it however many runs its sub-runs make."""
    summaries = [f"{name}/summary" for name in chosen]
    return [
        f"  pictures: {board.address(board.url('images', summaries))}",
        f"  conclusion: {board.address(board.url('text', summaries))}",
    ]


def board_command(args: argparse.Namespace) -> int:
    logdir = Path(args.logdir)
    check_choice(args, logdir)
    runs, named = served_runs(logdir, args.runs)
    listed = listing(logdir) if logdir.is_dir() else []
    chosen, said = choose(args, runs, named, listed)
    try:
        label = f"{len(runs)} run{'s' if len(runs) != 1 else ''} under {args.logdir} (backprop-parity board)"
        board = Board(runs, args.port, label=label)
    except program.TensorBoardServerException as error:
        raise InputError(f"--port {args.port}: {error.msg} (--port 0 picks a free one)") from None
    try:
        board.wait()
        width = textwidth.terminal_columns()
        for line in textwrap.wrap(f"{PROG} board: {said}", width, subsequent_indent="  ", break_on_hyphens=False):
            print(line, flush=True)
        print(f"  {board.address(board.url(args.tab, chosen))}", flush=True)
        for line in experiment_lines(board, chosen) if args.experiment else []:
            print(line, flush=True)
        print(f"  {MORE}", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        print(f"{PROG} board: stopped", flush=True)
    finally:
        board.close()
    return exits.PASS
