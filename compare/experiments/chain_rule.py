"""chain-rule: the lecture notes' worked update of w₃₂⁽²⁾ and of a hidden weight, term by term.

The network of the notes: 2 inputs, a sigmoid hidden layer (3 nodes), 2 sigmoid outputs, the squared
error of one example, one step of gradient descent. torch's ``MSELoss`` averages over the 2 outputs, so
E = ½[(o₁ − t₁)² + (o₂ − t₂)²], the notes' E, and ∂E/∂oₖ = oₖ − tₖ.

Notation, the notes' order: w_ij⁽ˡ⁾ joins node i of layer l − 1 to node j of layer l (layer 0 is the
input), so it is ``weight[j − 1, i − 1]`` of the l-th Linear in torch's (out, in) layout; netⱼ is a node's
weighted sum, hⱼ = σ(netⱼ⁽¹⁾) a hidden output and oₖ = σ(netₖ⁽²⁾) an output. The two weights worked:

* w₃₂⁽²⁾ (hidden 3 → output 2), output layer, with the delta δ₂⁽²⁾ = (o₂ − t₂)·o₂(1 − o₂)::

      ∂E/∂w₃₂⁽²⁾ = ∂E/∂o₂ · ∂o₂/∂net₂⁽²⁾ · ∂net₂⁽²⁾/∂w₃₂⁽²⁾ = (o₂ − t₂) · o₂(1 − o₂) · h₃ = δ₂⁽²⁾ · h₃

* w₂₃⁽¹⁾ (input 2 → hidden 3), hidden layer. h₃ has no target of its own: it feeds both outputs, so
  both output deltas come back to it, through w₃₁⁽²⁾ and w₃₂⁽²⁾::

      ∂E/∂w₂₃⁽¹⁾ = [δ₁⁽²⁾·w₃₁⁽²⁾ + δ₂⁽²⁾·w₃₂⁽²⁾] · h₃(1 − h₃) · x₂ = δ₃⁽¹⁾ · x₂

Both take the delta form out(1 − out), sigmoid's derivative (at most 0.25). Every term is computed
three ways: by hand in plain Python floats, by the NumPy layers of ``manual`` (Linear, Sigmoid, MSELoss
and the SGD rule, composed as the notes draw the network) and by torch autograd (``nn.Sequential`` with
``retain_grad`` on each intermediate); then the update w ← w − η·∂E/∂w and the next forward pass. The
output follows the notes' training loop: initialise, mini-batch, backprop, update, repeat.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from compare.experiments.base import Experiment, Outcome, Pairs, Session, SubRunParity, check_pairs
from compare.experiments.text import pad
from compare.i18n import N_, _
from manual import layers, losses
from manual.optim import SGD

WEIGHTS = {  # readable numbers in the notes' style, torch layout (out, in)
    "0.weight": np.array([[0.15, 0.20], [0.25, 0.30], [0.35, 0.40]]),
    "0.bias": np.array([0.35, 0.30, 0.25]),
    "2.weight": np.array([[0.40, 0.45, 0.50], [0.55, 0.60, 0.65]]),
    "2.bias": np.array([0.60, 0.55]),
}
X = np.array([[0.05, 0.10]])  # (1, 2) one example: the mini-batch of the notes' derivation
T = np.array([[0.01, 0.99]])  # (1, 2) its targets
W32_2 = ("2.weight", (1, 2))  # w₃₂⁽²⁾: hidden 3 → output 2
W23_1 = ("0.weight", (2, 1))  # w₂₃⁽¹⁾: input 2 → hidden 3
TERMS = (  # every term compared three ways, in the order of the derivation
    "E", "h3", "o1", "o2", "e2", "s2", "delta2", "grad_w32_2",
    "delta1", "w31_2", "w32_2", "back3", "s3", "delta3", "x2", "grad_w23_1",
    "new_w32_2", "new_w23_1", "E_next",
)  # fmt: skip


@dataclass(frozen=True)
class Params:
    """One step of plain gradient descent (torch.optim.SGD) at learning rate ``lr``."""

    lr: float = 0.5


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def hand_forward(w: dict[str, list]) -> tuple[list[float], list[float], float]:
    """h = σ(W⁽¹⁾x + b⁽¹⁾), o = σ(W⁽²⁾h + b⁽²⁾), E = ½Σₖ(oₖ − tₖ)², in plain floats."""
    x, t = X[0].tolist(), T[0].tolist()
    h = [sigmoid(sum(w["0.weight"][j][i] * x[i] for i in range(2)) + w["0.bias"][j]) for j in range(3)]
    o = [sigmoid(sum(w["2.weight"][k][j] * h[j] for j in range(3)) + w["2.bias"][k]) for k in range(2)]
    return h, o, 0.5 * sum((o[k] - t[k]) ** 2 for k in range(2))


def by_hand(lr: float) -> dict[str, float]:
    """Every term of the derivation in plain Python floats, then the whole update and the next pass."""
    w = {name: value.tolist() for name, value in WEIGHTS.items()}
    x, t = X[0].tolist(), T[0].tolist()
    h, o, E = hand_forward(w)
    delta2 = [(o[k] - t[k]) * o[k] * (1.0 - o[k]) for k in range(2)]  # δₖ⁽²⁾ = (oₖ − tₖ)·oₖ(1 − oₖ)
    back = [sum(delta2[k] * w["2.weight"][k][j] for k in range(2)) for j in range(3)]  # ∂E/∂hⱼ, both outputs
    delta1 = [back[j] * h[j] * (1.0 - h[j]) for j in range(3)]  # δⱼ⁽¹⁾ = ∂E/∂hⱼ · hⱼ(1 − hⱼ)
    grads = {
        "0.weight": [[delta1[j] * x[i] for i in range(2)] for j in range(3)],
        "0.bias": delta1,
        "2.weight": [[delta2[k] * h[j] for j in range(3)] for k in range(2)],
        "2.bias": delta2,
    }
    new = {  # w ← w − η·∂E/∂w, every weight from the same (old) gradients
        name: [
            [v - lr * g for v, g in zip(row, grow, strict=True)] if isinstance(row, list) else row - lr * grow
            for row, grow in zip(w[name], grads[name], strict=True)
        ]
        for name in w
    }
    terms = {"E": E, "h3": h[2], "o1": o[0], "o2": o[1], "e2": o[1] - t[1], "s2": o[1] * (1.0 - o[1])}
    terms |= {"delta2": delta2[1], "grad_w32_2": grads["2.weight"][1][2], "delta1": delta2[0]}
    terms |= {"w31_2": w["2.weight"][0][2], "w32_2": w["2.weight"][1][2], "back3": back[2]}
    terms |= {"s3": h[2] * (1.0 - h[2]), "delta3": delta1[2], "x2": x[1], "grad_w23_1": grads["0.weight"][2][1]}
    terms |= {"new_w32_2": new["2.weight"][1][2], "new_w23_1": new["0.weight"][2][1], "E_next": hand_forward(new)[2]}
    return terms


def numpy_pass(lr: float) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The terms from ``manual``'s NumPy layers (each term read off the layer that computes it), with
    every gradient and every updated parameter, torch names."""
    first = layers.Linear(WEIGHTS["0.weight"].copy(), WEIGHTS["0.bias"].copy())
    second = layers.Linear(WEIGHTS["2.weight"].copy(), WEIGHTS["2.bias"].copy())
    hidden, output, loss = layers.Sigmoid(), layers.Sigmoid(), losses.MSELoss()
    h = hidden.forward(first.forward(X))
    o = output.forward(second.forward(h))
    E = loss.forward(o, T)
    error = loss.backward()  # ∂E/∂o = o − t
    delta2 = output.backward(error)  # ∂E/∂net⁽²⁾
    back = second.backward(delta2)  # ∂E/∂h: both outputs' deltas through W⁽²⁾
    delta1 = hidden.backward(back)  # ∂E/∂net⁽¹⁾
    first.backward(delta1)
    s2, s3 = output.backward(np.ones_like(o))[0, 1], hidden.backward(np.ones_like(h))[0, 2]  # local σ'
    params = {f"0.{k}": v for k, v in first.params.items()} | {f"2.{k}": v for k, v in second.params.items()}
    grads = {f"0.{k}": v.copy() for k, v in first.grads.items()} | {f"2.{k}": v.copy() for k, v in second.grads.items()}
    terms = {"E": E, "h3": h[0, 2], "o1": o[0, 0], "o2": o[0, 1], "e2": error[0, 1], "s2": s2}
    terms |= {"delta2": delta2[0, 1], "grad_w32_2": grads["2.weight"][1, 2], "delta1": delta2[0, 0]}
    terms |= {"w31_2": params["2.weight"][0, 2], "w32_2": params["2.weight"][1, 2], "back3": back[0, 2]}
    terms |= {"s3": s3, "delta3": delta1[0, 2], "x2": X[0, 1], "grad_w23_1": grads["0.weight"][2, 1]}
    rule = SGD(lr=lr)
    rule.step(params, grads, rule.init(params))  # in place, the layers' own arrays
    terms |= {"new_w32_2": params["2.weight"][1, 2], "new_w23_1": params["0.weight"][2, 1]}
    terms["E_next"] = loss.forward(output.forward(second.forward(hidden.forward(first.forward(X)))), T)
    return {key: float(value) for key, value in terms.items()}, grads, params


def torch_pass(lr: float) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The same terms from torch autograd: ``retain_grad`` on every intermediate, ``autograd.grad`` for
    each sigmoid's local derivative, ``torch.optim.SGD`` for the update."""
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Sigmoid(), torch.nn.Linear(3, 2), torch.nn.Sigmoid())
    model = model.double()
    model.load_state_dict({name: torch.from_numpy(value.copy()) for name, value in WEIGHTS.items()})
    x, t = torch.from_numpy(X), torch.from_numpy(T)
    net1 = model[0](x)
    h = model[1](net1)
    net2 = model[2](h)
    o = model[3](net2)
    s2 = torch.autograd.grad(o, net2, torch.ones_like(o), retain_graph=True)[0][0, 1]  # ∂o/∂net⁽²⁾, element-wise
    s3 = torch.autograd.grad(h, net1, torch.ones_like(h), retain_graph=True)[0][0, 2]
    for tensor in (net1, h, net2, o):  # after the local derivatives: a retained .grad would keep their ones
        tensor.retain_grad()
    E = torch.nn.MSELoss()(o, t)
    E.backward()
    named = dict(model.named_parameters())
    grads = {name: p.grad.detach().numpy().copy() for name, p in named.items()}
    w = {name: p.detach().numpy().copy() for name, p in named.items()}
    terms = {"E": E.item(), "h3": h[0, 2].item(), "o1": o[0, 0].item(), "o2": o[0, 1].item()}
    terms |= {"e2": o.grad[0, 1].item(), "s2": s2.item(), "delta2": net2.grad[0, 1].item()}
    terms |= {"grad_w32_2": grads["2.weight"][1, 2], "delta1": net2.grad[0, 0].item()}
    terms |= {"w31_2": w["2.weight"][0, 2], "w32_2": w["2.weight"][1, 2], "back3": h.grad[0, 2].item()}
    terms |= {"s3": s3.item(), "delta3": net1.grad[0, 2].item(), "x2": X[0, 1]}
    terms["grad_w23_1"] = grads["0.weight"][2, 1]
    torch.optim.SGD(model.parameters(), lr=lr).step()
    params = {name: p.detach().numpy().copy() for name, p in model.named_parameters()}
    terms |= {"new_w32_2": params["2.weight"][1, 2], "new_w23_1": params["0.weight"][2, 1]}
    with torch.no_grad():
        terms["E_next"] = torch.nn.MSELoss()(model(x), t).item()
    return {key: float(value) for key, value in terms.items()}, grads, params


def compared(lr: float) -> tuple[dict[str, dict[str, float]], int, float]:
    """The three ways' terms, each held to the float64 tolerance: NumPy against torch first (every term,
    every gradient and updated parameter), then the hand values against both. Returns the terms by way,
    the number of values compared and the worst max_rel; a disagreement raises ``ParityError``."""
    hand = by_hand(lr)
    numpy_terms, numpy_grads, numpy_params = numpy_pass(lr)
    torch_terms, torch_grads, torch_params = torch_pass(lr)
    twins: Pairs = {f"term/{key}": (numpy_terms[key], torch_terms[key]) for key in TERMS}
    for kind, mine, theirs in (("grad", numpy_grads, torch_grads), ("updated", numpy_params, torch_params)):
        for name, value in mine.items():
            twins |= {f"{kind}/{name}{i}": (float(value[i]), float(theirs[name][i])) for i in np.ndindex(value.shape)}
    worst = check_pairs("step", 1, twins)
    for way, terms in (("numpy", numpy_terms), ("torch", torch_terms)):
        worst = max(worst, check_pairs(f"by-hand-vs-{way}", 1, {key: (hand[key], terms[key]) for key in TERMS}))
    return {"hand": hand, "numpy": numpy_terms, "torch": torch_terms}, len(twins) + 2 * len(TERMS), worst


def derivation(h: dict[str, float], lr: float) -> list[str]:
    """The notes' derivation in the order of their training loop, with the hand values."""
    v = {key: f"{value:.6f}" for key, value in h.items()} | {"lr": lr, "x": X[0].tolist(), "t": T[0].tolist()}
    v |= {"g32": f"{h['grad_w32_2']:.9f}", "g23": f"{h['grad_w23_1']:.9f}", "E_next": f"{h['E_next']:.9f}"}
    v |= {"new32": f"{h['new_w32_2']:.9f}", "new23": f"{h['new_w23_1']:.9f}", "E9": f"{h['E']:.9f}"}
    v |= {f"({key})": f"({h[key]:.6f})" if h[key] < 0 else v[key] for key in ("e2", "delta1", "delta2")}  # in products
    v["x_w23"] = f"{WEIGHTS[W23_1[0]][W23_1[1]]:.6f}"
    lines = [
        _(
            "network 2-3-2 as in the notes: sigmoid at both layers, E = ½Σₖ(oₖ − tₖ)² (torch's MSELoss, the mean "
            "over 2 outputs); w_ij⁽ˡ⁾ joins node i of layer l − 1 to node j of layer l"
        ),
        _("1. initialise: the weights of the notes' style, w₃₁⁽²⁾ = {w31_2}, w₃₂⁽²⁾ = {w32_2}"),
        _("2. mini-batch: one example, x = ({x[0]}, {x[1]}), target t = ({t[0]}, {t[1]})"),
        _("   forward: h₃ = {h3}, o = ({o1}, {o2}), E = {E}"),
        _("3. backprop (chain rule), output layer, w₃₂⁽²⁾ = 2.weight[1, 2] (hidden 3 → output 2):"),
        "   ∂E/∂w₃₂⁽²⁾ = ∂E/∂o₂ · ∂o₂/∂net₂⁽²⁾ · ∂net₂⁽²⁾/∂w₃₂⁽²⁾ = (o₂ − t₂) · o₂(1 − o₂) · h₃",
        "              = {(e2)} × {s2} × {h3} = {g32}",
        _("   delta: δ₂⁽²⁾ = (o₂ − t₂)·o₂(1 − o₂) = {delta2}"),
        _(
            "   hidden layer, w₂₃⁽¹⁾ = 0.weight[2, 1] (input 2 → hidden 3): h₃ has no target of its own, so its "
            "error comes back from both outputs"
        ),
        "   ∂E/∂w₂₃⁽¹⁾ = [δ₁⁽²⁾·w₃₁⁽²⁾ + δ₂⁽²⁾·w₃₂⁽²⁾] · h₃(1 − h₃) · x₂",
        "              = [{(delta1)} × {w31_2} + {(delta2)} × {w32_2}] × {s3} × {x2}",
        "              = {back3} × {s3} × {x2} = {g23}",
        _("   delta: δ₃⁽¹⁾ = ∂E/∂h₃ · h₃(1 − h₃) = {delta3}; both deltas take the form out(1 − out) ≤ 0.25"),
        _("4. update: w ← w − η·∂E/∂w at η = {lr}: w₃₂⁽²⁾ {w32_2} → {new32}, w₂₃⁽¹⁾ {x_w23} → {new23}"),
        _("5. repeat: the next forward pass from the new weights gives E = {E_next} (was {E9})"),
    ]
    return [line.format(**v) for line in lines]


LABELS = {  # each compared term as the notes write it
    "E": "E", "h3": "h₃", "o1": "o₁", "o2": "o₂", "e2": "∂E/∂o₂ = o₂ − t₂", "s2": "o₂(1 − o₂)",
    "delta2": "δ₂⁽²⁾", "grad_w32_2": "∂E/∂w₃₂⁽²⁾", "delta1": "δ₁⁽²⁾", "w31_2": "w₃₁⁽²⁾", "w32_2": "w₃₂⁽²⁾",
    "back3": "∂E/∂h₃", "s3": "h₃(1 − h₃)", "delta3": "δ₃⁽¹⁾", "x2": "x₂", "grad_w23_1": "∂E/∂w₂₃⁽¹⁾",
    "new_w32_2": "w₃₂⁽²⁾ − η·∂E/∂w₃₂⁽²⁾", "new_w23_1": "w₂₃⁽¹⁾ − η·∂E/∂w₂₃⁽¹⁾", "E_next": "E",
}  # fmt: skip


def run(params: Params, session: Session) -> Outcome:
    ways, count, worst = compared(params.lr)
    session.record(SubRunParity("step", 0, {}, worst, count))
    hand = ways["hand"]
    table = derivation(hand, params.lr)
    table.append(
        f"   {pad(_('term'), 26)} {pad(_('by hand'), 18, '>')} {pad(_('NumPy (manual)'), 18, '>')} {'torch':>18}"
    )
    for key in TERMS:
        label = LABELS[key] if key != "E_next" else _("E after the update")
        values = " ".join(f"{ways[way][key]:>18.12f}" for way in ("hand", "numpy", "torch"))
        table.append(f"   {pad(label, 26)} {values}")
    writers = session.writers("step")
    if writers:
        writers.pairs({f"term/{key}": (ways["numpy"][key], ways["torch"][key]) for key in TERMS}, 1)
        writers.text("derivation", table)
        writers.close()
    numbers: dict[str, float | int | str | None] = {key: hand[key] for key in TERMS}
    numbers |= {"lr": params.lr, "compared": count, "max_rel": worst}
    conclusion = _(
        "the notes' derivation holds term by term: ∂E/∂w₃₂⁽²⁾ = (o₂ − t₂) · o₂(1 − o₂) · h₃ = {e2:.6f} × "
        "{s2:.6f} × {h3:.6f} = {g32:.6e}, and the hidden weight, whose node has no target of its own, gets "
        "both outputs' deltas back: ∂E/∂w₂₃⁽¹⁾ = {back3:.6f} × {s3:.6f} (the delta term h₃(1 − h₃), at most "
        "0.25) × {x2} = {g23:.6e}. By hand, NumPy and torch agree on all {count} values (worst max_rel "
        "{worst:.1e}); one step at learning rate {lr} lowers E from {E:.6f} to {E_next:.6f}."
    ).format(**hand, g32=hand["grad_w32_2"], g23=hand["grad_w23_1"], count=count, worst=worst, lr=params.lr)
    return Outcome(table, conclusion, numbers)


EXPERIMENT = Experiment(
    "chain-rule",
    N_(
        "the notes' worked update: a 2-3-2 sigmoid network with squared error, ∂E/∂w₃₂⁽²⁾ and a hidden weight's "
        "gradient (error from both outputs) term by term, delta form out(1−out), by hand = NumPy = torch"
    ),
    Params,
    run,
)
