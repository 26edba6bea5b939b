"""init: the same network from several random initialisations ends in different minima.

The loss of a neural network is not convex: where gradient descent ends depends on where it starts
(the lecture: 초기조건에 따라 도달하는 최소값이 다를 수 있음). Here only the initial weights change
(seeds ``seed``, ``seed + 1``, ...); the data, the batch order and the optimizer are the same. After
training, both twins evaluate each network on the whole training set. The spread is reported three
ways: the final losses (mean, standard deviation, range), how far apart the final weight vectors
are (relative to their size; hidden units can be permuted without changing the function, so this
alone would not prove distinct minima), and how often two networks disagree on a prediction, on the
training examples and on random inputs between them (which permutation cannot explain).
"""

import itertools
from dataclasses import dataclass

import numpy as np

from compare.experiments import datasets
from compare.experiments.base import Experiment, Outcome, Session, batches, build_twins, evaluate, predict, split_rng
from compare.experiments.text import steps_line, table
from compare.experiments.training import train
from compare.i18n import N_, _
from compare.inputs import seeds
from compare.output import figures
from manual import MLPSpec, init_state_dict

PROBES = 2000  # random inputs in the data's bounding box, to compare the functions away from the data


@dataclass(frozen=True)
class Params:
    steps: int = 300
    seed: int = 0
    dataset: str = "spiral"
    inits: int = 8
    hidden: tuple[int, ...] = (16, 16)
    batch_size: int = 32
    lr: float = 0.01  # Adam

    def __post_init__(self) -> None:
        if self.inits < 2:
            raise ValueError(f"a spread needs at least 2 initialisations, got {self.inits}")


def conclude(params: Params, n: dict, widths: tuple[int, ...]) -> str:
    """The conclusion, in the session's language, from the measured spread ``n``."""
    conclusion = _(
        "{inits} initialisations of the same {widths} network, trained alike for {steps} Adam steps on {dataset}, "
        "end at whole-set losses from {loss_min:.3f} to {loss_max:.3f} (mean {loss_mean:.3f}, standard deviation "
        "{loss_std:.3f}; accuracy {accuracy_min:.1%} to {accuracy_max:.1%}). Their final weights lie "
        "{weight_distance_mean:.2f} apart relative to their size, and two of them disagree on "
        "{disagreement_mean:.1%} of the examples on average (at most {disagreement_max:.1%}), and on "
        "{probe_disagreement_mean:.1%} of {probes} random inputs in the data's range (at most "
        "{probe_disagreement_max:.1%}): different minima, different functions, not one minimum found {inits} times."
    ).format(**n, widths="-".join(map(str, widths)), steps=params.steps, probes=PROBES)
    return conclusion


def draw_spread(session: Session, seeds: list[int], losses: np.ndarray) -> None:
    """One point per init seed at the whole-set loss it reached, labelled in the session's language."""
    title, final = _("whole-set loss reached from each start"), _("final loss")
    figure = figures.lines(title, _("init seed"), _("loss"), {final: (seeds, losses)}, joined=False)
    session.picture("spread_of_minima", figure)


def run(params: Params, session: Session) -> Outcome:
    dataset = datasets.load(params.dataset, seeds.streams(params.seed)[0])
    spec = MLPSpec((dataset.X.shape[1], *params.hidden, dataset.num_outputs), "relu", "cross_entropy")
    # inputs between and around the training points: where the networks were never told the answer
    probe = split_rng(params.seed).uniform(dataset.X.min(axis=0), dataset.X.max(axis=0), (PROBES, dataset.X.shape[1]))
    finals: dict[int, dict] = {}
    for init_seed in range(params.seed, params.seed + params.inits):
        init_rng, batch_rng = seeds.streams(init_seed)[1], seeds.streams(params.seed)[2]  # the same batches for all
        lockstep = build_twins(spec, init_state_dict(spec, init_rng), "adam", params.seed, lr=params.lr)

        def measure(step: int, lockstep=lockstep):
            return evaluate(lockstep, dataset, "full") if step == params.steps else {}

        stream = batches(dataset, params.batch_size, batch_rng)
        trained = train(session, f"init-{init_seed}", lockstep, stream, params.steps, measure)
        parameters = lockstep.manual.parameters()  # torch's are the same (compared every step)
        finals[init_seed] = {
            "loss": float(trained.curve("loss/full")[-1]),
            "accuracy": float(trained.curve("accuracy/full")[-1]),
            "weights": np.concatenate([p.ravel() for p in parameters.values()]),
            "predictions": np.argmax(predict(f"init-{init_seed}", lockstep, dataset.X), axis=1),
            "probe_predictions": np.argmax(predict(f"init-{init_seed}", lockstep, probe), axis=1),
        }
        session.say(steps_line(_("init seed {seed}").format(seed=init_seed), trained.steps, trained.seconds))

    losses = np.array([f["loss"] for f in finals.values()])
    draw_spread(session, list(finals), losses)
    accuracies = np.array([f["accuracy"] for f in finals.values()])
    pairs = list(itertools.combinations(finals.values(), 2))
    distances = [
        np.linalg.norm(a["weights"] - b["weights"])
        / np.sqrt(np.linalg.norm(a["weights"]) * np.linalg.norm(b["weights"]))
        for a, b in pairs
    ]
    disagreement = [float(np.mean(a["predictions"] != b["predictions"])) for a, b in pairs]
    probe_disagreement = [float(np.mean(a["probe_predictions"] != b["probe_predictions"])) for a, b in pairs]
    columns = [(_("init seed"), ">"), (_("whole-set loss"), ">"), (_("accuracy"), ">")]
    lines = table(columns, [[str(seed), f"{f['loss']:.4f}", f"{f['accuracy']:.1%}"] for seed, f in finals.items()])
    numbers: dict[str, float | int | str | None] = {
        "dataset": params.dataset,
        "inits": params.inits,
        "loss_mean": float(losses.mean()),
        "loss_std": float(losses.std(ddof=1)),
        "loss_min": float(losses.min()),
        "loss_max": float(losses.max()),
        "accuracy_min": float(accuracies.min()),
        "accuracy_max": float(accuracies.max()),
        "weight_distance_mean": float(np.mean(distances)),
        "disagreement_mean": float(np.mean(disagreement)),
        "disagreement_max": float(np.max(disagreement)),
        "probe_disagreement_mean": float(np.mean(probe_disagreement)),
        "probe_disagreement_max": float(np.max(probe_disagreement)),
    }
    conclusion = conclude(params, numbers, spec.widths)
    return Outcome(lines, conclusion, numbers)


EXPERIMENT = Experiment(
    "init",
    N_(
        "the same network from several random initialisations ends in different minima; the spread of loss, "
        "weights and predictions is reported"
    ),
    Params,
    run,
)
