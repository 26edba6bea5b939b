"""optimizers: the lecture's optimizers, from the same initial weights on the same batches.

SGD steps against the gradient; Momentum adds inertia (the previous update's direction, so the
zig-zag across a valley cancels, the lecture's 관성); Nesterov looks ahead along it; Adagrad and
RMSprop scale each parameter's step by its gradient history; Adam combines momentum with that
scaling, and AdamW decouples weight decay from it. Each runs with the command line's default
learning rate (its ``default_lr`` in ``manual.optim.REGISTRY``) and torch's other defaults, exactly as
``backprop-parity run --optimizer NAME`` would, for the same number of steps; after each step both
twins evaluate the whole training set. The textbook variants (``--variant``) are not torch's rules and
so are not raced here: ``backprop-parity run --variant`` shows where they depart.
"""

from dataclasses import dataclass

import numpy as np

from compare.experiments import datasets
from compare.experiments.base import Experiment, Outcome, Session, batches, build_twins, check_pairs, evaluate
from compare.experiments.text import steps_line, table
from compare.experiments.training import train
from compare.i18n import N_, _
from compare.inputs import seeds
from manual import MLPSpec, init_state_dict
from manual.optim import OPTIMIZERS, REGISTRY


@dataclass(frozen=True)
class Params:
    steps: int = 300
    seed: int = 0
    dataset: str = "spiral"
    # The rules the lecture races (its 관성 and adaptive steps); the later ones (adamax, nadam, radam, adadelta,
    # asgd, rprop) can be named here too, but teach nothing new in a 300-step race on the spirals.
    optimizers: tuple[str, ...] = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")
    batch_size: int = 32
    hidden: tuple[int, ...] = (16, 16)

    def __post_init__(self) -> None:
        unknown = [name for name in self.optimizers if name not in OPTIMIZERS]
        if unknown:
            raise ValueError(f"unknown optimizer {unknown[0]!r}; choose from {', '.join(OPTIMIZERS)}")


def conclude(params: Params, results: dict[str, dict], ranked: list[str], target: float, initial: float) -> str:
    """The conclusion, in the session's language, from each optimizer's measured numbers."""
    described = ", ".join(
        f"{name} {results[name]['full_last']:.3f} ({results[name]['accuracy_last']:.0%})" for name in ranked
    )
    by_speed = sorted(results, key=lambda name: results[name]["steps_to_target"])
    soonest = ", ".join(f"{name} {results[name]['steps_to_target']}" for name in by_speed)
    conclusion = _(
        "from the same weights on the same {batch}-example batches of {dataset}, after {steps} steps the whole-set "
        "loss (from {initial:.3f} at the start; accuracy) ranks: {described}. Steps each took to reach {slowest}'s "
        "final {target:.3f}: {soonest}. Each curve is computed by both twins, which agree to rounding at every step."
    ).format(
        batch=params.batch_size,
        dataset=params.dataset,
        steps=params.steps,
        initial=initial,
        described=described,
        slowest=ranked[-1],
        target=target,
        soonest=soonest,
    )
    return conclusion


def run(params: Params, session: Session) -> Outcome:
    data_rng, init_rng, _batch_rng = seeds.streams(params.seed)
    dataset = datasets.load(params.dataset, data_rng)
    spec = MLPSpec((dataset.X.shape[1], *params.hidden, dataset.num_outputs), "relu", "cross_entropy")
    weights = init_state_dict(spec, init_rng)
    results, curves = {}, {}
    initial = None
    for name in params.optimizers:
        _data_rng, _init_rng, batch_rng = seeds.streams(params.seed)  # the same batches, in the same order, for each
        lockstep = build_twins(spec, weights, name, params.seed, lr=REGISTRY[name].default_lr)
        if initial is None:  # the same start for all: the loss before any step, by both twins
            initial = evaluate(lockstep, dataset, "full")["loss/full"]
            check_pairs("initial", 0, {"loss/full": initial})

        def measure(step: int, lockstep=lockstep):
            return evaluate(lockstep, dataset, "full")

        trained = train(session, name, lockstep, batches(dataset, params.batch_size, batch_rng), params.steps, measure)
        full = trained.curve("loss/full")
        curves[name] = full
        results[name] = {
            "lr": REGISTRY[name].default_lr,
            "full_last": float(full[-1]),
            "accuracy_last": float(trained.curve("accuracy/full")[-1]),
        }
        session.say(steps_line(name, trained.steps, trained.seconds))

    ranked = sorted(results, key=lambda name: results[name]["full_last"])
    target = results[ranked[-1]]["full_last"]  # where the slowest ended: how soon does each get there?
    for name, r in results.items():
        reached = np.flatnonzero(curves[name] <= target)
        r["steps_to_target"] = int(reached[0]) + 1 if reached.size else None
    to_target = _("steps to {target:.3f}").format(target=target)
    columns = [(_("optimizer"), "<"), ("lr", ">"), (_("whole-set loss, last step"), ">"), (_("accuracy"), ">")]
    columns.append((to_target, ">"))
    rows = []
    numbers: dict[str, float | int | str | None] = {
        "dataset": params.dataset,
        "steps": params.steps,
        "initial_loss": initial[1],
    }
    for name in ranked:
        r = results[name]
        reached = str(r["steps_to_target"]) if r["steps_to_target"] else _("never")
        rows.append([name, f"{r['lr']:g}", f"{r['full_last']:.4f}", f"{r['accuracy_last']:.1%}", reached])
        numbers |= {f"{name}/{key}": value for key, value in r.items()}
    numbers["ranking"] = ",".join(ranked)
    conclusion = conclude(params, results, ranked, target, initial[1])
    return Outcome(table(columns, rows), conclusion, numbers)


EXPERIMENT = Experiment(
    "optimizers",
    N_(
        "SGD, Momentum, Nesterov, Adam, AdamW, RMSprop, Adagrad (7 of the package's 13 optimizers; run --optimizer "
        "checks the other 6) from the same initial weights on the same data"
    ),
    Params,
    run,
)
