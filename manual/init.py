"""Seeded initial weights in torch's layout, so both twins start from one set of arrays."""

import numpy as np

from manual.spec import MLPSpec

RELU_FAMILY = ("relu", "leaky_relu")


def init_state_dict(
    spec: MLPSpec, rng: np.random.Generator, dtype: np.dtype | type = np.float64, zero_bias: bool = False
) -> dict[str, np.ndarray]:
    """Fresh weights for ``spec``, keyed by torch ``state_dict`` names.

    Weights: He normal, W ~ N(0, 2/I), for the ReLU family (keeps the activation variance
    from shrinking layer by layer); Glorot uniform, W ~ U(−a, a) with a = √(6/(I+O)), for
    sigmoid and tanh. Biases: U(−1/√I, 1/√I), torch's default for ``nn.Linear``, so that a
    bug in the bias path cannot hide behind zeros (``zero_bias=True`` gives zeros).
    """
    state: dict[str, np.ndarray] = {}
    for index, fan_in, fan_out in spec.linears():
        if spec.activation in RELU_FAMILY:
            weight = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_out, fan_in))
        else:
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            weight = rng.uniform(-bound, bound, size=(fan_out, fan_in))
        bound = 1.0 / np.sqrt(fan_in)
        bias = np.zeros(fan_out) if zero_bias else rng.uniform(-bound, bound, size=fan_out)
        state[f"{index}.weight"] = weight.astype(dtype)
        state[f"{index}.bias"] = bias.astype(dtype)
    return state
