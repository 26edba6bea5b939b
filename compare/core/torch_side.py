"""The torch reference as a side of the engine (``compare.core.side``), in one process.

Besides each tensor, the reference reports the scale floor every comparison is measured against
(``compare.core.scales``): the magnitude of the terms that produced the tensor, computed from torch's
own modules and tensors. ``compare.core.distributed.DataParallelSide`` replaces only the forward and
backward, with the same model under ``DistributedDataParallel``.
"""

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from compare.core import scales, spread
from compare.core.graph_order import backward_order
from compare.core.side import Pass, Tensors, by_layer
from torch_ref import InjectedMasks, TorchTwin
from torch_ref.optim import named_state


@dataclass
class ReferencePass(Pass):
    """The reference's pass, with the floor of each tensor and the grad stage's chain-rule order."""

    floors: dict[str, dict[str, float]] = field(default_factory=dict)  # stage → tensor name → floor
    grad_order: tuple[str, ...] = ()  # "<i>.out" and parameter names, from the loss down


class TorchSide:
    """The twin (``torch_ref.TorchTwin``): an ``nn.Sequential``, its loss, optimizer and schedule."""

    def __init__(self, twin: TorchTwin) -> None:
        self.twin = twin
        self.model: nn.Sequential = twin.model
        self.loss = twin.loss
        self.optimizer = twin.optimizer
        self.schedule = twin.schedule
        self.masks = InjectedMasks(twin.model)  # registered first: later hooks see the masked outputs
        self.device = next(twin.model.parameters()).device
        self.mode_dependent = any(isinstance(m, nn.Dropout | nn.BatchNorm1d | nn.SyncBatchNorm) for m in self.model)
        self._rank: dict[int, tuple[int, int]] | None = None  # each parameter's backward order (``_graph_rank``)

    def train_pass(self, x: np.ndarray, y: np.ndarray, masks: Mapping[int, np.ndarray] | None = None) -> ReferencePass:
        outs, loss = self.forward_backward(x, y, masks or {})
        return self._pass(x, y, outs, loss)

    def forward_backward(
        self, x: np.ndarray, y: np.ndarray, masks: Mapping[int, np.ndarray]
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Every layer's output (each with ``.grad``, dL/d output) and the loss, on the whole batch."""
        for i, mask in masks.items():
            if mask is not None:
                self.masks.set(i, mask, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        outs = self._forward(x, keep_grads=True)
        loss = self.loss(outs[-1], torch.from_numpy(y).to(self.device))
        loss.backward()
        return outs, loss

    def recomputed(self, k: int, x: np.ndarray, y: np.ndarray, masks: Mapping[int, np.ndarray]) -> dict:
        """The training pass again on a scratch copy whose parameters and ``x`` are moved by at most an ulp
        (``compare.core.spread.Perturbation(k)``), the same dropout ``masks`` applied: each layer's output
        (forward), the loss, dL/d(output) and the parameters' gradients (grad), by (stage, name)."""
        scratch, moved = self.scratch(), spread.Perturbation(k)
        with torch.no_grad():
            for param in scratch.model.parameters():
                param.copy_(moved(param))
        outs, loss = TorchSide.forward_backward(scratch, moved(x), y, masks)
        tensors = {("loss", "loss"): loss, **{("grad", name): g for name, g in scratch.grads().items()}}
        tensors.update({("forward", name): out for name, out in by_layer(outs).items()})
        tensors.update({("grad", name): g for name, g in by_layer([out.grad for out in outs]).items()})
        return tensors

    def _pass(self, x: np.ndarray, y: np.ndarray, outs: list[torch.Tensor], loss: torch.Tensor) -> ReferencePass:
        x_t = torch.from_numpy(x).to(self.device)
        rank = self._graph_rank(loss) if any(next(m.children(), None) for m in self.model) else {}
        floors, order = chain_floors(self.model, self.loss, x_t, y, outs, [out.grad for out in outs], rank)
        grads = {name: param.grad for i in reversed(range(len(outs))) for name, param in _named(self.model, i)}
        return ReferencePass(
            loss=loss.detach(),
            grads=grads,
            outputs=by_layer(outs),
            output_grads=by_layer([out.grad for out in outs]),
            floors=floors,
            grad_order=order,
        )

    def _graph_rank(self, loss: torch.Tensor) -> dict[int, tuple[int, int]]:
        """Each parameter's place in the backward order from the loss (``compare.core.graph_order``): inside a
        block of modules (a user's own model) the module nearest the loss comes first; each module keeps its
        own order (weight, bias)."""
        if self._rank is None:  # the graph's shape is the model's: read at the first step
            params = list(self.model.parameters())
            place = {id(params[i]): n for n, i in enumerate(backward_order([loss], params))}
            self._rank = {}
            for module in self.model.modules():
                own = list(module.parameters(recurse=False))
                first = min((place[id(p)] for p in own), default=0)
                self._rank.update({id(p): (first, k) for k, p in enumerate(own)})
        return self._rank

    def clip(self, max_norm: float) -> float:
        return float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm, foreach=False))

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def update(self) -> None:
        self.optimizer.step()

    def end_step(self) -> None:
        if self.schedule is not None:
            self.schedule.step()

    def state(self) -> dict[str, dict[str, Any]]:
        return named_state(self.optimizer, self.model)

    def buffers(self) -> Tensors:
        return dict(self.model.named_buffers())

    def parameters(self) -> Tensors:
        """NumPy views of the live parameters (copies on another device)."""
        return {name: p.detach().cpu().numpy() for name, p in self.model.named_parameters()}

    def grads(self) -> Tensors:
        return {name: p.grad.detach().cpu().numpy() for name, p in self.model.named_parameters() if p.grad is not None}

    def param_floors(self) -> dict[str, float]:
        """Each parameter's floor in the param stage, by name: none here (a subclass that knows the terms of
        each update, ``compare.check.check_model.ModuleSide``, gives them)."""
        return {}

    def keep_probability(self, index: int) -> float:
        """1 − p of the Dropout at ``index``."""
        return 1.0 - float(self.model[index].p)

    def kept(self) -> dict[str, Any]:
        """This side before a step, copied (``compare.core.rewind``): the model's parameters and buffers, the
        optimizer's ``state_dict`` (its tensors cloned: a deep copy of the whole costs 5x more) and the
        schedule's position."""
        twin = self.twin
        schedule = None if twin.schedule is None else copy.deepcopy(twin.schedule.state_dict())
        model = {name: tensor.detach().clone() for name, tensor in twin.model.state_dict().items()}
        return {"model": model, "optimizer": _copied(twin.optimizer.state_dict()), "schedule": schedule}

    def restored(self, kept: dict[str, Any]) -> "TorchSide":
        """A scratch copy of this side standing where ``kept`` (``kept()``) was taken."""
        scratch = self.scratch()
        scratch.model.load_state_dict(kept["model"])
        scratch.optimizer.load_state_dict(kept["optimizer"])
        if scratch.schedule is not None and kept["schedule"] is not None:
            scratch.schedule.load_state_dict(kept["schedule"])
        return scratch

    def scratch(self, dtype: type | None = None) -> "TorchSide":
        """A single-process copy of this side (a data-parallel side's local twin), with its own dropout-mask
        hooks (a copied hook would read the original's masks); ``dtype``: every floating tensor of the copy
        (parameters, buffers, optimizer state) cast to it (the float64 witness)."""
        twin = copy.deepcopy(self.twin)
        for module in twin.model.modules():
            module._forward_hooks.clear()
        if dtype is not None:
            twin.model.to(getattr(torch, np.dtype(dtype).name))  # in place: the optimizer's parameters stay its own
            for state in twin.optimizer.state.values():
                for key, value in state.items():
                    if key != "step" and isinstance(value, torch.Tensor) and value.is_floating_point():
                        state[key] = value.to(getattr(torch, np.dtype(dtype).name))
        return TorchSide(twin)

    def values(self) -> dict[str, np.ndarray]:
        """Parameters and buffers, by name, as NumPy (what a resync copies into the manual side)."""
        return {name: tensor.detach().cpu().numpy() for name, tensor in self.model.state_dict().items()}

    def eval_outputs(self, x: np.ndarray) -> Tensors:
        return self.eval_pass(x)[0]

    def eval_pass(self, x: np.ndarray) -> tuple[Tensors, dict[str, float]]:
        """Every layer's output in evaluation mode, and each one's floor."""
        self.model.eval()
        try:
            with torch.no_grad():
                outs = self._forward(x, keep_grads=False)
        finally:
            self.model.train()
        inputs = [torch.from_numpy(x).to(self.device), *outs[:-1]]
        names = [f"{i}.out" for i in range(len(outs))]
        floors = {name: scales.forward_floor(self.model[i], inputs[i]) for i, name in enumerate(names)}
        return dict(zip(names, outs, strict=True)), floors

    def predict(self, X: np.ndarray) -> np.ndarray:
        self.model.eval()
        try:
            with torch.no_grad():
                return self.model(torch.from_numpy(X).to(self.device)).cpu().numpy()
        finally:
            self.model.train()

    def loss_value(self, prediction: np.ndarray, y: np.ndarray) -> float:
        with torch.no_grad():
            return float(self.loss(torch.from_numpy(prediction).to(self.device), torch.from_numpy(y).to(self.device)))

    def _forward(self, x: np.ndarray, keep_grads: bool) -> list[torch.Tensor]:
        h = torch.from_numpy(x).to(self.device)
        outs = []
        for layer in self.model:
            h = layer(h)
            if keep_grads:
                h.retain_grad()  # keep dL/d(layer output) for the grad stage
            outs.append(h)
        return outs


def _copied(state_dict: dict) -> dict:
    """An optimizer's ``state_dict`` with its tensors cloned."""
    state = {
        index: {key: _clone(value) for key, value in entries.items()} for index, entries in state_dict["state"].items()
    }
    return {"state": state, "param_groups": copy.deepcopy(state_dict["param_groups"])}


def _clone(value: Any) -> Any:
    return value.clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value)


def _named(model: nn.Sequential, index: int) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter the module at ``index`` holds, its own blocks' too, by ``state_dict`` name."""
    for key, param in model[index].named_parameters():
        yield f"{index}.{key}", param


def chain_floors(
    model: nn.Sequential,
    loss: nn.Module,
    x: torch.Tensor,
    y: np.ndarray,
    outs: list[torch.Tensor],
    out_grads: list[torch.Tensor | None],
    rank: dict[int, tuple[int, int]] | None = None,
) -> tuple[dict[str, dict[str, float]], tuple[str, ...]]:
    """The floor of every tensor of a training pass (``compare.core.scales``), and the grad stage's chain-rule
    order: ``model``'s modules and their parameters describe the layers; ``outs`` and ``out_grads`` are each
    layer's output and dL/d(output) (the JAX side hands its own values in a torch mirror of its layers);
    ``rank``, each parameter's place in the backward order by ``id`` (``TorchSide._graph_rank``), orders a
    block's parameters nearest the loss first."""
    inputs = [x, *outs[:-1]]  # what each module received
    names = [f"{i}.out" for i in range(len(outs))]
    amax = scales.Amax()  # each tensor's max|·| taken once: a weight, an input, a gradient is read twice
    carried = [0.0]  # each module's input floor: cancellation in earlier layers carried forward
    for i in range(len(outs)):
        carried.append(scales.forward_floor(model[i], inputs[i], carried[i], amax))
    floors: dict[str, dict[str, float]] = {
        "forward": {name: carried[i + 1] for i, name in enumerate(names)},
        "loss": {"loss": scales.loss_floor(loss, outs[-1], y, amax)},
        "grad": {},
    }
    order = []
    # Each dL/d(i.out)'s floor is the size of the terms it came from, carried back through the chain
    # rule; the loss's own gradient starts it (near a minimum, p − y cancels but p and y do not).
    floor = scales.loss_grad_floor(loss, outs[-1], y)
    for i in reversed(range(len(outs))):
        if i + 1 < len(outs):
            floor = scales.input_grad_floor(model[i + 1], outs[i], max(amax(out_grads[i + 1]), floor), amax)
        order.append(names[i])
        floors["grad"][names[i]] = floor
        g = max(amax(out_grads[i]), floor)
        param_floors = scales.param_grad_floors(model[i], inputs[i], g, carried[i], amax)
        # every parameter the module holds, its own blocks' too (a floor is known for Linear and
        # BatchNorm; any other parameter is measured against its own scale)
        for key, _ in sorted(model[i].named_parameters(), key=lambda item: (rank or {}).get(id(item[1]), (0, 0))):
            order.append(f"{i}.{key}")
            floors["grad"][f"{i}.{key}"] = param_floors.get(key, 0.0)
    return floors, tuple(order)
