"""What every experiment shares: its session (a fresh TensorBoard directory, progress lines), lockstep
training on ``compare.core.engine`` with parity asserted at every step, and the outcome it ends with.

Every curve an experiment reports is computed twice, once by each twin: the engine compares every
tensor of every step, and each further measurement (a validation loss, a gradient norm) is taken on
both sides and compared too, at the float64 tolerance of ``compare.core.tolerances``. The first
disagreement raises :class:`ParityError`, which ends the experiment with exit status 1: numbers
computed by twins that disagree would prove nothing.

A diverging run (a learning rate too large) is stopped cleanly at the step its loss leaves the finite
range or exceeds ``DIVERGENCE_FACTOR`` × its first loss; parity must hold on every step before that,
and an overflow to inf/NaN on *both* sides at that step is divergence, not a disagreement.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from matplotlib.figure import Figure

from compare import i18n
from compare.core import engine, mlp_pair
from compare.core.metrics import diff
from compare.core.stages import STAGES
from compare.core.tolerances import tolerance
from compare.inputs import data, seeds
from compare.output.experiment_board import ExperimentBoard, SubRunWriters, pictures_from
from manual import MLPSpec
from manual.optim import REGISTRY

DTYPE = "float64"  # parity is proven at float64's tolerance; float32 would only blur the curves' meaning
DIVERGENCE_FACTOR = 10.0  # a loss this many times its first value has left the basin: stop, report the step
ROUNDING_LEVEL = 1e-13  # float64 twins agree to a few ulps per step: a worse first step is no rounding
PROGRESS_SECONDS = 2.0  # at most one progress line per sub-run this often
CLI_OPTIONS = ("steps", "seed", "dataset")  # Params fields that the command line may set

Pairs = dict[str, tuple[float, float]]  # tag → (manual value, torch value)


class ParityError(Exception):
    """The twins disagreed in ``subrun``; ``detail`` is the verdict to print."""

    def __init__(self, subrun: str, detail: str) -> None:
        super().__init__(f"parity broken in sub-run {subrun}:\n{detail}")
        self.subrun = subrun
        self.detail = detail


@dataclass(frozen=True)
class Experiment:
    """One registered experiment: ``run(params, session)`` with ``params`` a ``Params()`` instance.

    ``Params`` is a dataclass whose defaults are the full-size experiment; the fields named in
    ``CLI_OPTIONS`` may be set from the command line, the others only by tests (reduced sizes).
    """

    name: str
    summary: str  # one line for ``experiment --list``
    params: type
    run: Callable[[Any, "Session"], "Outcome"]

    def options(self) -> tuple[str, ...]:
        names = {f.name for f in fields(self.params)}
        return tuple(option for option in CLI_OPTIONS if option in names)


@dataclass
class Outcome:
    """What an experiment found: a table of results, a conclusion with its numbers, and the numbers
    themselves by name (tests assert on them; ``summary.json`` records them)."""

    table: list[str]
    conclusion: str
    numbers: dict[str, float | int | str | None]


@dataclass
class SubRunParity:
    name: str
    steps: int  # lockstep steps compared
    worst: dict[str, float]  # per stage, the worst max_rel over the steps
    measured_worst: float  # worst max_rel of the measurements taken on both sides
    measured: int  # how many such measurements were compared
    diverged_at: int | None = None


@dataclass
class Trained:
    """One lockstep training sub-run. ``losses`` are torch's (the manual ones agree within tolerance);
    ``curves`` maps each measured tag to its (torch) values and the steps they were taken at."""

    name: str
    result: engine.RunResult
    losses: np.ndarray
    curves: dict[str, list[float]]
    curve_steps: dict[str, list[int]]
    diverged_at: int | None
    seconds: float

    @property
    def steps(self) -> int:
        return self.result.steps

    def curve(self, tag: str) -> np.ndarray:
        return np.asarray(self.curves[tag])


class Session:
    """One experiment invocation: where its event files go and where its lines are printed.

    ``root`` is a fresh directory made by the caller (or None: nothing written); each sub-run gets
    ``root/<sub-run>/`` (:class:`SubRunWriters`), the experiment ``root/summary/`` and its pictures
    (``picture``, and at ``conclude`` those ``pictures_from`` its curves allow) as ``root/<name>.png``.
    """

    def __init__(self, name: str, root: Path | None, out: TextIO, tensorboard: bool = True) -> None:
        self.name = name
        self.root = root
        self.out = out
        self.tensorboard = tensorboard and root is not None
        self.parity: list[SubRunParity] = []
        self.trained: list[Trained] = []
        self._board: ExperimentBoard | None = None

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def writers(self, subrun: str, config: dict | None = None) -> SubRunWriters | None:
        """TensorBoard for ``subrun``; ``config`` (its optimizer, lr, ...) becomes its HParams row."""
        if not self.tensorboard:
            return None
        path = self.root / subrun
        path.mkdir()  # never an existing directory: a duplicate sub-run name is a bug, and raises
        return SubRunWriters(path, f"{self.name}/{subrun}", {"experiment": self.name, **(config or {})}, DTYPE)

    def board(self) -> ExperimentBoard | None:
        if self._board is None and self.root is not None:
            self._board = ExperimentBoard(self.root, self.tensorboard)
        return self._board

    def picture(self, name: str, figure: Figure) -> None:
        """A picture (``compare.output.figures``) in TensorBoard's Images tab and as ``<root>/<name>.png``."""
        if self.board() is not None:
            self.board().picture(name, figure)

    def conclude(self, lines: list[str], table: list[str], passed: bool) -> None:
        """The end: the pictures the curves allow (when parity held), then the conclusion as text."""
        if self.board() is None:
            return
        if passed:
            for name, figure in pictures_from(self.trained).items():
                self.picture(name, figure)
        self.board().conclude(lines, table)

    def record(self, entry: SubRunParity) -> None:
        self.parity.append(entry)

    def parity_line(self) -> str:
        steps = sum(entry.steps for entry in self.parity)
        measured = sum(entry.measured for entry in self.parity)
        measured_worst = max((entry.measured_worst for entry in self.parity), default=0.0)
        limit = i18n._("tolerance {tolerance:.0e}, float64").format(tolerance=tolerance(DTYPE, "grad").max_rel)
        if steps == 0:
            return i18n._(
                "parity: all {measured} values and gradients agree with torch (worst max_rel {worst:.1e}; {limit})"
            ).format(measured=measured, worst=measured_worst, limit=limit)
        worst: dict[str, float] = {}
        for entry in self.parity:
            for stage, value in entry.worst.items():
                worst[stage] = max(worst.get(stage, 0.0), value)
        stages = ", ".join(f"{stage} {worst[stage]:.1e}" for stage in STAGES if stage in worst)
        diverged = sum(entry.diverged_at is not None for entry in self.parity)
        stopped = i18n._(", {diverged} of them stopped at divergence").format(diverged=diverged) if diverged else ""
        further = (
            i18n._("; {measured} further measurements taken on both sides agree (worst max_rel {worst:.1e})").format(
                measured=measured, worst=measured_worst
            )
            if measured
            else ""
        )
        template = (
            i18n._(
                "parity: held at every one of {steps} lockstep steps in {runs} sub-runs{stopped}; "
                "worst max_rel per stage: {stages}{further} ({limit})"
            )
            if len(self.parity) > 1
            else i18n._(
                "parity: held at every one of {steps} lockstep steps in {runs} sub-run{stopped}; "
                "worst max_rel per stage: {stages}{further} ({limit})"
            )
        )
        return template.format(
            steps=steps, runs=len(self.parity), stopped=stopped, stages=stages, further=further, limit=limit
        )


# --- building twins and batches ----------------------------------------------------------------


def build_twins(spec: MLPSpec, weights: dict[str, np.ndarray], optimizer: str, seed: int, **hyper) -> engine.Lockstep:
    """Both twins from ``weights`` (copied into each), one optimizer kwargs dict for both."""
    hyperparameters = REGISTRY[optimizer].rule(**hyper).hyperparameters()
    return mlp_pair.twins(spec, weights, optimizer, hyperparameters, DTYPE, seed=seeds.dropout_seed(seed))


def split_rng(seed: int) -> np.random.Generator:
    """A fifth independent stream (after ``compare.inputs.config``'s data, init, batch and dropout ones), for
    train/validation splits."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(5)[4])


def batches(
    dataset: data.Dataset, batch_size: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless shuffled mini-batches (x, labels); both twins see each one."""
    for index in data.batches(len(dataset.X), batch_size, rng):
        yield dataset.X[index], dataset.y[index]


# --- measurements taken on both twins --------------------------------------------------------------


def evaluate(lockstep: engine.Lockstep, dataset: data.Dataset, prefix: str) -> Pairs:
    """Loss and accuracy on ``dataset`` in evaluation mode (dropout off), computed by each twin."""
    found = lockstep.evaluate(dataset.X, dataset.y)
    return {f"{metric}/{prefix}": (found["manual"][metric], found["torch"][metric]) for metric in ("loss", "accuracy")}


def predict(subrun: str, lockstep: engine.Lockstep, X: np.ndarray) -> np.ndarray:
    """Each twin's outputs for ``X`` in evaluation mode, compared; returns the manual one (N, C)."""
    manual, reference = lockstep.manual.predict(X), lockstep.reference.predict(X)
    limit = tolerance(DTYPE, "eval").max_rel
    result = diff(manual, reference)
    if not result.within(limit):
        raise ParityError(subrun, f"outputs on {len(X)} inputs: max_rel {result.max_rel:.3e} > tolerance {limit:.1e}")
    return manual


def layer_grad_norms(lockstep: engine.Lockstep) -> Pairs:
    """‖∂L/∂W‖ of each Linear layer's weight, from each twin's own gradient of the last step.

    Tags ``grad_norm/layer01`` (the first layer, nearest the input) to ``layerNN`` (the output layer).
    """
    manual, reference = lockstep.manual.grads(), lockstep.reference.grads()
    pairs = {}
    for k, (index, _, _) in enumerate(lockstep.manual.model.spec.linears(), start=1):
        name = f"{index}.weight"
        pairs[f"grad_norm/layer{k:02d}"] = (float(np.linalg.norm(manual[name])), float(np.linalg.norm(reference[name])))
    return pairs


def check_pairs(subrun: str, step: int, pairs: Pairs) -> float:
    """Hold each measurement to the float64 tolerance (torch the reference); return the worst max_rel."""
    limit = tolerance(DTYPE, "eval").max_rel
    worst = 0.0
    for tag, (manual, reference) in pairs.items():
        result = diff(np.float64(manual), np.float64(reference))
        if not result.within(limit):
            raise ParityError(
                subrun,
                f"step {step}, measurement {tag}: manual {manual!r}, torch {reference!r}, "
                f"max_rel {result.max_rel:.3e} > tolerance {limit:.1e}",
            )
        worst = max(worst, result.max_rel)
    return worst
