"""``backprop-parity board [RUN ...]``: TensorBoard on the chosen runs only (default: the latest under
--logdir), served on 127.0.0.1 from this process until Ctrl-C; it prints the address of the tab to open,
with every run ticked and smoothing 0 (``compare.output.board``)."""

import argparse
import threading
from pathlib import Path

from tensorboard import program

from compare.cli import PROG, exits
from compare.errors import InputError
from compare.output.board import SELECTED_BY_DEFAULT, Board

TABS = ("custom_scalars", "timeseries", "hparams", "text", "images", "scalars", "histograms")
MARKERS = ("report.json", "summary.json")  # a run's or an experiment's own file


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "board",
        help="open TensorBoard on runs (default: the latest), on 127.0.0.1",
        description="Serve the chosen runs with TensorBoard on 127.0.0.1 and print the address of the tab to open "
        "(every run ticked, smoothing 0). Ctrl-C stops it.",
    )
    parser.add_argument(
        "runs",
        nargs="*",
        metavar="RUN",
        help="a run's name under --logdir (as `backprop-parity runs` lists it) or a run directory "
        "(default: the latest run)",
    )
    parser.add_argument("--logdir", default="runs", help="where the runs are (default: runs)")
    parser.add_argument(
        "--port", type=int, default=6006, help="the port on 127.0.0.1, 0 for any free one (default: 6006)"
    )
    parser.add_argument(
        "--tab", choices=TABS, default="custom_scalars", help="the tab to open (default: custom_scalars)"
    )
    parser.set_defaults(handler=board_command)


def latest(logdir: Path) -> Path:
    """The run whose report (or experiment summary) was written last; one still going counts by its folder."""
    if not logdir.is_dir():
        raise InputError(f"--logdir {logdir}: no such directory")
    runs = [path for path in logdir.iterdir() if path.is_dir() and any(path.rglob("events.out.tfevents.*"))]
    if not runs:
        raise InputError(f"no runs with TensorBoard event files under {logdir}")

    def written(path: Path) -> float:
        return max((path / name).stat().st_mtime for name in (".", *MARKERS) if (path / name).exists())

    return max(runs, key=written)


def resolve(names: list[str], logdir: Path) -> dict[str, Path]:
    """{TensorBoard name: run directory}; a name is looked up under ``logdir`` first, then as a path."""
    if not names:
        run = latest(logdir)
        return {run.name: run}
    runs: dict[str, Path] = {}
    for name in names:
        path = logdir / name if (logdir / name).is_dir() else Path(name)
        if not path.is_dir():
            raise InputError(f"{name}: no such run under {logdir}, nor a directory")
        if not any(path.rglob("events.out.tfevents.*")):
            raise InputError(f"{name}: no TensorBoard event files in {path} (was it run with --no-tensorboard?)")
        key, n = path.resolve().name, 2
        while key in runs:
            key, n = f"{path.resolve().name}-{n}", n + 1
        runs[key] = path
    return runs


def board_command(args: argparse.Namespace) -> int:
    runs = resolve(args.runs, Path(args.logdir))
    try:
        board = Board(runs, args.port)
    except program.TensorBoardServerException as error:
        raise InputError(f"--port {args.port}: {error.msg} (--port 0 picks a free one)") from None
    try:
        board.wait()
        print(f"{PROG} board: TensorBoard on {', '.join(runs)} ({len(board.runs)} TensorBoard runs); open", flush=True)
        print(f"  {board.url(args.tab)}", flush=True)
        print(
            "  Custom Scalars: the two loss curves and manual − torch, each parity stage under its tolerance line; "
            "HParams: one sortable row per run; Text: the verdict; Images: an experiment's pictures",
            flush=True,
        )
        if len(board.runs) > SELECTED_BY_DEFAULT:
            print(
                f"  note: more than {SELECTED_BY_DEFAULT} TensorBoard runs, so a tab opened without this address "
                "ticks none of them: tick them in its run list, or open fewer runs",
                flush=True,
            )
        print("  Ctrl-C stops it", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        print(f"{PROG} board: stopped", flush=True)
    finally:
        board.close()
    return exits.PASS
