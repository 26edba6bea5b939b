"""report.html: a run's verdict as one self-contained page, to send to someone who has no TensorBoard.

The verdict first (its word, then its line), the per-stage table, the diagnosis (the verdict's text as
the terminal printed it), the parity chart inline as SVG (matplotlib, no script), and the settings. No
network fetch of any kind (no script, stylesheet, font or image from elsewhere), and readable on a phone:
a viewport meta tag, one column, the verdict line wrapped, the tables of numbers and the printed text
scrolling sideways inside themselves (their columns kept), the settings wrapped."""

import html
import io
import math
import warnings
from collections.abc import Sequence

from compare.core.tolerances import STAGES
from compare.output.report import fmt

COLOURS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "DEPARTS": "#9a6700", "DIVERGED": "#8250df", "INCOMPLETE": "#57606a"}
MARKS = {"DEPARTS": "dep", "DIVERGED": "div"}  # a stage outside tolerance, as the terminal's table marks it
STYLE = """
body{font:16px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;background:#fff}
main{max-width:56rem;margin:0 auto;padding:1rem}
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.4rem 0 .4rem}
.line{font-size:1.05rem;overflow-wrap:anywhere}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-variant-numeric:tabular-nums}
td,th{border-bottom:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;white-space:nowrap}
pre{white-space:pre;overflow-x:auto;background:#f6f8fa;padding:.6rem;font-size:.85rem}
.wrap td{white-space:normal;overflow-wrap:anywhere}
svg{max-width:100%;height:auto}
"""


def _word_colour(word: str) -> str:
    return COLOURS.get(word.split(" ")[0], "#1f2328")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3e}" if math.isfinite(value) and value != 0 and abs(value) < 1e-3 else f"{value:g}"
    if isinstance(value, dict):
        return " ".join(f"{key}={_cell(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_cell(item) for item in value)
    return "" if value is None else str(value)


def _table(head: Sequence[str], rows: list[Sequence[object]], wrap: bool = False) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>" for row in rows)
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    kind = ' class="wrap"' if wrap else ""  # a table of text wraps; one of numbers scrolls sideways
    return f'<div class="scroll"><table{kind}><tr>{header}</tr>{cells}</table></div>'


STAGE_HEAD = ("stage", "worst max_rel", "tolerance", "max_rel/tol", "", "step", "tensor")


def stage_rows(worst: dict, drift_steps: Sequence[int] = (), departs: str = "BAD") -> list[tuple]:
    """(stage, worst max_rel, tolerance, max_rel / tolerance, mark, step, tensor), in the stages' order;
    the mark is ok, drift (above 1 at a step judged drift), or ``departs`` (BAD, dep, div)."""
    rows = []
    for stage in STAGES:
        found = worst.get(stage)
        if not found:
            continue
        max_rel, limit = found.get("max_rel"), found.get("tolerance")
        ratio = max_rel / limit if max_rel is not None and limit else None
        mark = "ok" if ratio is not None and ratio <= 1 else "drift" if found["step"] in drift_steps else departs
        ratio = "inf" if ratio is None else f"{ratio:.3g}"
        rows.append((stage, fmt(max_rel), f"{limit:.1e}", ratio, mark, found["step"], found["tensor"]))
    return rows


def parity_svg(step_worst: Sequence[float], tolerance: float, losses: dict) -> str:
    """Each step's worst max_rel against the tolerance (log scale), and both sides' loss: inline SVG."""
    with warnings.catch_warnings():  # a one-step run draws single points: matplotlib widens their axes itself
        warnings.filterwarnings("ignore", "Attempting to set identical", UserWarning)
        return _parity_svg(step_worst, tolerance, losses)


def _parity_svg(step_worst: Sequence[float], tolerance: float, losses: dict) -> str:
    from matplotlib.figure import Figure  # here: a check that writes no page does not load matplotlib

    figure = Figure(figsize=(6.4, 3.2), dpi=100)  # margins set by hand: a constrained layout doubles the time
    figure.subplots_adjust(left=0.1, right=0.98, bottom=0.15, top=0.9, wspace=0.28)
    parity, loss = figure.subplots(1, 2)
    steps = list(range(1, len(step_worst) + 1))
    shown = [value if value is not None and math.isfinite(value) and value > 0 else math.nan for value in step_worst]
    parity.semilogy(steps, shown, marker="o", markersize=2, label="worst max_rel")
    parity.axhline(tolerance, color="#cf222e", linestyle="--", label=f"tolerance {tolerance:.0e}")
    parity.set(title="parity per step", xlabel="step")
    parity.legend(fontsize=7, loc="best")
    for side, style in (("manual", "-"), ("torch", "--")):
        values = [v if v is not None and math.isfinite(v) else math.nan for v in losses.get(side) or []]
        loss.plot(range(1, len(values) + 1), values, style, label=side)
    loss.set(title="training loss", xlabel="step")
    loss.legend(fontsize=7, loc="best")
    out = io.StringIO()
    figure.savefig(out, format="svg")
    text = out.getvalue()
    return text[text.index("<svg") :]  # the inline element, without the XML prologue and doctype


def page(title: str, word: str, verdict_text: str, sections: list[tuple[str, str]]) -> str:
    """The page: ``word`` as the heading, the verdict's last line under it, then ``sections``
    (heading, HTML) in order."""
    lines = verdict_text.splitlines() or [word]
    body = "".join(f"<h2>{html.escape(heading)}</h2>{content}" for heading, content in sections)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body><main>"
        f'<h1 style="color:{_word_colour(word)}">{html.escape(word)}</h1>'
        f'<p class="line">{html.escape(lines[-1])}</p>{body}</main></body></html>\n'
    )


def run_page(report: dict, verdict_text: str, step_worst: Sequence[float], run: str) -> str:
    """A run's report.html, from its report.json, its printed verdict and each step's worst max_rel."""
    word = str(report.get("verdict") or ("PASS" if report.get("passed") else "FAIL"))
    worst = report.get("worst") or {}
    drift_steps = (report.get("drift") or {}).get("steps") or []
    limits = [stage["max_rel"] for stage in (report.get("tolerances") or {}).values()] or [1e-10]
    config = {key: value for key, value in (report.get("config") or {}).items() if key != "device_settings"}
    sections = [
        ("Per stage", _table(STAGE_HEAD, stage_rows(worst, drift_steps, MARKS.get(word, "BAD")))),
        ("Diagnosis, as the terminal printed it", f"<pre>{html.escape(verdict_text)}</pre>"),
        ("Parity chart", parity_svg(step_worst, min(limits), report.get("losses") or {})),
        ("Settings", _table(("setting", "value"), list(config.items()), wrap=True)),
    ]
    return page(f"{run}: {word}", word, verdict_text, sections)


def check_page(kind: str, passed: bool, text: str, rows: list[Sequence[object]]) -> str:
    """A check's report.html (``check_layer``, ``check_model``, ...): the verdict, the per-stage table
    (``rows``: stage, tensor, max_rel, tolerance, ok/FAIL) and the check's text, diagnosis and fix included."""
    word = "PASS" if passed else "FAIL"
    sections = [
        ("Per stage", _table(("stage", "worst tensor", "max_rel", "tolerance", ""), rows)),
        ("Diagnosis and fix", f"<pre>{html.escape(text)}</pre>"),
    ]
    return page(f"your {kind}: {word}", word, f"{word}: your {kind}", sections)
