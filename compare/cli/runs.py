"""``backprop-parity runs``: what is under the log directory, one line per run or experiment, with what
made it special (an injected fault, a textbook variant, a schedule, a data file)."""

import argparse
import datetime as dt
import json
from pathlib import Path

from compare.cli import exits
from compare.errors import InputError
from compare.experiments.base import DTYPE
from compare.output.overview import special

COLUMNS = ("run", "date (UTC)", "what", "dtype", "steps", "verdict", "special")


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "runs",
        help="list the runs under the log directory",
        description="List each run and experiment under --logdir with its date, optimizer (or experiment), dtype, "
        "steps, verdict and what made it special (read from its report.json or summary.json).",
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
        if (run_dir / "summary.json").is_file() and not (run_dir / "report.json").is_file():
            return describe_experiment(run_dir)
        report = json.loads((run_dir / "report.json").read_text())
        config = report["config"]
        date = (report.get("started_at") or "?").replace("T", " ")[:16]
        row = (config["optimizer"], config["dtype"], str(report["steps"]), verdict(report), special(config))
        return (run_dir.name, date, *row)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return (run_dir.name, "?", "?", "?", "?", "no readable report.json", "")


def describe_experiment(run_dir: Path) -> tuple[str, ...]:
    """An experiment's row, from its summary.json (dated when it was written)."""
    path = run_dir / "summary.json"
    summary = json.loads(path.read_text())
    date = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).strftime("%Y-%m-%d %H:%M")
    steps = sum(entry.get("steps", 0) for entry in summary.get("parity", []))
    if summary.get("interrupted"):
        outcome = "INTERRUPTED"
    elif summary.get("passed"):
        outcome = "PASS (parity held)"
    else:
        outcome = f"FAIL in sub-run {(summary.get('parity_failure') or {}).get('subrun', '?')}"
    return (run_dir.name, date, "experiment", DTYPE, str(steps), outcome, summary["experiment"])


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
