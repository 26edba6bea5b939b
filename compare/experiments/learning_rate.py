"""learning-rate: one network, one data set, full-batch gradient descent at learning rates from too
small to too large.

θ ← θ − γ·∂L/∂θ: the lecture's step size. Too small and the loss creeps down; a good γ brings it down
quickly; too large and each step overshoots the valley it aims at, so the loss oscillates, and larger
still it climbs away (divergence). Full batches make the loss a deterministic function of the step, so
a loss that goes *up* is the step size's doing, not batch noise.

A diverging sub-run is stopped at the first step whose loss is non-finite or more than
``DIVERGENCE_FACTOR`` times its first loss, and reported as "diverged at step k"; parity holds on
every step before that (an overflow on both sides is divergence, not a disagreement).

Verdict per learning rate, from the measured curve:
* ``diverged``: stopped as above;
* ``oscillating``: the loss rose on more than ``OSCILLATION_SHARE`` of the steps;
* ``good``: the steady run (neither of the above) with the lowest last loss, and any steady run that
  ends below the loss that one had reached after ``1/SLOW_FACTOR`` of the steps;
* ``slow``: a steady run that does not: it is more than ``SLOW_FACTOR`` times slower than the best.
"""

from dataclasses import dataclass

import numpy as np

from compare.experiments import datasets
from compare.experiments.base import DIVERGENCE_FACTOR, Experiment, Outcome, Session, batches, build_twins
from compare.experiments.text import steps_line, table
from compare.experiments.training import train
from compare.i18n import N_, _
from compare.inputs import seeds
from manual import MLPSpec, init_state_dict

VERDICTS = {"slow": N_("slow"), "good": N_("good"), "oscillating": N_("oscillating"), "diverged": N_("diverged")}
OSCILLATION_SHARE = 0.2
SLOW_FACTOR = 4


@dataclass(frozen=True)
class Params:
    steps: int = 200
    seed: int = 0
    dataset: str = "iris"
    lrs: tuple[float, ...] = (0.003, 0.03, 0.3, 3.0, 30.0)
    hidden: tuple[int, ...] = (16,)
    activation: str = "tanh"

    def __post_init__(self) -> None:
        if len(self.lrs) < 2 or any(not lr > 0 for lr in self.lrs):
            raise ValueError(f"lrs must hold at least two positive learning rates, got {self.lrs}")


def verdicts(runs: dict[float, dict]) -> dict[float, str]:
    """diverged, oscillating, slow or good, for each learning rate's measured curve (``losses``)."""
    result = {}
    for lr, run in runs.items():
        if run["diverged_at"] is not None:
            result[lr] = "diverged"
        elif run["rises"] > OSCILLATION_SHARE:
            result[lr] = "oscillating"
    steady = [lr for lr in runs if lr not in result]
    if steady:
        best = min(steady, key=lambda lr: runs[lr]["last"])
        losses = runs[best]["losses"]
        target = losses[max(1, len(losses) // SLOW_FACTOR) - 1]
        for lr in steady:
            result[lr] = "good" if runs[lr]["last"] <= target else "slow"
    return {lr: result[lr] for lr in runs}


def conclude(params: Params, runs: dict[float, dict], verdict: dict[float, str], shown: dict[str, str]) -> str:
    """The conclusion, in the session's language, from each learning rate's curve and verdict."""
    best = min(r["last"] for lr, r in runs.items() if verdict[lr] != "diverged")
    described = []
    for lr, r in runs.items():
        if verdict[lr] == "diverged":
            text = _(
                "lr {lr:g} diverged at step {step} (its loss went from {first:.3f} to {last:.4g}, past {factor:g}× "
                "its first, or overflowed)"
            )
        elif verdict[lr] == "oscillating":
            text = _("lr {lr:g} oscillated, the loss rising on {rises:.0%} of the steps (ending at {last:.3f})")
        else:
            text = _("lr {lr:g} was {verdict}, ending at {last:.3f} ({ratio:.1f}× the lowest)")
        described.append(
            text.format(
                lr=lr,
                step=r["diverged_at"],
                first=r["first"],
                last=r["last"],
                factor=DIVERGENCE_FACTOR,
                rises=r["rises"],
                verdict=shown[verdict[lr]],
                ratio=r["last"] / best if verdict[lr] in ("good", "slow") else None,  # only those texts use it
            )
        )
    conclusion = (
        _(
            "full-batch gradient descent for {steps} steps on {dataset}, every run from the same weights (first "
            "loss {first:.3f}): "
        ).format(steps=params.steps, dataset=params.dataset, first=runs[params.lrs[0]]["first"])
        + "; ".join(described)
        + _(". Parity held on every step of every run, each diverging run up to the step it was stopped at.")
    )
    return conclusion


def run(params: Params, session: Session) -> Outcome:
    data_rng, init_rng, _batch_rng = seeds.streams(params.seed)
    dataset = datasets.load(params.dataset, data_rng)
    spec = MLPSpec((dataset.X.shape[1], *params.hidden, dataset.num_outputs), params.activation, "cross_entropy")
    weights = init_state_dict(spec, init_rng)  # one start for every learning rate
    runs: dict[float, dict] = {}
    for lr in params.lrs:
        _data_rng, _init_rng, batch_rng = seeds.streams(params.seed)
        lockstep = build_twins(spec, weights, "sgd", params.seed, lr=lr)
        stream = batches(dataset, len(dataset.X), batch_rng)  # full batch: gradient descent proper
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run overflows, on purpose
            trained = train(session, f"lr-{lr:g}", lockstep, stream, params.steps, stop_on_divergence=True)
        losses = trained.losses
        rises = float(np.mean(np.diff(losses) > 0)) if len(losses) > 1 else 0.0
        runs[lr] = {
            "first": float(losses[0]),
            "last": float(losses[-1]),
            "min": float(losses.min()),
            "rises": rises,
            "diverged_at": trained.diverged_at,
            "steps": trained.steps,
            "losses": losses,
        }
        note = (
            _("diverged at step {step}").format(step=trained.diverged_at)
            if trained.diverged_at
            else _("loss {loss:.4g}").format(loss=losses[-1])
        )
        session.say(steps_line(f"lr {lr:g}", trained.steps, trained.seconds, note))
    verdict = verdicts(runs)

    columns = [("lr", ">"), (_("verdict"), "<"), (_("loss first → last"), ">"), (_("lowest"), ">")]
    columns += [(_("steps up"), ">"), (_("note"), "<")]
    rows = []
    shown = {key: _(text) for key, text in VERDICTS.items()}
    numbers: dict[str, float | int | str | None] = {"dataset": params.dataset, "steps": params.steps}
    for lr, r in runs.items():
        note = _("diverged at step {step}").format(step=r["diverged_at"]) if r["diverged_at"] else ""
        losses = f"{r['first']:.4f} → {r['last']:<9.4g}"  # the arrows in one column
        rows.append([f"{lr:g}", shown[verdict[lr]], losses, f"{r['min']:.4f}", f"{r['rises']:.0%}", note])
        numbers |= {f"lr_{lr:g}/{key}": value for key, value in r.items() if key != "losses"}
        numbers[f"lr_{lr:g}/verdict"] = verdict[lr]
    conclusion = conclude(params, runs, verdict, shown)
    return Outcome(table(columns, rows), conclusion, numbers)


EXPERIMENT = Experiment(
    "learning-rate",
    N_(
        "a learning-rate sweep from too small (slow) through good to too large (oscillation, divergence detected "
        "and reported)"
    ),
    Params,
    run,
)
