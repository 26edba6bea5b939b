"""batch-size: full-batch gradient descent vs mini-batch vs single-example SGD, the same number of steps.

Full-batch gradient descent differentiates the whole training set at every update: exact, smooth and
expensive. Mini-batches (and, at the extreme, one example) estimate that gradient from a random
sample: each update is cheaper and noisier, the loss jumps about, and for the same number of examples
seen it usually gets further (the lecture's SGD). Each run starts from the same weights at the same
learning rate; after every step both twins also evaluate the loss on the *whole* training set, so the
three are compared on one objective.

Noise is measured two ways: the spread of the step-to-step change of the loss each step trained on
(``loss/train``, what the optimiser sees: RMS of its differences), and the share of steps that made the
whole-set loss (``loss/full``) go *up*, which exact gradient descent at a modest rate never does.
"""

from dataclasses import dataclass

import numpy as np

from compare.experiments import datasets
from compare.experiments.base import Experiment, Outcome, Session, batches, build_twins, evaluate
from compare.experiments.text import steps_line, table
from compare.experiments.training import train
from compare.i18n import N_, _
from compare.inputs import seeds
from manual import MLPSpec, init_state_dict


@dataclass(frozen=True)
class Params:
    steps: int = 300
    seed: int = 0
    dataset: str = "spiral"
    batch_sizes: tuple[int, ...] = (0, 32, 1)  # 0: the whole training set
    lr: float = 0.1
    hidden: tuple[int, ...] = (16, 16)


def conclude(params: Params, results: dict[str, dict], n: int, budget: int) -> str:
    """The conclusion, in the session's language, from each run's measured numbers."""
    names = list(results)
    listed = " / ".join(names)

    def each(key: str, spec: str) -> str:
        return " / ".join(format(results[name][key], spec) for name in names)

    conclusion = _(
        "SGD at lr {lr} on {dataset} ({n} examples), every run from the same weights, batch {sizes} ({listed}). "
        "After the same {steps} steps the whole-set loss is {full_last}; after the same {budget} examples seen it "
        "is {at_budget}, so per example processed the smaller batch gets further. The price is noise: the loss of "
        "the batch trained on jumps by {jitter} per step (RMS), and the whole-set loss rose on {rises} of the steps."
    ).format(
        lr=params.lr,
        dataset=params.dataset,
        n=n,
        sizes=each("batch_size", "d"),
        listed=listed,
        steps=params.steps,
        full_last=each("full_last", ".3f"),
        budget=budget,
        at_budget=each("full_at_budget", ".3f"),
        jitter=each("train_loss_jitter", ".3f"),
        rises=each("full_loss_rises", ".0%"),
    )
    return conclusion


def run(params: Params, session: Session) -> Outcome:
    data_rng, init_rng, _batch_rng = seeds.streams(params.seed)
    dataset = datasets.load(params.dataset, data_rng)
    n = len(dataset.X)
    spec = MLPSpec((dataset.X.shape[1], *params.hidden, dataset.num_outputs), "relu", "cross_entropy")
    weights = init_state_dict(spec, init_rng)
    results = {}
    curves = {}
    for size in params.batch_sizes:
        batch = n if size == 0 else size
        if not 1 <= batch <= n:
            raise ValueError(f"batch size {size} is out of range for {n} examples")
        name = "full-batch" if batch == n else ("single-example" if batch == 1 else f"batch-{batch}")
        _data_rng, _init_rng, batch_rng = seeds.streams(params.seed)
        lockstep = build_twins(spec, weights, "sgd", params.seed, lr=params.lr)

        def measure(step: int, lockstep=lockstep):
            return evaluate(lockstep, dataset, "full")

        trained = train(session, name, lockstep, batches(dataset, batch, batch_rng), params.steps, measure)
        full = trained.curve("loss/full")
        curves[name] = full
        results[name] = {
            "batch_size": batch,
            "examples_seen": batch * trained.steps,
            "full_last": float(full[-1]),
            "accuracy_last": float(trained.curve("accuracy/full")[-1]),
            "train_loss_jitter": float(np.sqrt(np.mean(np.diff(trained.losses) ** 2))),
            "full_loss_rises": float(np.mean(np.diff(full) > 0)),
        }
        session.say(steps_line(name, trained.steps, trained.seconds))
    budget = min(r["examples_seen"] for r in results.values())  # the same number of examples for each
    for name, r in results.items():
        steps = -(-budget // r["batch_size"])  # the first step by which it has seen that many
        r |= {"budget_steps": steps, "full_at_budget": float(curves[name][steps - 1])}

    after_steps = _("loss after {steps} steps").format(steps=params.steps)
    after_examples = _("loss after {examples} examples").format(examples=budget)
    columns = [(_("run"), "<"), (_("batch"), ">"), (after_steps, ">"), (_("accuracy"), ">"), (after_examples, ">")]
    columns += [(_("batch-loss jitter"), ">"), (_("whole-set rises"), ">")]
    rows = []
    numbers: dict[str, float | int | str | None] = {
        "dataset": params.dataset,
        "steps": params.steps,
        "lr": params.lr,
        "examples_budget": budget,
    }
    for name, r in results.items():
        counted = _("{count} steps") if r["budget_steps"] > 1 else _("{count} step")
        at_budget = f"{r['full_at_budget']:.4f} ({counted.format(count=r['budget_steps'])})"
        jitter, rises = f"{r['train_loss_jitter']:.4f}", f"{r['full_loss_rises']:.0%}"
        last = f"{r['full_last']:.4f}"
        rows.append([name, str(r["batch_size"]), last, f"{r['accuracy_last']:.1%}", at_budget, jitter, rises])
        numbers |= {f"{name}/{key}": value for key, value in r.items()}
    conclusion = conclude(params, results, n, budget)
    return Outcome(table(columns, rows), conclusion, numbers)


EXPERIMENT = Experiment(
    "batch-size",
    N_("full-batch gradient descent vs mini-batch vs single-example SGD: loss curves and their noise"),
    Params,
    run,
)
