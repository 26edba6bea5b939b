"""overfitting: training vs validation curves of a large network on a small training set, with and
without dropout and weight decay.

With far more weights than examples, a network can learn its training set by heart: the training
loss keeps falling while the validation loss, on examples it never trains on, stops falling and
climbs again (the lecture's 과적합). Dropout (each hidden unit dropped with probability p at every
step, so no unit can rely on another; the manual twin draws the mask and torch is handed the same
one) and weight decay (an L2 pull of every weight towards zero) are the two cures the lecture names.
Each variant starts from the same weights and trains on the same examples; every ``eval_every``
steps both twins evaluate the training and the validation set in evaluation mode (dropout off).

Measured per variant: the validation loss at its lowest and at the end (how far it climbed back: the
overfitting), and the final gap between validation and training loss.
"""

from dataclasses import dataclass

import numpy as np

from compare.experiments import datasets
from compare.experiments.base import Experiment, Outcome, Session, batches, build_twins, evaluate, split_rng
from compare.experiments.text import steps_line, table
from compare.experiments.training import train
from compare.i18n import N_, _
from compare.inputs import seeds
from manual import MLPSpec, init_state_dict


@dataclass(frozen=True)
class Params:
    steps: int = 400
    seed: int = 0
    dataset: str = "digits"
    train_size: int = 100
    val_size: int = 500  # drawn from the examples not trained on
    hidden: tuple[int, ...] = (128, 128)
    batch_size: int = 50
    optimizer: str = "momentum"  # the lecture's momentum SGD (torch.optim.SGD, μ = 0.9)
    lr: float = 0.1
    dropout: float = 0.5
    weight_decay: float = 0.001  # λ: L2 added to the gradient, g ← g + λθ
    eval_every: int = 10


def renumber(weights: dict[str, np.ndarray], source: MLPSpec, target: MLPSpec) -> dict[str, np.ndarray]:
    """``weights`` of ``source`` under ``target``'s names: Linear layer k keeps its arrays."""
    renamed = {}
    for (old, *_widths), (new, *_same) in zip(source.linears(), target.linears(), strict=True):
        renamed |= {f"{new}.{key}": weights[f"{old}.{key}"] for key in ("weight", "bias")}
    return renamed


def columns() -> list[tuple[str, str]]:
    """The table's headings, in the session's language, each with its alignment."""
    headings = (_("train loss"), _("val lowest (step)"), _("val last"), _("climb"), _("gap"), _("train acc"))
    return [(_("variant"), "<"), *((heading, ">") for heading in (*headings, _("val acc")))]


def conclude(params: Params, results: dict[str, dict], parameters: int, train_size: int) -> str:
    """The conclusion, in the session's language, from each variant's measured numbers."""
    plain = results["plain"]
    other = _(
        "with {name} it ends at {last:.3f} ({climb:+.3f} above its lowest, {lowest:.3f}), validation accuracy "
        "{accuracy:.1%}"
    )
    others = "; ".join(
        other.format(
            name=name, last=r["val_last"], climb=r["val_climb"], lowest=r["val_lowest"], accuracy=r["val_accuracy_last"]
        )
        for name, r in results.items()
        if name != "plain"
    )
    best = min(results, key=lambda name: results[name]["val_last"])
    conclusion = _(
        "{parameters} weights, {train} training examples of {dataset}, {steps} {optimizer} steps. Without "
        "regularisation the training loss fell to {train_last:.4f} ({train_accuracy:.0%} right) while the "
        "validation loss bottomed at {lowest:.3f} at step {lowest_step} and climbed back to {last:.3f} "
        "({climb:+.3f}): overfitting, the validation loss {gap:.3f} above the training loss (validation accuracy "
        "{accuracy:.1%}). With dropout p = {dropout} and weight decay λ = {decay}: {others}. Lowest final "
        "validation loss: {best}."
    ).format(
        parameters=parameters,
        train=train_size,
        dataset=params.dataset,
        steps=params.steps,
        optimizer=params.optimizer,
        train_last=plain["train_last"],
        train_accuracy=plain["train_accuracy_last"],
        lowest=plain["val_lowest"],
        lowest_step=plain["val_lowest_step"],
        last=plain["val_last"],
        climb=plain["val_climb"],
        gap=plain["gap_last"],
        accuracy=plain["val_accuracy_last"],
        dropout=params.dropout,
        decay=params.weight_decay,
        others=others,
        best=best,
    )
    return conclusion


def run(params: Params, session: Session) -> Outcome:
    data_rng, init_rng, _batch_rng = seeds.streams(params.seed)
    full = datasets.load(params.dataset, data_rng)
    train_set, rest = datasets.split(full, params.train_size, split_rng(params.seed))
    val_set = datasets.Dataset(rest.name, rest.X[: params.val_size], rest.y[: params.val_size])
    variants = {
        "plain": (0.0, 0.0),
        "dropout": (params.dropout, 0.0),
        "weight-decay": (0.0, params.weight_decay),
        "dropout+weight-decay": (params.dropout, params.weight_decay),
    }
    widths = (full.X.shape[1], *params.hidden, full.num_outputs)
    plain = MLPSpec(widths, "relu", "cross_entropy")
    initial = init_state_dict(plain, init_rng)
    results = {}
    for name, (dropout, weight_decay) in variants.items():
        spec = MLPSpec(widths, "relu", "cross_entropy", dropout=dropout)
        weights = renumber(initial, plain, spec)  # the same weights; Dropout shifts the Sequential's indices
        _data_rng, _init_rng, batch_rng = seeds.streams(params.seed)
        lockstep = build_twins(spec, weights, params.optimizer, params.seed, lr=params.lr, weight_decay=weight_decay)

        def measure(step: int, lockstep=lockstep):
            if step % params.eval_every and step != params.steps:
                return {}
            return evaluate(lockstep, train_set, "train_set") | evaluate(lockstep, val_set, "validation")

        stream = batches(train_set, min(params.batch_size, len(train_set.X)), batch_rng)
        trained = train(session, name, lockstep, stream, params.steps, measure)
        val = trained.curve("loss/validation")
        lowest = int(np.argmin(val))
        results[name] = {
            "train_last": float(trained.curve("loss/train_set")[-1]),
            "val_lowest": float(val[lowest]),
            "val_lowest_step": trained.curve_steps["loss/validation"][lowest],
            "val_last": float(val[-1]),
            "val_climb": float(val[-1] - val[lowest]),
            "gap_last": float(val[-1] - trained.curve("loss/train_set")[-1]),
            "train_accuracy_last": float(trained.curve("accuracy/train_set")[-1]),
            "val_accuracy_last": float(trained.curve("accuracy/validation")[-1]),
        }
        session.say(steps_line(name, trained.steps, trained.seconds))

    rows = []
    numbers: dict[str, float | int | str | None] = {
        "dataset": params.dataset,
        "train_size": len(train_set.X),
        "validation_size": len(val_set.X),
        "parameters": sum(int(np.prod(w.shape)) for w in initial.values()),
    }
    for name, r in results.items():
        lowest = f"{r['val_lowest']:.4f} ({r['val_lowest_step']:>4})"
        rows.append([name, f"{r['train_last']:.4f}", lowest, f"{r['val_last']:.4f}", f"{r['val_climb']:.3f}"])
        rows[-1] += [f"{r['gap_last']:.3f}", f"{r['train_accuracy_last']:.1%}", f"{r['val_accuracy_last']:.1%}"]
        numbers |= {f"{name}/{key}": value for key, value in r.items()}
    conclusion = conclude(params, results, numbers["parameters"], len(train_set.X))
    return Outcome(table(columns(), rows), conclusion, numbers)


EXPERIMENT = Experiment(
    "overfitting",
    N_("train vs validation curves of a large net on a small training set, with and without dropout and weight decay"),
    Params,
    run,
)
