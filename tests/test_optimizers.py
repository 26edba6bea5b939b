"""Manual optimizers against torch.optim, step by step, on a fixed random sequence of gradients.

Both sides start from the same weights (copied, never shared) and receive the same gradients; after
every step each parameter and every state tensor is compared. The manual optimizer's
``hyperparameters()`` is the one kwargs dict that builds torch's twin.
"""

import inspect
from dataclasses import dataclass, fields

import numpy as np
import pytest
import torch

import torch_ref
from manual import MLPSpec, init_state_dict
from manual.optim import OPTIMIZERS, SGD, Adam, Momentum

SPEC = MLPSpec((4, 3, 2), "tanh")  # four parameters, non-square: 0.weight (3, 4), 0.bias (3,), 2.weight, 2.bias
STEPS = 25  # ≥ 20: momentum buffers, bias corrections and amsgrad's running max all need many steps to show

# The manual rules are torch's single-tensor formulas, op for op, in float64; the sides differ only where
# torch fuses an operation (lerp, addcdiv), by an ulp or two per step (measured: ≤ 5e-16 relative over
# STEPS steps). 1e-12 keeps 1000x headroom, while a convention difference (dampening on step 1, ε inside
# the root, a missing bias correction, the paper's ε-hat form) shows at 1e-9 or far more.
MAX_REL = 1e-12

TORCH_NAME = {cls: name for name, cls in OPTIMIZERS.items()}  # SGD → "sgd", Momentum → "momentum", Adam → "adam"


@dataclass(frozen=True)
class Case:
    name: str
    optimizer: SGD | Adam


CASES = [
    Case("sgd", SGD(lr=0.1)),
    Case("sgd_weight_decay", SGD(lr=0.1, weight_decay=0.05)),
    Case("momentum", Momentum(lr=0.05)),
    Case("momentum_dampening", Momentum(lr=0.05, momentum=0.8, dampening=0.5, weight_decay=0.01)),
    Case("nesterov", Momentum(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    Case("adam", Adam()),
    Case("adam_weight_decay", Adam(lr=0.02, weight_decay=0.1)),
    Case("adam_amsgrad", Adam(lr=0.02, amsgrad=True)),
    Case("adam_unusual_betas_eps", Adam(lr=0.05, betas=(0.5, 0.6), eps=1e-2, amsgrad=True)),
]
CASE_IDS = [case.name for case in CASES]


def max_rel(actual: np.ndarray, reference: np.ndarray) -> float:
    """``max|actual − reference| / max|reference|``: error relative to the tensor's scale (0/0 is 0)."""
    actual, reference = np.asarray(actual), np.asarray(reference)
    assert actual.shape == reference.shape, f"shape {actual.shape} != reference {reference.shape}"
    assert np.all(np.isfinite(actual)) and np.all(np.isfinite(reference)), "non-finite value"
    delta = float(np.max(np.abs(actual - reference), initial=0.0))
    scale = float(np.max(np.abs(reference), initial=0.0))
    if scale == 0.0:
        return 0.0 if delta == 0.0 else np.inf  # an all-zero reference must be matched exactly
    return delta / scale


def initial_weights() -> dict[str, np.ndarray]:
    return init_state_dict(SPEC, np.random.default_rng(0))  # float64, non-zero biases


def gradient_sequence(steps: int = STEPS) -> list[dict[str, np.ndarray]]:
    """Random gradients whose scale jumps over four decades, so v shrinks at times (amsgrad's max
    matters) and some steps are small against ε (ε placement matters)."""
    rng = np.random.default_rng(1)
    shapes = SPEC.parameter_shapes()
    return [
        {name: rng.standard_normal(shape) * 10.0 ** rng.uniform(-3.0, 1.0) for name, shape in shapes.items()}
        for _ in range(steps)
    ]


def torch_twin(name: str, hyperparameters: dict) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = torch_ref.build_model(SPEC, dtype=torch.float64)
    torch_ref.load_weights(model, SPEC, initial_weights())
    return model, torch_ref.build_optimizer(name, model, hyperparameters)


def manual_run(optimizer: SGD | Adam, grads: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Parameters after every step of the manual optimizer."""
    params = initial_weights()
    state = optimizer.init(params)
    trajectory = []
    for g in grads:
        optimizer.step(params, g, state)
        trajectory.append({name: value.copy() for name, value in params.items()})
    return trajectory


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_optimizer_matches_torch_step_by_step(case: Case) -> None:
    manual = case.optimizer
    params = initial_weights()
    state = manual.init(params)
    model, reference = torch_twin(TORCH_NAME[type(manual)], manual.hyperparameters())
    tensors = [param.detach().numpy() for param in model.parameters()]
    assert not any(np.shares_memory(a, b) for a, b in zip(params.values(), tensors, strict=True))

    for step, grads in enumerate(gradient_sequence(), start=1):
        for name, param in model.named_parameters():
            param.grad = torch.tensor(grads[name])  # a copy
        grads_before = {name: g.copy() for name, g in grads.items()}
        manual.step(params, grads, state)
        reference.step()
        assert all(np.array_equal(grads[name], g) for name, g in grads_before.items()), "step mutated a gradient"

        ref_params = torch_ref.export_weights(model)
        ref_state = torch_ref.named_state(reference, model)
        assert params.keys() == ref_params.keys() == state.keys() == ref_state.keys()
        for name in params:
            assert max_rel(params[name], ref_params[name]) <= MAX_REL, f"step {step}: {name}"
            assert state[name].keys() == ref_state[name].keys(), f"step {step}: {name} state keys"
            for key, expected in ref_state[name].items():
                actual = state[name][key]
                where = f"step {step}: {name}.{key}"
                if key == "step":
                    assert type(actual) is int and actual == expected == step, where  # no rounding in a counter
                else:
                    assert max_rel(actual, expected) <= MAX_REL, where


def test_dampening_is_not_applied_on_the_first_step() -> None:
    """torch copies g into the buffer on step 1; dampening scales g only from step 2 on."""
    manual = Momentum(lr=0.1, momentum=0.9, dampening=0.5)
    g1, g2 = gradient_sequence(2)
    params = initial_weights()
    state = manual.init(params)
    manual.step(params, g1, state)
    for name, g in g1.items():
        assert np.array_equal(state[name]["momentum_buffer"], g), name
    manual.step(params, g2, state)
    for name in g1:
        expected = 0.9 * g1[name] + (1.0 - 0.5) * g2[name]
        assert max_rel(state[name]["momentum_buffer"], expected) <= MAX_REL, name


def test_momentum_defaults_to_0_9() -> None:
    assert Momentum().momentum == 0.9
    assert Momentum().hyperparameters()["momentum"] == 0.9
    _, reference = torch_twin("momentum", Momentum().hyperparameters())
    assert isinstance(reference, torch.optim.SGD)
    assert reference.param_groups[0]["momentum"] == 0.9


@pytest.mark.parametrize(("manual_cls", "torch_cls"), [(SGD, torch.optim.SGD), (Adam, torch.optim.Adam)])
def test_defaults_are_torchs(manual_cls: type, torch_cls: type) -> None:
    torch_defaults = inspect.signature(torch_cls).parameters
    for field in fields(manual_cls):
        assert field.default == torch_defaults[field.name].default, field.name


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_one_kwargs_dict_builds_torchs_optimizer(case: Case) -> None:
    hyperparameters = case.optimizer.hyperparameters()
    assert hyperparameters.keys() == {field.name for field in fields(case.optimizer)}
    _, reference = torch_twin(TORCH_NAME[type(case.optimizer)], hyperparameters)
    (group,) = reference.param_groups
    for key, value in hyperparameters.items():
        assert group[key] == value, key
    assert group["foreach"] is False  # the single-tensor path whose formulas the manual side follows


def test_momentum_zero_is_exactly_sgd() -> None:
    grads = gradient_sequence()
    hyperparameters = {"lr": 0.1, "weight_decay": 0.05}
    momentum, sgd = Momentum(momentum=0.0, **hyperparameters), SGD(**hyperparameters)
    assert momentum.hyperparameters() == sgd.hyperparameters()
    assert momentum.init(initial_weights()) == sgd.init(initial_weights())
    for step, (a, b) in enumerate(zip(manual_run(momentum, grads), manual_run(sgd, grads), strict=True), start=1):
        for name in a:
            assert np.array_equal(a[name], b[name]), f"step {step}: {name}"


NAN = float("nan")
# (manual class, kwargs, whether torch.optim raises ValueError). Rows that must NOT raise guard against
# a manual side stricter than torch.
VALIDATION_CASES = [
    pytest.param(SGD, {"lr": -0.1}, True, id="sgd-negative-lr"),
    pytest.param(SGD, {"momentum": -0.5}, True, id="sgd-negative-momentum"),
    pytest.param(SGD, {"weight_decay": -1e-4}, True, id="sgd-negative-weight-decay"),
    pytest.param(SGD, {"nesterov": True}, True, id="sgd-nesterov-without-momentum"),
    pytest.param(SGD, {"momentum": 0.9, "dampening": 0.1, "nesterov": True}, True, id="sgd-nesterov-with-dampening"),
    pytest.param(Momentum, {"dampening": 0.1, "nesterov": True}, True, id="momentum-nesterov-with-dampening"),
    pytest.param(Momentum, {"momentum": 0.0, "nesterov": True}, True, id="momentum-nesterov-zero-momentum"),
    pytest.param(Adam, {"lr": -1e-3}, True, id="adam-negative-lr"),
    pytest.param(Adam, {"eps": -1e-8}, True, id="adam-negative-eps"),
    pytest.param(Adam, {"betas": (1.0, 0.999)}, True, id="adam-beta1-one"),
    pytest.param(Adam, {"betas": (0.9, 1.0)}, True, id="adam-beta2-one"),
    pytest.param(Adam, {"betas": (0.9, 1.5)}, True, id="adam-beta2-above-one"),
    pytest.param(Adam, {"betas": (-0.1, 0.999)}, True, id="adam-negative-beta1"),
    pytest.param(Adam, {"betas": (NAN, 0.999)}, True, id="adam-nan-beta1"),
    pytest.param(Adam, {"weight_decay": -0.1}, True, id="adam-negative-weight-decay"),
    pytest.param(Adam, {"lr": NAN}, True, id="adam-nan-lr"),
    pytest.param(Adam, {"eps": NAN}, True, id="adam-nan-eps"),
    pytest.param(Adam, {"weight_decay": NAN}, True, id="adam-nan-weight-decay"),
    pytest.param(SGD, {"lr": 0.0}, False, id="sgd-zero-lr"),
    pytest.param(SGD, {"lr": NAN}, False, id="sgd-nan-lr"),  # torch.optim.SGD checks `lr < 0.0` too
    pytest.param(SGD, {"momentum": 0.9, "dampening": 1.5}, False, id="sgd-dampening-above-one"),
    pytest.param(Momentum, {"nesterov": True}, False, id="momentum-nesterov"),
    pytest.param(Adam, {"lr": 0.0, "betas": (0.0, 0.0), "eps": 0.0}, False, id="adam-boundaries"),
]


@pytest.mark.parametrize(("manual_cls", "kwargs", "torch_raises"), VALIDATION_CASES)
def test_invalid_hyperparameters_raise_where_torch_raises(manual_cls: type, kwargs: dict, torch_raises: bool) -> None:
    # torch gets the full dict the manual object would hand over: its defaults overridden by kwargs
    full = {field.name: field.default for field in fields(manual_cls)} | kwargs
    model = torch_ref.build_model(SPEC, dtype=torch.float64)
    if torch_raises:
        with pytest.raises(ValueError):
            torch_ref.build_optimizer(TORCH_NAME[manual_cls], model, full)
        with pytest.raises(ValueError):
            manual_cls(**kwargs)
    else:
        torch_ref.build_optimizer(TORCH_NAME[manual_cls], model, full)
        manual_cls(**kwargs)
