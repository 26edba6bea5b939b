"""What is under a log directory: one ``Listed`` per run or experiment, read from its ``report.json`` or
``summary.json``, oldest first. ``backprop-parity runs`` prints them; ``backprop-parity board`` opens the
latest and the failing ones. A directory without a readable report is listed as such, never skipped."""

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from compare.core.verdict import Word, of_report
from compare.errors import InputError
from compare.output.overview import special

MARKERS = ("report.json", "summary.json")  # a run's or an experiment's own file
EVENTS = "events.out.tfevents.*"


@dataclass(frozen=True)
class Listed:
    """One run or experiment. ``passed`` is False for anything but a PASS (a failure, a textbook
    variant that departs, an interrupted or unreadable run): those are what a reader looks for first."""

    name: str
    path: Path
    date: str  # UTC, minutes
    what: str  # the optimizer, or "experiment"
    lr: str
    activation: str
    dtype: str
    steps: str
    verdict: str
    special: str
    passed: bool
    written: float  # when its report was written (seconds since the epoch), for "latest"


def written(path: Path) -> float:
    """When the run's report (or experiment summary) was written; a run still going counts by its folder."""
    return max((path / name).stat().st_mtime for name in (".", *MARKERS) if (path / name).exists())


def describe(run_dir: Path) -> Listed:
    try:
        if (run_dir / "summary.json").is_file() and not (run_dir / "report.json").is_file():
            return describe_experiment(run_dir)
        report = json.loads((run_dir / "report.json").read_text())
        config = report["config"]
        date = (report.get("started_at") or "?").replace("T", " ")[:16]
        lr = (config.get("hyperparameters") or {}).get("lr")
        row = (config["optimizer"], f"{lr:g}" if isinstance(lr, int | float) else "", config.get("activation", ""))
        decided = of_report(report)
        rest = (config["dtype"], str(report["steps"]), decided.cell(), special(config), decided.passed)
        return Listed(run_dir.name, run_dir, date, *row, *rest, written(run_dir))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        when = run_dir.stat().st_mtime if run_dir.exists() else 0.0  # a run still going: when it started
        return Listed(run_dir.name, run_dir, "?", "?", "", "", "?", "?", "no readable report.json", "", False, when)


def describe_experiment(run_dir: Path) -> Listed:
    """An experiment's row, from its summary.json (dated when it was written)."""
    path = run_dir / "summary.json"
    summary = json.loads(path.read_text())
    date = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).strftime("%Y-%m-%d %H:%M")
    steps = sum(entry.get("steps", 0) for entry in summary.get("parity", []))
    if summary.get("interrupted"):
        outcome = str(Word.INCOMPLETE)
    elif summary.get("passed"):
        outcome = str(Word.PASS)
    else:
        outcome = f"{Word.FAIL} in sub-run {(summary.get('parity_failure') or {}).get('subrun', '?')}"
    lang = f"lang {summary['lang']}" if summary.get("lang", "en") != "en" else ""  # the name says which experiment
    row = ("experiment", "", "", summary.get("dtype", "?"), str(steps), outcome, lang, outcome.startswith("PASS"))
    return Listed(run_dir.name, run_dir, date, *row, written(run_dir))


def listing(logdir: Path) -> list[Listed]:
    """Every run and experiment directly under ``logdir``, oldest first (by when its report was written)."""
    if not logdir.is_dir():
        raise InputError(f"--logdir {logdir}: no such directory")
    found = [describe(path) for path in logdir.iterdir() if path.is_dir()]
    return sorted(found, key=lambda listed: (listed.written, listed.name))


def has_events(path: Path) -> bool:
    return any(path.rglob(EVENTS))
