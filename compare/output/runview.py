"""A past run read back: ``runs show RUN`` prints its verdict exactly as the run printed it (the run
directory's verdict.txt, ``compare.output.rundir.VERDICT_TEXT``), and ``runs diff A B`` puts two runs'
settings and per-stage worst figures side by side (from their report.json). Runs are found by name
under the log directory, as ``runs`` lists them, or by their directory."""

import json
from pathlib import Path

from compare.core.tolerances import STAGES
from compare.core.verdict import of_report
from compare.errors import InputError
from compare.output import textwidth
from compare.output.report import fmt
from compare.output.rundir import VERDICT_TEXT
from compare.output.runlist import MARKERS

REPORT, SUMMARY = MARKERS  # a run's report.json, an experiment's summary.json


def find(logdir: Path, name: str) -> Path:
    """The run directory ``name`` names: ``logdir/name``, a directory holding a report, or the one run
    under ``logdir`` whose name holds ``name``. Anything else is one clear error."""
    for path in (logdir / name, Path(name)):
        if path.is_dir() and any((path / marker).is_file() for marker in MARKERS):
            return path
    holding = sorted(p for p in logdir.iterdir() if p.is_dir() and name in p.name) if logdir.is_dir() else []
    labelled = [p for p in holding if p.name == name or p.name.split("-", 2)[-1] == name]  # after the time
    if len(holding) == 1 or len(labelled) == 1:
        return (labelled or holding)[0]
    if holding:
        names = ", ".join(p.name for p in holding[:5]) + (", ..." if len(holding) > 5 else "")
        raise InputError(f"{name}: {len(holding)} runs under {logdir} hold that name ({names}); give one in full")
    raise InputError(f"{name}: no run under {logdir} has that name, nor is it a run directory")


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable report ({error})") from None


def show(run_dir: Path) -> str:
    """The run's verdict as its terminal showed it (a run from before verdict.txt existed: its verdict
    word, from report.json); an experiment's conclusion."""
    if (run_dir / VERDICT_TEXT).is_file():
        return (run_dir / VERDICT_TEXT).read_text().rstrip("\n")
    if (run_dir / REPORT).is_file():
        found = of_report(_read(run_dir / REPORT)).cell()
        return f"{found} (the run predates {VERDICT_TEXT}; report.json has the rest)"
    summary = _read(run_dir / SUMMARY)
    if summary.get("interrupted"):
        return "INCOMPLETE: the experiment was interrupted"
    if summary.get("passed"):
        return "\n".join([f"conclusion: {summary.get('conclusion', '')}", "PASS: parity held throughout"])
    broken = summary.get("parity_failure") or {}
    return f"{broken.get('detail', '')}\nFAIL: parity broken in sub-run {broken.get('subrun', '?')}"


def _setting(value: object) -> str:
    if isinstance(value, dict):
        return " ".join(f"{key}={_setting(item)}" for key, item in value.items())
    if isinstance(value, list):
        return ",".join(map(_setting, value))
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def _flat(config: dict) -> dict:
    """The configuration with its optimizer's hyperparameters as settings of their own."""
    flat = {key: value for key, value in config.items() if key != "hyperparameters"}
    return flat | {key: value for key, value in (config.get("hyperparameters") or {}).items()}


def _figure(report: dict, stage: str) -> str:
    found = (report.get("worst") or {}).get(stage)
    if not found:
        return "-"
    return f"{fmt(found.get('max_rel'))} / {found.get('tolerance', 0):.0e} at step {found.get('step')}"


def diff_rows(a: dict, b: dict) -> list[tuple[str, str, str]]:
    """(what, A, B): the verdicts, every setting (those that differ first), each stage's worst max_rel /
    tolerance, the steps and the final losses."""
    rows = [("verdict", of_report(a).cell(), of_report(b).cell())]
    config_a, config_b = a.get("config") or {}, b.get("config") or {}
    config_a, config_b = _flat(config_a), _flat(config_b)
    keys = [key for key in {**config_a, **config_b} if key not in ("device_settings", "run_dir")]
    settings = [(key, _setting(config_a.get(key)), _setting(config_b.get(key))) for key in keys]
    rows += sorted(settings, key=lambda row: row[1] == row[2])  # stable: the differing ones first
    rows += [(f"worst {stage}", _figure(a, stage), _figure(b, stage)) for stage in STAGES]
    rows.append(("steps done", str(a.get("steps")), str(b.get("steps"))))
    for side in ("manual", "torch"):
        last = [(report.get("losses") or {}).get(side) or [None] for report in (a, b)]
        rows.append((f"last loss, {side}", *(_setting(values[-1]) for values in last)))
    return rows


def diff(run_a: Path, run_b: Path, columns: int) -> list[str]:
    """Two runs side by side in ``columns`` display columns; a row whose values differ is marked ``*``."""
    for path in (run_a, run_b):
        if not (path / REPORT).is_file():
            raise InputError(f"{path.name}: an experiment or a run without report.json; diff takes two runs")
    rows = diff_rows(_read(run_a / REPORT), _read(run_b / REPORT))
    head = ("", run_a.name, run_b.name)
    label = max(textwidth.width(row[0]) for row in [head, *rows])
    cell = max(12, (columns - label - 6) // 2)
    lines = []
    for what, left, right in [head, *rows]:
        mark = "*" if what and left != right else " "
        left = textwidth.ljust(textwidth.cut(left, cell), cell)
        parts = [textwidth.ljust(what, label), left, textwidth.cut(right, cell)]
        lines.append(f"{mark} " + "  ".join(parts).rstrip())
    return lines
