"""TensorBoard for the lecture's experiments, written the way a run's is (``compare.output.tensorboard``):
one event-writing path (``compare.output.events``), the same parity curves, the same HParams columns.

``<experiment>/<sub-run>/``: ``manual/`` and ``torch/`` (the same tags: loss/train, lr, the experiment's
measurements), ``difference/`` (loss/train_manual_minus_torch), ``parity/<stage>/`` and
``parity/tolerance/``, ``summary/`` (an HParams row for the sub-run: its optimizer, lr, activation, ...,
with the verdict and worst max_rel as metrics, and its verdict text).

``<experiment>/summary/``: the conclusion as text (first), the results table, the parity line; the
custom-scalars layout; and the pictures (Images tab), also saved as ``<experiment>/<name>.png``.
``pictures_from`` draws the ones any experiment's curves allow (loss per sub-run, train against
validation, gradient norm against depth); an experiment adds its own with ``ExperimentBoard.picture``.
"""

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from torch.utils.tensorboard import summary

from compare.core.records import StepRecord
from compare.core.verdict import Verdict, Word
from compare.i18n import _
from compare.output import figures
from compare.output.events import LazyWriters
from compare.output.overview import DECISIONS, SUMMARY_RUN, Overview
from compare.output.parity_curves import MAX_REL, RATIO, ParityCurves, stage_run
from compare.output.tensorboard import DIFFERENCE, GAP
from compare.output.tensorboard import LAYOUT as RUN_LAYOUT
from manual.optim import REGISTRY

Pairs = dict[str, tuple[float, float]]  # tag → (manual value, torch value)
LAYER = re.compile(r"^grad_norm/layer(\d+)$")
# An experiment's own texts (a derivation, a graph) sort after "conclusion" and "verdict": TensorBoard's
# Text tab opens its first two categories, so those two are the ones open (``compare.output.board``).
WORKINGS = "workings"
# The run's layout, chart for chart (TensorBoard merges categories of the same title and drops identical
# charts, so a board with runs and experiments shows each chart once), plus the experiments' gradient norms.
LAYOUT = {title: dict(charts) for title, charts in RUN_LAYOUT.items()}
LAYOUT[next(iter(LAYOUT))]["gradient norms (manual, torch)"] = ["Multiline", [r"^grad_norm/"]]


def subrun_config(lockstep, steps: int, dtype: str, extra: dict | None = None) -> dict:
    """A sub-run's configuration, read from its twins (the optimizer rule and the model's spec), for its
    HParams row; ``extra`` adds what the twins do not know (a batch size, a dataset)."""
    rule = lockstep.manual.optimizer
    name = next((key for key, entry in REGISTRY.items() if type(rule) is entry.rule), type(rule).__name__)
    spec = lockstep.manual.model.spec
    config = {
        "optimizer": name,
        "hyperparameters": dataclasses.asdict(rule) if dataclasses.is_dataclass(rule) else {},
        "layers": list(spec.widths),
        "activation": spec.activation,
        "loss": spec.loss,
        "dtype": dtype,
        "steps": steps,
    }
    return config | (extra or {})


class SubRunWriters:
    """TensorBoard for one sub-run (see the module's docstring)."""

    def __init__(self, path: Path, run: str, config: dict, dtype: str) -> None:
        self.writers = LazyWriters(path)
        self.curves = ParityCurves(self.writers, dtype)
        self.overview = Overview(self.writers[SUMMARY_RUN], run, config, None)
        self.worst = 0.0  # the largest max_rel / tolerance so far
        self.last_step = 0
        self.failure: tuple[int, str] | None = None

    def log_step(self, record: StepRecord, pairs: Pairs) -> None:
        """The step's losses and lr, the measurements ``pairs``, the loss difference and the parity curves."""
        losses = {"loss/train": (record.loss_manual, record.loss_torch), "lr": (record.lr_manual, record.lr)}
        self.pairs(losses | pairs, record.step)
        self.writers.scalars(DIFFERENCE, {f"loss/train{GAP}": record.loss_manual - record.loss_torch}, record.step)
        self.worst = max(self.worst, self.curves.log(record.step, record.worst_by_stage()))
        self.last_step = record.step
        if self.failure is None and record.first_failure is not None:
            self.failure = (record.step, record.first_failure.stage)

    def pairs(self, pairs: Pairs, step: int) -> None:
        self.writers.scalars("manual", {tag: manual for tag, (manual, _) in pairs.items()}, step)
        self.writers.scalars("torch", {tag: reference for tag, (_, reference) in pairs.items()}, step)

    def measured(self, name: str, max_rel: float, step: int) -> None:
        """A comparison outside the lockstep stages (``graph``'s values and derivatives) as its own parity run."""
        self.writers.scalars(stage_run(name), {RATIO: self.curves.ratio(max_rel), MAX_REL: max_rel}, step)
        self.worst = max(self.worst, max_rel / self.curves.strictest)

    def text(self, name: str, lines: list[str]) -> None:
        """Preformatted text in the sub-run's summary run, tagged ``workings/<name>`` (``WORKINGS``)."""
        self.writers[SUMMARY_RUN].add_summary(summary.text(f"{WORKINGS}/{name}", "    " + "\n    ".join(lines)))

    def finish(self, verdict: str, decided: Verdict) -> None:
        self.overview.finish(verdict, decided, self.worst, self.last_step, self.failure)
        self.writers.close()

    def close(self) -> None:
        """Ends a sub-run that reports its own parity (``measured``): parity held, or it would have raised."""
        worst = self.worst * self.curves.strictest
        self.finish(f"PASS: every value compared agrees (worst max_rel {worst:.1e})", Verdict(Word.PASS))


class ExperimentBoard:
    """The experiment's own ``summary`` run (when ``tensorboard``) and its pictures, also as PNG files."""

    def __init__(self, root: Path, tensorboard: bool) -> None:
        self.root = root
        self.writers = LazyWriters(root) if tensorboard else None
        self.writer = self.writers[SUMMARY_RUN] if self.writers else None
        if self.writer:
            self.writer.add_summary(summary.custom_scalars(LAYOUT))

    def picture(self, name: str, figure: Figure) -> None:
        """``figure`` in the Images tab (``pictures/<name>``) and as ``<root>/<name>.png``."""
        figures.log_figure(self.writer, self.root, name, figure)

    def conclude(self, lines: list[str], table: list[str]) -> None:
        """The conclusion first (``lines``: its verdict, conclusion and parity line), then the table."""
        if self.writer is None:
            return
        decisions = [line.startswith(DECISIONS) or line in set(Word) for line in lines]
        heads = [f"**{line}**" if bold else line for line, bold in zip(lines, decisions, strict=True)]
        text = "\n\n".join([*heads, "    " + "\n    ".join(table)] if table else heads)
        self.writer.add_summary(summary.text("conclusion", text))
        self.writers.close()


def pictures_from(trained: list) -> dict[str, Figure]:
    """The pictures every experiment's curves allow (``trained``: ``compare.experiments.base.Trained``):
    the loss of each sub-run, train against validation, and the gradient norm against layer depth."""
    pictures: dict[str, Figure] = {}
    curves = [t for t in trained if len(t.losses) > 1]
    if len(curves) > 1:
        series = {t.name: (np.arange(1, len(t.losses) + 1), t.losses) for t in curves}
        logy = all(np.all(t.losses[np.isfinite(t.losses)] > 0) for t in curves)
        title, step, loss = _("training loss of each sub-run"), _("step"), _("loss")
        pictures["loss_by_subrun"] = figures.lines(title, step, loss, series, logy=logy)
    validated = [t for t in curves if "loss/validation" in t.curves]
    if validated:
        series = {}
        for t in validated:  # the whole training set's loss when measured, else the mini-batches'
            if "loss/train_set" in t.curves:
                series[f"{t.name} {_('train')}"] = (t.curve_steps["loss/train_set"], t.curves["loss/train_set"])
            else:
                series[f"{t.name} {_('train (batches)')}"] = (np.arange(1, len(t.losses) + 1), t.losses)
            series[f"{t.name} {_('validation')}"] = (t.curve_steps["loss/validation"], t.curves["loss/validation"])
        title = _("train against validation loss")
        pictures["train_vs_validation"] = figures.lines(title, _("step"), _("loss"), series)
    depth = _gradient_by_depth(trained)
    if depth:
        pictures["gradient_norm_by_depth"] = figures.lines(
            _("gradient norm against layer depth (median over training)"),
            _("layer (1 = nearest the input)"),
            "‖∂L/∂W‖",
            depth,
            logy=True,
            markers=True,
        )
    return pictures


def _gradient_by_depth(trained: list) -> figures.Series:
    series = {}
    for t in trained:
        layers = sorted((int(m.group(1)), tag) for tag in t.curves if (m := LAYER.match(tag)))
        medians = [float(np.median(t.curves[tag])) for _, tag in layers]
        if len(layers) > 1 and all(math.isfinite(v) and v > 0 for v in medians):
            series[t.name] = ([k for k, _ in layers], medians)
    return series
