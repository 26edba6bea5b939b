"""Seeded initial weights in torch's layout, so both twins start from one set of arrays."""

import numpy as np

from manual.spec import MLPSpec

RELU_FAMILY = ("relu", "leaky_relu")


def init_state_dict(
    spec: MLPSpec, rng: np.random.Generator, dtype: np.dtype | type = np.float64, zero_bias: bool = False
) -> dict[str, np.ndarray]:
    """Fresh weights for ``spec``, keyed by torch ``state_dict`` names, in torch's order.

    Linear weights: He normal, W ~ N(0, 2/I), for the ReLU family (keeps the activation variance
    from shrinking layer by layer); Glorot uniform, W ~ U(−a, a) with a = √(6/(I+O)), for sigmoid
    and tanh. Linear biases: U(−1/√I, 1/√I), torch's default, so that a bug in the bias path cannot
    hide behind zeros (``zero_bias=True`` gives zeros). BatchNorm: γ ~ U(0.8, 1.2) and β ~ U(−0.1, 0.1)
    rather than torch's 1 and 0, for the same reason; running_mean 0, running_var 1, as torch.
    """
    state: dict[str, np.ndarray] = {}
    for node in spec.layout():
        prefix, fan_in, fan_out = node.index, node.width_in, node.width_out
        if node.kind == "linear":
            if spec.activation in RELU_FAMILY:
                weight = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_out, fan_in))
            else:
                bound = np.sqrt(6.0 / (fan_in + fan_out))
                weight = rng.uniform(-bound, bound, size=(fan_out, fan_in))
            bound = 1.0 / np.sqrt(fan_in)
            bias = np.zeros(fan_out) if zero_bias else rng.uniform(-bound, bound, size=fan_out)
            state[f"{prefix}.weight"] = weight.astype(dtype)
            if node.bias:
                state[f"{prefix}.bias"] = bias.astype(dtype)
        elif node.kind == "batchnorm":
            state[f"{prefix}.weight"] = rng.uniform(0.8, 1.2, size=fan_out).astype(dtype)
            state[f"{prefix}.bias"] = (np.zeros(fan_out) if zero_bias else rng.uniform(-0.1, 0.1, fan_out)).astype(
                dtype
            )
            state[f"{prefix}.running_mean"] = np.zeros(fan_out, dtype=dtype)
            state[f"{prefix}.running_var"] = np.ones(fan_out, dtype=dtype)
            state[f"{prefix}.num_batches_tracked"] = np.array(0, dtype=np.int64)
    return state
