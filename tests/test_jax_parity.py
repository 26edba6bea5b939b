"""The JAX + optax side (``jax_ref``, ``compare.core.jax_side``) against the manual side and against torch:
every rule optax can compute in torch's meaning, every activation, loss and dtype, BatchNorm and dropout,
schedules and clipping; a catalog fault on the manual side caught with JAX as the reference; the rules
optax cannot compute refused, each naming what optax lacks. A few steps each (JAX compiles once per rule);
one long run per rule is slow-marked."""

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("optax")

from compare import faults
from compare.core import engine, mlp_pair
from compare.core.engine import Lockstep, Options
from compare.errors import InputError
from compare.inputs.config import roles
from conftest import make_batches
from manual import MLPSpec, init_state_dict
from manual.schedules import parse_schedule

SPEC = MLPSpec((3, 7, 5, 4), "tanh", "cross_entropy")  # tanh: no gradient element is exactly 0 (see EPS_ZERO)

# Each rule in torch's meaning, with keywords that take its branches where optax can express them (momentum's
# dampening, Adam's amsgrad and NAdam, ASGD, Rprop cannot be: REFUSED). Adagrad and RAdam need eps=0: optax puts
# ε elsewhere (jax_ref.optim), and with eps=0 torch divides 0 by 0 where a gradient element is exactly 0.
EPS_ZERO = {"eps": 0.0}
RULES = [
    ("sgd", {"lr": 0.1, "weight_decay": 0.01}),
    ("momentum", {"lr": 0.05, "weight_decay": 0.01}),
    ("nesterov", {"lr": 0.05, "momentum": 0.8, "weight_decay": 0.01}),
    ("adam", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.01}),
    ("adamw", {"lr": 0.01, "weight_decay": 0.1}),
    ("rmsprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.5, "centered": True, "weight_decay": 0.01}),
    ("rmsprop", {"lr": 0.01}),
    ("adagrad", {"lr": 0.05, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "weight_decay": 0.01, **EPS_ZERO}),
    ("adamax", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.01}),
    ("radam", {"lr": 0.01, "weight_decay": 0.01, "decoupled_weight_decay": True, **EPS_ZERO}),
    ("radam", {"lr": 0.01, "weight_decay": 0.01, **EPS_ZERO}),
    ("adadelta", {"lr": 1.0, "rho": 0.95, "weight_decay": 0.01}),
]
REFUSED = [
    ("momentum", {"dampening": 0.3}, "dampening"),
    ("adam", {"amsgrad": True}, "amsgrad"),
    ("adamw", {"amsgrad": True}, "amsgrad"),
    ("adagrad", {}, "inside the square root"),
    ("radam", {}, "after the bias correction"),
    ("nadam", {}, "momentum schedule"),
    ("asgd", {}, "no ASGD"),
    ("rprop", {}, "previous step's update"),
]


def lockstep(sides, spec, optimizer, hyperparameters, dtype="float64", schedule=None, override=faults.NONE, **options):
    """The two ``sides`` of a run, built as ``compare.pipeline.build`` builds them (torch is the reference
    wherever it runs), on weights seeded 0."""
    weights = init_state_dict(spec, np.random.default_rng(0), getattr(np, dtype))
    pair = mlp_pair.Pair(spec, weights, optimizer, hyperparameters, dtype, None, schedule, 0, "cpu", override)
    under_test, reference = roles(sides)
    build = mlp_pair.SIDE_BUILDERS
    return Lockstep(build[under_test](pair), build[reference](pair), Options(dtype=dtype, **options))


def run(sides, spec=SPEC, optimizer="adam", hyperparameters=None, dtype="float64", steps=4, **kwargs):
    step = lockstep(sides, spec, optimizer, hyperparameters or {"lr": 0.01}, dtype, **kwargs)
    return engine.run(step, make_batches(spec, dtype, 1), steps, True, lambda record: None)


@pytest.mark.parametrize("sides", [("manual", "jax"), ("torch", "jax")])
@pytest.mark.parametrize(("optimizer", "hyperparameters"), RULES)
def test_every_rule_optax_can_express_is_torchs(sides, optimizer, hyperparameters):
    result = run(sides, optimizer=optimizer, hyperparameters=hyperparameters, steps=7)  # RAdam rectifies at 6
    assert result.passed, result.first_failure


@pytest.mark.parametrize(("optimizer", "hyperparameters", "missing"), REFUSED)
def test_a_rule_optax_cannot_express_is_refused_naming_what_is_missing(optimizer, hyperparameters, missing):
    with pytest.raises(InputError, match=missing):
        lockstep(("manual", "jax"), SPEC, optimizer, {"lr": 0.01, **hyperparameters})


@pytest.mark.parametrize(
    ("activation", "loss"),
    [("relu", "cross_entropy"), ("leaky_relu", "mse"), ("sigmoid", "bce"), ("tanh", "mse"), ("relu", "bce")],
)
def test_every_activation_and_loss(activation, loss):
    spec = MLPSpec((3, 7, 5, 4), activation, loss)
    assert run(("manual", "jax"), spec, steps=3).passed


@pytest.mark.parametrize("sides", [("manual", "jax"), ("torch", "jax")])
@pytest.mark.parametrize("optimizer", ["momentum", "adam", "rmsprop"])
def test_float32_with_the_float64_witness(sides, optimizer):
    result = run(sides, optimizer=optimizer, dtype="float32", witness_every=1)
    assert result.passed, result.first_failure
    assert result.steps == 4


@pytest.mark.parametrize("sides", [("manual", "jax"), ("jax", "torch")])
def test_batchnorm_and_dropout_with_the_injected_mask(sides):
    spec = MLPSpec((3, 7, 5, 4), "relu", "cross_entropy", dropout=0.3, batchnorm=True)
    assert run(sides, spec, hyperparameters={"lr": 0.01}).passed


@pytest.mark.parametrize("schedule", ["step:2:0.5", "exp:0.9", "cosine:6", "warmup:2", "warmup:2,cosine:4"])
def test_schedules_from_optax_schedules_and_clipping(schedule):
    result = run(("manual", "jax"), optimizer="momentum", schedule=parse_schedule(schedule), clip_grad_norm=0.5)
    assert result.passed, result.first_failure


@pytest.mark.parametrize("fault", ["transposed-weight-grad", "adam-eps-inside-root", "batchnorm-biased-running-var"])
def test_a_catalog_fault_on_the_manual_side_is_caught_against_jax(fault):
    spec = MLPSpec((3, 7, 5, 4), "relu", "cross_entropy", batchnorm="batchnorm" in fault)
    result = run(("manual", "jax"), spec, optimizer="adam", override=faults.CATALOG[fault].override, steps=3)
    assert not result.passed
    assert result.first_failure is not None


def test_adjudication_resyncs_the_jax_side_from_torch():
    """Resync, adjudication's means, with JAX under test: after each step its ``load`` takes torch's values.
    No step departs here; the float32 sides left free part in 5 of 6 tensors by step 4, so the equal
    arrays are the load's doing."""
    step = lockstep(("jax", "torch"), SPEC, "adam", {"lr": 0.01}, "float32", resync=True)
    result = engine.run(step, make_batches(SPEC, "float32", 1), 4, True, lambda record: None)
    assert result.passed
    torch_values = step.reference.values()
    assert all(np.array_equal(value, torch_values[name]) for name, value in step.manual.values().items())


@pytest.mark.slow
@pytest.mark.parametrize(("optimizer", "hyperparameters"), RULES)
def test_a_long_run_per_rule(optimizer, hyperparameters):
    result = run(("torch", "jax"), optimizer=optimizer, hyperparameters=hyperparameters, steps=300)
    assert result.passed, result.first_failure
