"""chain-rule: the lecture's worked two-layer update, one weight's gradient written out term by term.

The network of the notes: 2 inputs, a sigmoid hidden layer (3 nodes here), 2 outputs, squared error,
one example, one step of gradient descent. torch's ``MSELoss`` averages over the 2 outputs, so
E = ½[(ŷ₁ − y₁)² + (ŷ₂ − y₂)²], the notes' E, and ∂E/∂ŷₖ = ŷₖ − yₖ.

Notation: w_ji⁽ˡ⁾ joins node i of layer l − 1 to node j of layer l (layer 0 is the input), so it is
``weight[j − 1, i − 1]`` of the l-th Linear in torch's (out, in) layout. Two weights are worked:

* w₁₃⁽²⁾, output layer:  ∂E/∂w₁₃⁽²⁾ = (ŷ₁ − y₁) · out₃;
* w₃₂⁽¹⁾, hidden layer:  ∂E/∂w₃₂⁽¹⁾ = [(ŷ₁ − y₁)·w₁₃⁽²⁾ + (ŷ₂ − y₂)·w₂₃⁽²⁾] · out₃(1 − out₃) · x₂
  (the hidden node feeds both outputs, so both errors come back; out₃(1 − out₃) is the notes'
  delta term, sigmoid's derivative, at most 0.25).

Convention: the notes also put a sigmoid on the output, which adds a factor ŷ(1 − ŷ) to every output
error; the twins' output is a Linear layer (logits, as ``nn.Sequential`` models end), so here the delta
term appears once, at the hidden node. Each term is computed by hand in plain floats from the initial
weights, and the product, and the updated weight w − lr·∂E/∂w, are compared with both twins' after one
lockstep step (which compares every other tensor of the step as well).
"""

import math
from dataclasses import dataclass

import numpy as np

from compare.experiments.base import Experiment, Outcome, Session, build_twins, check_pairs, train
from manual import MLPSpec

SPEC = MLPSpec((2, 3, 2), "sigmoid", "mse")
WEIGHTS = {  # readable numbers in the notes' style, torch layout (out, in)
    "0.weight": np.array([[0.15, 0.20], [0.25, 0.30], [0.35, 0.40]]),
    "0.bias": np.array([0.35, 0.30, 0.25]),
    "2.weight": np.array([[0.40, 0.45, 0.50], [0.55, 0.60, 0.65]]),
    "2.bias": np.array([0.60, 0.55]),
}
X = np.array([[0.05, 0.10]])  # (1, 2) one example
Y = np.array([[0.01, 0.99]])  # (1, 2) its targets


@dataclass(frozen=True)
class Params:
    """One step of plain gradient descent (torch.optim.SGD) at learning rate ``lr``."""

    lr: float = 0.5


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def by_hand(lr: float) -> dict[str, float]:
    """Every term of the two worked gradients, in plain Python floats, from the initial weights."""
    W1, b1, W2, b2 = (WEIGHTS[k].tolist() for k in ("0.weight", "0.bias", "2.weight", "2.bias"))
    x, y = X[0].tolist(), Y[0].tolist()
    z1 = [sum(W1[j][i] * x[i] for i in range(2)) + b1[j] for j in range(3)]
    out = [sigmoid(z) for z in z1]
    yhat = [sum(W2[k][j] * out[j] for j in range(3)) + b2[k] for k in range(2)]
    error = [yhat[k] - y[k] for k in range(2)]  # ∂E/∂ŷₖ with E = ½Σ(ŷ − y)²
    t = {f"out{j + 1}": out[j] for j in range(3)} | {f"yhat{k + 1}": yhat[k] for k in range(2)}
    t |= {"E": 0.5 * sum(e * e for e in error), "e1": error[0], "e2": error[1], "x2": x[1]}
    t |= {"w13_2": W2[0][2], "w23_2": W2[1][2], "w32_1": W1[2][1]}
    t["dw13_2"] = error[0] * out[2]
    t["back3"] = error[0] * W2[0][2] + error[1] * W2[1][2]  # Σₖ ∂E/∂ŷₖ · w_k3⁽²⁾
    t["delta3"] = out[2] * (1.0 - out[2])  # out₃(1 − out₃)
    t["dw32_1"] = t["back3"] * t["delta3"] * x[1]
    t["new_w13_2"] = t["w13_2"] - lr * t["dw13_2"]
    t["new_w32_1"] = t["w32_1"] - lr * t["dw32_1"]
    return t


def run(params: Params, session: Session) -> Outcome:
    hand = by_hand(params.lr)
    lockstep = build_twins(SPEC, WEIGHTS, "sgd", 0, lr=params.lr)
    featured = {"w13_2": ("2.weight", (0, 2)), "w32_1": ("0.weight", (2, 1))}

    def measure(step: int) -> dict[str, tuple[float, float]]:
        manual_grads = lockstep.manual.grads()
        manual_params = lockstep.manual.parameters()
        torch_params = dict(lockstep.reference.model.named_parameters())
        pairs = {}
        for key, (name, index) in featured.items():
            pairs[f"grad/{key}"] = (float(manual_grads[name][index]), float(torch_params[name].grad[index]))
            pairs[f"updated/{key}"] = (float(manual_params[name][index]), float(torch_params[name].detach()[index]))
        return pairs

    trained = train(session, "step", lockstep, iter(lambda: (X, Y), None), 1, measure)
    twins = {tag: values[0] for tag, values in trained.curves.items()}  # torch's; manual's agree (checked)
    check_pairs(
        "by-hand",
        1,
        {
            "E": (hand["E"], float(trained.losses[0])),
            **{f"grad/{key}": (hand[f"d{key}"], twins[f"grad/{key}"]) for key in featured},
            **{f"updated/{key}": (hand[f"new_{key}"], twins[f"updated/{key}"]) for key in featured},
        },
    )
    manual_grads = lockstep.manual.grads()
    manual_params = lockstep.manual.parameters()
    h = hand
    table = [
        "network 2-3-2: sigmoid hidden layer, linear output, E = MSE over 2 outputs = ½Σ(ŷ − y)², "
        f"x = ({X[0, 0]}, {X[0, 1]}), y = ({Y[0, 0]}, {Y[0, 1]}), one SGD step at lr {params.lr}",
        f"forward: out⁽¹⁾ = σ(W⁽¹⁾x + b⁽¹⁾) = ({h['out1']:.6f}, {h['out2']:.6f}, {h['out3']:.6f}), "
        f"ŷ = ({h['yhat1']:.6f}, {h['yhat2']:.6f}), E = {h['E']:.6f}",
        "output layer, w₁₃⁽²⁾ = 2.weight[0, 2] (hidden 3 → output 1):",
        "  ∂E/∂w₁₃⁽²⁾ = ∂E/∂ŷ₁ · ∂ŷ₁/∂w₁₃⁽²⁾ = (ŷ₁ − y₁) · out₃",
        f"             = {h['e1']:.6f} × {h['out3']:.6f} = {h['dw13_2']:.9f}",
        "hidden layer, w₃₂⁽¹⁾ = 0.weight[2, 1] (input 2 → hidden 3):",
        "  ∂E/∂w₃₂⁽¹⁾ = [(ŷ₁ − y₁)·w₁₃⁽²⁾ + (ŷ₂ − y₂)·w₂₃⁽²⁾] · out₃(1 − out₃) · x₂",
        f"             = [{h['e1']:.6f} × {h['w13_2']} + ({h['e2']:.6f}) × {h['w23_2']}] "
        f"· {h['out3']:.6f} × (1 − {h['out3']:.6f}) · {h['x2']}",
        f"             = {h['back3']:.6f} × {h['delta3']:.6f} × {h['x2']} = {h['dw32_1']:.9f}"
        f"   (delta term out₃(1 − out₃) = {h['delta3']:.6f} ≤ 0.25)",
        f"  {'':<30} {'by hand':>18} {'manual (NumPy)':>18} {'torch':>18}",
    ]
    for key, label in (("w13_2", "w₁₃⁽²⁾"), ("w32_1", "w₃₂⁽¹⁾")):
        name, index = featured[key]
        table.append(
            f"  {f'∂E/∂{label}':<30} {h[f'd{key}']:>18.12f} {manual_grads[name][index]:>18.12f} "
            f"{twins[f'grad/{key}']:>18.12f}"
        )
        table.append(
            f"  {f'{label} − {params.lr}·∂E/∂{label}':<30} {h[f'new_{key}']:>18.12f} "
            f"{manual_params[name][index]:>18.12f} {twins[f'updated/{key}']:>18.12f}"
        )
    numbers = {key: h[key] for key in ("E", "e1", "e2", "out3", "delta3", "back3", "dw13_2", "dw32_1")}
    numbers |= {"new_w13_2": h["new_w13_2"], "new_w32_1": h["new_w32_1"], "lr": params.lr}
    conclusion = (
        f"the chain rule term by term, by hand, gives ∂E/∂w₃₂⁽¹⁾ = {h['back3']:.6f} (both output errors sent back "
        f"through w₁₃⁽²⁾ and w₂₃⁽²⁾) × {h['delta3']:.6f} (the delta term out₃(1 − out₃), at most 0.25) × "
        f"{h['x2']} (x₂) = {h['dw32_1']:.6e}, and ∂E/∂w₁₃⁽²⁾ = {h['e1']:.6f} × {h['out3']:.6f} = {h['dw13_2']:.6f}; "
        f"after one step at lr {params.lr}, w₃₂⁽¹⁾ = {h['w32_1']} → {h['new_w32_1']:.9f} and w₁₃⁽²⁾ = "
        f"{h['w13_2']} → {h['new_w13_2']:.9f}: the hand values, the NumPy twin and torch agree, as does every other "
        "tensor of the step."
    )
    return Outcome(table, conclusion, numbers)


EXPERIMENT = Experiment(
    "chain-rule",
    "the worked 2-layer update: one sigmoid MLP step, ∂E/∂w₃₂⁽¹⁾ printed as its chain-rule product term by "
    "term (delta term out(1−out) included) and the updated weight, by hand = NumPy = torch",
    Params,
    run,
)
