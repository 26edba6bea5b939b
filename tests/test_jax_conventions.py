"""The framework-conventions table (``jax_ref.conventions``, docs/frameworks.md), proven both ways: optax's own
optimizer with optax's defaults departs from torch's where the table says it does, and with the keywords the
table names it computes torch's rule. Both libraries step one parameter on the same gradient field,
g(θ) = sin(3θ) + 0.1·θ, in float64."""

import numpy as np
import pytest

pytest.importorskip("jax")
optax = pytest.importorskip("optax")

import jax.numpy as jnp  # noqa: E402
import torch  # noqa: E402

import jax_ref  # noqa: E402, F401 (float64: jax_enable_x64)
from jax_ref.conventions import CONVENTIONS, EQUAL  # noqa: E402

FLOAT64_SAME = 1e-12  # the same rule in float64: a few ulps per step over 30 steps, far below a convention's 1e-8+
STEPS = 30
LR = 0.01


def gradient(theta: np.ndarray) -> np.ndarray:
    return np.sin(3 * theta) + 0.1 * theta


def torch_run(cls: type, **kwargs) -> np.ndarray:
    theta = torch.tensor(np.linspace(-1.0, 1.5, 12).reshape(3, 4), dtype=torch.float64, requires_grad=True)
    optimizer = cls([theta], lr=LR, foreach=False, **kwargs)
    for _ in range(STEPS):
        theta.grad = torch.from_numpy(gradient(theta.detach().numpy()))
        optimizer.step()
    return theta.detach().numpy()


def optax_run(tx) -> np.ndarray:
    theta = jnp.array(np.linspace(-1.0, 1.5, 12).reshape(3, 4), jnp.float64)
    state = tx.init(theta)
    for _ in range(STEPS):
        updates, state = tx.update(jnp.asarray(gradient(np.asarray(theta))), state, theta)
        theta = optax.apply_updates(theta, updates)
    return np.asarray(theta)


def departure(torch_theta: np.ndarray, optax_theta: np.ndarray) -> float:
    return float(np.max(np.abs(torch_theta - optax_theta)) / np.max(np.abs(torch_theta)))


# (rule, torch's optimizer and keywords, optax with its defaults, optax with the table's keywords, torch's keywords
# the table names, if any)
TABLE = [
    ("sgd", (torch.optim.SGD, {}), optax.sgd(LR), None),
    ("momentum", (torch.optim.SGD, {"momentum": 0.9}), optax.sgd(LR, momentum=0.9), None),
    ("nesterov", (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}), optax.sgd(LR, 0.9, nesterov=True), None),
    ("adam", (torch.optim.Adam, {}), optax.adam(LR), None),
    ("adamax", (torch.optim.Adamax, {}), optax.adamax(LR), None),
    ("adadelta", (torch.optim.Adadelta, {}), optax.adadelta(LR), None),
    ("adamw", (torch.optim.AdamW, {}), optax.adamw(LR), (optax.adamw(LR, weight_decay=1e-2), {})),
    (
        "rmsprop",
        (torch.optim.RMSprop, {}),
        optax.rmsprop(LR),
        (optax.rmsprop(LR, decay=0.99, eps_in_sqrt=False), {}),
    ),
    (
        "adagrad",
        (torch.optim.Adagrad, {}),
        optax.adagrad(LR),
        (optax.adagrad(LR, eps=0.0), {"initial_accumulator_value": 0.1, "eps": 0.0}),
    ),
    ("radam", (torch.optim.RAdam, {}), optax.radam(LR), (optax.radam(LR, eps=0.0), {"eps": 0.0})),
    ("nadam", (torch.optim.NAdam, {}), optax.nadam(LR), None),
    ("rprop", (torch.optim.Rprop, {}), optax.rprop(LR), None),
]


@pytest.mark.parametrize(("rule", "reference", "defaults", "equalised"), TABLE, ids=[row[0] for row in TABLE])
def test_each_convention_departs_by_default_and_the_named_keywords_remove_it(rule, reference, defaults, equalised):
    cls, kwargs = reference
    by_default = departure(torch_run(cls, **kwargs), optax_run(defaults))
    if CONVENTIONS[rule].startswith(EQUAL):
        assert by_default < FLOAT64_SAME, f"{rule}: the table says equal, measured {by_default:.2e}"
        return
    assert by_default > 1e3 * FLOAT64_SAME, f"{rule}: the table names a convention, measured {by_default:.2e}"
    if equalised is None:
        assert "no keyword" in CONVENTIONS[rule]
        return
    tx, torch_kwargs = equalised
    assert departure(torch_run(cls, **kwargs, **torch_kwargs), optax_run(tx)) < FLOAT64_SAME


def test_every_rule_is_in_the_table():
    from manual.optim import REGISTRY

    assert set(CONVENTIONS) == set(REGISTRY)
    assert {row[0] for row in TABLE} | {"asgd"} == set(REGISTRY)
    assert not hasattr(optax, "asgd")
