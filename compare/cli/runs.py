"""``backprop-parity runs``: what is under the log directory, one line per run."""

import argparse
import json
from pathlib import Path

from compare.cli import exits
from compare.errors import InputError

COLUMNS = ("run", "date", "optimizer", "dtype", "steps", "verdict")


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "runs",
        help="list the runs under the log directory",
        description="List each run directory under --logdir with its date, optimizer, dtype, steps and verdict "
        "(read from its report.json).",
    )
    parser.add_argument("--logdir", default="runs", help="where the runs are (default: runs)")
    parser.set_defaults(handler=list_runs)


def verdict(report: dict) -> str:
    if not report.get("complete", True):
        return "INCOMPLETE"
    if report.get("variant") and report["variant"].get("departs"):
        return f"DEPARTS at step {report['variant']['first_departure']['step']}"
    if report.get("passed"):
        return "PASS"
    failure = report.get("first_failure") or {}
    return f"FAIL at step {failure.get('step')}, {failure.get('stage')} {failure.get('tensor')}"


def describe(run_dir: Path) -> tuple[str, ...]:
    """One row; a directory without a readable report is listed as such, never skipped silently."""
    try:
        report = json.loads((run_dir / "report.json").read_text())
        config = report["config"]
        date = (report.get("started_at") or "?").replace("T", " ")[:16]
        return (run_dir.name, date, config["optimizer"], config["dtype"], str(report["steps"]), verdict(report))
    except (OSError, ValueError, KeyError, TypeError):
        return (run_dir.name, "?", "?", "?", "?", "no readable report.json")


def list_runs(args: argparse.Namespace) -> int:
    logdir = Path(args.logdir)
    if not logdir.is_dir():
        raise InputError(f"--logdir {logdir}: no such directory")
    rows = [describe(path) for path in sorted(logdir.iterdir()) if path.is_dir()]
    if not rows:
        print(f"no runs under {logdir}")
        return exits.PASS
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    for row in [COLUMNS, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return exits.PASS
