"""How small a mistake the tolerances catch: the smallest relative perturbation of one gradient
element that the checker flags, per dtype, found by bisection on real lockstep steps.

    .venv/bin/python -m compare.bench.sensitivity

The perturbation multiplies one element of the manual gradient of ``2.weight`` (spiral data, the
default 2-16-16-3 ReLU network, batch 32) by (1 + δ) at step 1. Reported for the element of largest
magnitude and for the median non-zero one: a tolerance on the tensor's scale is an absolute threshold for
each element, so smaller elements need a larger relative change to show.
"""

import json

import numpy as np
import torch

from compare.core import mlp_pair
from compare.inputs import data
from manual import MLPSpec, init_state_dict

torch.set_num_threads(1)
SPEC = MLPSpec((2, 16, 16, 3), "relu", "cross_entropy")
TENSOR = "2.weight"


def detected(dtype: str, element: tuple[int, int], delta: float) -> bool:
    rng = np.random.default_rng(0)
    dataset = data.spiral(rng)
    x, y = dataset.X[:32].astype(dtype), dataset.y[:32]
    lockstep = mlp_pair.twins(SPEC, init_state_dict(SPEC, rng, np.dtype(dtype)), "sgd", {"lr": 0.1}, dtype)
    layer = lockstep.manual.model.layers[2]
    original = layer.backward

    def perturbed(dout):
        dx = original(dout)
        layer.grads["weight"] = layer.grads["weight"].copy()
        layer.grads["weight"][element] *= 1 + delta
        return dx

    layer.backward = perturbed
    record = lockstep.step(1, x, y)
    return any(c.tensor == TENSOR and c.stage == "grad" and not c.passed for c in record.checks)


def reference_gradient(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    dataset = data.spiral(rng)
    lockstep = mlp_pair.twins(SPEC, init_state_dict(SPEC, rng, np.dtype(dtype)), "sgd", {"lr": 0.1}, dtype)
    lockstep.step(1, dataset.X[:32].astype(dtype), dataset.y[:32])
    return lockstep.manual.grads()[TENSOR]


def smallest_detected(dtype: str, element: tuple[int, int]) -> float:
    low, high = -17.0, 1.0  # log10 δ: undetected at 1e-17, detected at 10
    assert detected(dtype, element, 10.0**high) and not detected(dtype, element, 10.0**low)
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (low, middle) if detected(dtype, element, 10.0**middle) else (middle, high)
    return 10.0**high


def main() -> None:
    results = {}
    for dtype in ("float64", "float32"):
        grad = np.abs(reference_gradient(dtype))
        largest = tuple(int(i) for i in np.unravel_index(np.argmax(grad), grad.shape))
        nonzero = np.flatnonzero(grad)  # a dead ReLU unit's exact zero cannot be scaled into view
        order = nonzero[np.argsort(grad.flat[nonzero])]
        median = tuple(int(i) for i in np.unravel_index(order[len(order) // 2], grad.shape))
        results[dtype] = {
            "largest_element": smallest_detected(dtype, largest),
            "median_element": smallest_detected(dtype, median),
            "median_over_largest_magnitude": float(grad[median] / grad[largest]),
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
