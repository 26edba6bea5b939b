"""The hand-written MLP: a chain of graph nodes whose backward runs the chain rule in reverse."""

from collections.abc import Mapping

import numpy as np

from manual.layers import ACTIVATIONS, BatchNorm1d, Dropout, Linear, Node
from manual.losses import LOSSES
from manual.spec import MLPSpec


class MLP:
    """Linear → [BatchNorm1d] → activation → [Dropout] → … → Linear, named as torch's ``nn.Sequential``.

    ``forward`` returns every layer's output and ``backward`` every dL/d(layer output), so a
    checker can find the first intermediate that disagrees, not only the loss. ``rng`` draws the
    dropout masks (needed only when ``spec.dropout > 0``).
    """

    def __init__(
        self, spec: MLPSpec, state_dict: Mapping[str, np.ndarray], rng: np.random.Generator | None = None
    ) -> None:
        check_state_dict(spec, state_dict)
        self.spec = spec

        def own(name: str) -> np.ndarray:
            return np.array(state_dict[name], copy=True)

        self.layers: list[Node] = []
        for node in spec.layout():
            i = node.index
            if node.kind == "linear":
                bias = own(f"{i}.bias") if node.bias else None
                self.layers.append(Linear(own(f"{i}.weight"), bias, input_grad=i > 0))
            elif node.kind == "batchnorm":
                names = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
                self.layers.append(BatchNorm1d(*(own(f"{i}.{name}") for name in names)))
            elif node.kind == "dropout":
                if rng is None:
                    raise ValueError("a model with dropout needs an rng to draw its masks")
                self.layers.append(Dropout(spec.dropout, rng))
            else:
                self.layers.append(ACTIVATIONS[node.kind]())
        self.loss = LOSSES[spec.loss]()

    def train(self, mode: bool = True) -> "MLP":
        """Training mode (dropout on, batch statistics) or, with ``mode=False``, evaluation mode."""
        for layer in self.layers:
            layer.training = mode
        return self

    def eval(self) -> "MLP":
        return self.train(False)

    def named_parameters(self) -> dict[str, np.ndarray]:
        """Trainable ``state_dict`` name → the live array (optimizers update these in place)."""
        return {f"{i}.{key}": value for i, layer in enumerate(self.layers) for key, value in layer.params.items()}

    def named_grads(self) -> dict[str, np.ndarray]:
        """``state_dict`` name → the gradient from the last ``backward``."""
        return {f"{i}.{key}": value for i, layer in enumerate(self.layers) for key, value in layer.grads.items()}

    def named_buffers(self) -> dict[str, np.ndarray]:
        """Non-trainable state (BatchNorm's running statistics), live arrays."""
        return {f"{i}.{key}": value for i, layer in enumerate(self.layers) for key, value in layer.buffers.items()}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of parameters and buffers in torch's order, safe to keep while training goes on."""
        live = {**self.named_parameters(), **self.named_buffers()}
        return {name: live[name].copy() for name in self.spec.state_dict_shapes()}

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's output for input ``x`` (N, D); the last one is the prediction (N, C)."""
        outputs = []
        for layer in self.layers:
            x = layer.forward(x)
            outputs.append(x)
        return outputs

    def backward(self, dprediction: np.ndarray) -> list[np.ndarray]:
        """Chain rule from dL/d(prediction) down to the input; fills each layer's ``grads``.

        Returns dL/d(output of layer i) for every i, aligned with ``forward``'s list.
        """
        douts = [dprediction]
        for layer in reversed(self.layers[1:]):
            douts.append(layer.backward(douts[-1]))
        self.layers[0].backward(douts[-1])
        return douts[::-1]


def check_state_dict(spec: MLPSpec, state_dict: Mapping[str, np.ndarray]) -> None:
    """Raise ``ValueError`` naming the first missing, unexpected or misshapen key."""
    expected = spec.state_dict_shapes()
    missing = [name for name in expected if name not in state_dict]
    if missing:
        raise ValueError(f"missing weight {missing[0]!r} (expected keys: {', '.join(expected)})")
    extra = [name for name in state_dict if name not in expected]
    if extra:
        raise ValueError(f"unexpected weight {extra[0]!r} (expected keys: {', '.join(expected)})")
    for name, shape in expected.items():
        actual = tuple(np.shape(state_dict[name]))
        if actual != shape:
            raise ValueError(f"weight {name!r} has shape {actual}, expected {shape} (torch layout: (out, in))")
