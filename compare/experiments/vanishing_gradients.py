"""vanishing-gradients: a 10-layer MLP with sigmoid, tanh, ReLU and LeakyReLU, the gradient norm of
every layer over training.

Backpropagation multiplies the gradient, layer by layer on its way down, by each activation's
derivative (and a weight matrix). Sigmoid's derivative out(1 − out) is at most 0.25, so through the 9
hidden sigmoids of a 10-layer network the gradient reaching the first layer carries a factor of at
most 0.25⁹ ≈ 3.8e-6 (the weights, Glorot-initialised to keep the forward scale, do not make it up):
the first layers barely learn. tanh's derivative 1 − tanh² is at most 1, and ReLU's and LeakyReLU's
are 1 wherever the unit is active, so with He initialisation the gradient arrives at the first layer
at about the size it left the last one. The measure is ‖∂L/∂W⁽¹⁾‖ / ‖∂L/∂W⁽ᴸ⁾‖, first over last
layer, at the first step and its median over training; TensorBoard shows ``grad_norm/layer01`` to
``grad_norm/layer10`` for both twins, each from its own gradients.

Every network starts from weights drawn from the same seed (Glorot uniform for sigmoid and tanh, He
normal for the ReLU family, as ``manual.init`` chooses) and sees the same batches with the same plain
SGD step.
"""

import math
from dataclasses import dataclass

import numpy as np

from compare.experiments import datasets
from compare.experiments.base import Experiment, Outcome, Pairs, Session, batches, build_twins, layer_grad_norms
from compare.experiments.text import steps_line, table
from compare.experiments.training import train
from compare.i18n import N_, _
from compare.inputs import seeds
from manual import MLPSpec, init_state_dict

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
SIGMOID_DERIVATIVE_MAX = 0.25


@dataclass(frozen=True)
class Params:
    steps: int = 300
    seed: int = 0
    dataset: str = "spiral"
    depth: int = 10  # Linear layers
    width: int = 32  # every hidden layer
    batch_size: int = 32
    lr: float = 0.02  # plain SGD, the same for every activation
    activations: tuple[str, ...] = ACTIVATIONS

    def __post_init__(self) -> None:
        if self.depth < 2:
            raise ValueError(f"depth must be at least 2 Linear layers, got {self.depth}")


def conclude(params: Params, n: dict, classes: int) -> str:
    """The conclusion, in the session's language, from the measured ratios ``n``."""
    bound = SIGMOID_DERIVATIVE_MAX ** (params.depth - 1)
    parts = [
        _("at depth {depth} the gradient reaching the first layer, relative to the last layer's, is").format(
            depth=params.depth
        )
    ]
    each = _("{activation} {median:.1e} (step 1: {first:.1e})")
    parts.append(
        "; ".join(
            each.format(activation=a, median=n[f"{a}/ratio_median"], first=n[f"{a}/ratio_step1"])
            for a in params.activations
        )
        + _(" (median over training).")
    )
    if "sigmoid" in params.activations and "relu" in params.activations:
        parts.append(
            _(
                "Sigmoid's first layer gets {share:.1e} times ReLU's share: its derivative is at most {bound}, and "
                "{bound}^{hidden} = {product:.1e} through {hidden} hidden layers. After {steps} SGD steps its loss "
                "went {sigmoid_first:.3f} → {sigmoid_last:.3f} (ln {classes} = {uniform:.3f}, the loss of a uniform "
                "guess) while ReLU's went {relu_first:.3f} → {relu_last:.3f}."
            ).format(
                share=n["sigmoid/ratio_median"] / n["relu/ratio_median"],
                bound=SIGMOID_DERIVATIVE_MAX,
                hidden=params.depth - 1,
                product=bound,
                steps=params.steps,
                sigmoid_first=n["sigmoid/loss_first"],
                sigmoid_last=n["sigmoid/loss_last"],
                classes=classes,
                uniform=math.log(classes),
                relu_first=n["relu/loss_first"],
                relu_last=n["relu/loss_last"],
            )
        )
    return " ".join(parts)


def run(params: Params, session: Session) -> Outcome:
    data_rng, _init_rng, _batch_rng = seeds.streams(params.seed)
    dataset = datasets.load(params.dataset, data_rng)
    widths = (dataset.X.shape[1], *([params.width] * (params.depth - 1)), dataset.num_outputs)
    last = f"layer{params.depth:02d}"
    numbers: dict[str, float | int | str | None] = {"depth": params.depth, "dataset": params.dataset}
    columns = [(_("activation"), "<"), (_("‖∂L/∂W⁽¹⁾‖/‖∂L/∂W⁽ᴸ⁾‖ step 1"), ">"), (_("median"), ">")]
    columns.append((_("loss first → last"), ">"))
    rows = []
    for activation in params.activations:
        spec = MLPSpec(widths, activation, "cross_entropy")
        _data_rng, init_rng, batch_rng = seeds.streams(params.seed)  # the same draws for every activation
        lockstep = build_twins(spec, init_state_dict(spec, init_rng), "sgd", params.seed, lr=params.lr)

        def measure(step: int, lockstep=lockstep) -> Pairs:
            norms = layer_grad_norms(lockstep)
            first, final = norms["grad_norm/layer01"], norms[f"grad_norm/{last}"]
            ratio = (first[0] / final[0], first[1] / final[1])
            return norms | {"grad_norm/ratio_first_to_last": ratio}

        trained = train(
            session, activation, lockstep, batches(dataset, params.batch_size, batch_rng), params.steps, measure
        )
        ratios = trained.curve("grad_norm/ratio_first_to_last")
        numbers |= {
            f"{activation}/ratio_step1": float(ratios[0]),
            f"{activation}/ratio_median": float(np.median(ratios)),
            f"{activation}/first_layer_norm_median": float(np.median(trained.curve("grad_norm/layer01"))),
            f"{activation}/last_layer_norm_median": float(np.median(trained.curve(f"grad_norm/{last}"))),
            f"{activation}/loss_first": float(trained.losses[0]),
            f"{activation}/loss_last": float(trained.losses[-1]),
        }
        losses = f"{trained.losses[0]:.3f} → {trained.losses[-1]:.3f}"
        rows.append([activation, f"{ratios[0]:.2e}", f"{np.median(ratios):.2e}", losses])
        session.say(steps_line(activation, trained.steps, trained.seconds))

    conclusion = conclude(params, numbers, dataset.num_outputs)
    return Outcome(table(columns, rows), conclusion, numbers)


EXPERIMENT = Experiment(
    "vanishing-gradients",
    N_(
        "10-layer MLPs with sigmoid, tanh, ReLU, LeakyReLU: per-layer gradient norms over training, first/last-layer "
        "ratio (sigmoid' ≤ 0.25)"
    ),
    Params,
    run,
)
