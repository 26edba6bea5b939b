"""The hand-written MLP: a chain of graph nodes whose backward runs the chain rule in reverse."""

from collections.abc import Mapping

import numpy as np

from manual.layers import ACTIVATIONS, Linear
from manual.losses import LOSSES
from manual.spec import MLPSpec


class MLP:
    """Linear → activation → … → Linear, with parameters named as torch's ``nn.Sequential``.

    ``forward`` returns every layer's output and ``backward`` every dL/d(layer output), so a
    checker can find the first intermediate that disagrees, not only the loss.
    """

    def __init__(self, spec: MLPSpec, state_dict: Mapping[str, np.ndarray]) -> None:
        check_state_dict(spec, state_dict)
        self.spec = spec
        self.layers: list = []
        for index, _, _ in spec.linears():
            weight = np.array(state_dict[f"{index}.weight"], copy=True)
            bias = np.array(state_dict[f"{index}.bias"], copy=True)
            if index > 0:
                self.layers.append(ACTIVATIONS[spec.activation]())
            self.layers.append(Linear(weight, bias))
        self.loss = LOSSES[spec.loss]()

    @property
    def dtype(self) -> np.dtype:
        return self.layers[0].params["weight"].dtype

    def named_parameters(self) -> dict[str, np.ndarray]:
        """``state_dict`` name → the live parameter array (optimizers update these in place)."""
        return {f"{i}.{key}": value for i, layer in enumerate(self.layers) for key, value in layer.params.items()}

    def named_grads(self) -> dict[str, np.ndarray]:
        """``state_dict`` name → the gradient from the last ``backward``."""
        return {f"{i}.{key}": value for i, layer in enumerate(self.layers) for key, value in layer.grads.items()}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters, safe to keep while training goes on."""
        return {name: value.copy() for name, value in self.named_parameters().items()}

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
    expected = spec.parameter_shapes()
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
