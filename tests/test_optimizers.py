"""Manual optimizers against torch.optim, step by step, on a fixed random sequence of gradients.

Both sides start from the same weights (copied, never shared) and receive the same gradients; after
every step each parameter and every state tensor is compared. The manual optimizer's
``hyperparameters()`` is the one kwargs dict that builds torch's twin.
"""

import copy
import inspect
import json
from dataclasses import dataclass, fields

import numpy as np
import pytest
import torch

import torch_ref
from compare.cli.main import main
from conftest import max_rel
from manual import MLPSpec, init_state_dict
from manual.optim import (
    ASGD,
    OPTIMIZERS,
    REGISTRY,
    SGD,
    SQUARED_STATE,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Momentum,
    NAdam,
    Nesterov,
    RAdam,
    RMSprop,
    Rprop,
)

SPEC = MLPSpec((4, 3, 2), "tanh")  # four parameters, non-square: 0.weight (3, 4), 0.bias (3,), 2.weight, 2.bias
STEPS = 25  # ≥ 20: momentum buffers, bias corrections and amsgrad's running max all need many steps to show

# The manual rules are torch's single-tensor formulas, op for op, in float64; the sides differ only where
# torch fuses an operation (lerp, addcdiv), by an ulp or two per step (measured: ≤ 5e-16 relative over
# STEPS steps). 1e-12 keeps 1000x headroom, while a convention difference (dampening on step 1, ε inside
# the root, a missing bias correction, the paper's ε-hat form) shows at 1e-9 or far more.
MAX_REL = 1e-12

TORCH_NAME = {cls: name for name, cls in OPTIMIZERS.items()}  # SGD → "sgd", Momentum → "momentum", Adam → "adam", …
Optimizer = SGD | Adam | RMSprop | Adagrad  # Momentum, Nesterov, AdamW are subclasses


@dataclass(frozen=True)
class Case:
    name: str
    optimizer: Optimizer


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
    Case("nesterov_class", Nesterov(lr=0.05)),
    Case("nesterov_class_weight_decay", Nesterov(lr=0.05, momentum=0.7, weight_decay=0.05)),
    Case("adamw", AdamW(lr=0.02)),  # default weight_decay 1e-2
    Case("adamw_strong_decay", AdamW(lr=0.05, weight_decay=0.5)),  # γλ = 0.025: the decay shows within steps
    Case("adamw_no_decay", AdamW(lr=0.02, weight_decay=0.0)),
    Case("adamw_amsgrad", AdamW(lr=0.02, weight_decay=0.1, amsgrad=True)),
    Case("adamw_unusual_betas_eps", AdamW(lr=0.05, betas=(0.5, 0.6), eps=1e-2, weight_decay=0.2, amsgrad=True)),
    Case("rmsprop", RMSprop()),
    Case("rmsprop_weight_decay", RMSprop(lr=0.02, weight_decay=0.1)),
    Case("rmsprop_momentum", RMSprop(lr=0.01, momentum=0.9)),
    Case("rmsprop_centered", RMSprop(lr=0.01, centered=True)),
    Case("rmsprop_centered_momentum_decay", RMSprop(lr=0.01, momentum=0.5, centered=True, weight_decay=0.05)),
    Case("rmsprop_low_alpha_large_eps", RMSprop(lr=0.05, alpha=0.4, eps=1e-2, centered=True)),  # lerp weight ≥ 0.5
    Case("adagrad", Adagrad()),
    Case("adagrad_lr_decay", Adagrad(lr=0.1, lr_decay=0.3)),
    Case("adagrad_weight_decay", Adagrad(lr=0.1, weight_decay=0.1)),
    Case("adagrad_initial_accumulator", Adagrad(lr=0.1, initial_accumulator_value=0.5)),
    Case(
        "adagrad_everything", Adagrad(lr=0.2, lr_decay=0.05, weight_decay=0.02, initial_accumulator_value=0.1, eps=1e-3)
    ),
]
# Every registered rule twice more, derived from the registry: at its defaults, and with every branch on.
CASES += [Case(name, entry.rule(lr=entry.default_lr)) for name, entry in REGISTRY.items() if entry.rule.every_branch]
CASES += [
    Case(f"{name}_every_branch", entry.rule(lr=entry.default_lr, **entry.rule.every_branch))
    for name, entry in REGISTRY.items()
]
UNIQUE: dict[str, Case] = {}
for case in CASES:
    UNIQUE.setdefault(case.name, case)  # a hand-written case wins over a derived one of the same name
CASES = list(UNIQUE.values())
CASE_IDS = [case.name for case in CASES]


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


# The SGD-based names whose defaults differ from torch.optim.SGD's, and what those defaults must be.
SGD_PRESETS = [
    pytest.param("momentum", {"momentum": 0.9, "nesterov": False}, id="momentum"),
    pytest.param("nesterov", {"momentum": 0.9, "nesterov": True, "dampening": 0.0}, id="nesterov"),
]


@pytest.mark.parametrize(("name", "expected"), SGD_PRESETS)
def test_sgd_presets_default_as_named(name: str, expected: dict) -> None:
    manual = OPTIMIZERS[name]()
    assert {key: getattr(manual, key) for key in expected} == expected
    _, reference = torch_twin(name, manual.hyperparameters())
    assert type(reference) is torch.optim.SGD
    assert {key: reference.param_groups[0][key] for key in expected} == expected


def test_registries_name_the_same_optimizers() -> None:
    # one registry: each entry's rule, torch class (one that exists) and squared state, nothing elsewhere
    assert OPTIMIZERS == {name: entry.rule for name, entry in REGISTRY.items()}
    assert all(
        issubclass(getattr(torch.optim, entry.torch_class), torch.optim.Optimizer) for entry in REGISTRY.values()
    )
    assert all(set(entry.squared_state) <= set(SQUARED_STATE) for entry in REGISTRY.values())
    # regular optimizers carry no `comparable_state`: a checker compares all of their state with torch's
    assert [name for name, cls in OPTIMIZERS.items() if hasattr(cls, "comparable_state")] == []


def test_adagrad_state_exists_before_the_first_step_as_in_torch() -> None:
    """torch.optim.Adagrad builds step 0 and sum = s₀ in its constructor; the manual init matches that state."""
    manual = Adagrad(initial_accumulator_value=0.25)
    model, reference = torch_twin("adagrad", manual.hyperparameters())
    state, ref_state = manual.init(initial_weights()), torch_ref.named_state(reference, model)
    assert state.keys() == ref_state.keys()
    for name, entries in ref_state.items():
        assert entries.keys() == state[name].keys() == {"step", "sum"}, name
        assert state[name]["step"] == entries["step"] == 0, name
        assert np.array_equal(state[name]["sum"], entries["sum"]), name
        assert np.all(entries["sum"] == 0.25), name


# The rules registered under torch's own class (momentum and nesterov are SGD with other defaults, above).
DEFAULTS_CASES = [
    (entry.rule, getattr(torch.optim, entry.torch_class))
    for entry in REGISTRY.values()
    if entry.rule.__name__ == entry.torch_class
]


@pytest.mark.parametrize(("manual_cls", "torch_cls"), DEFAULTS_CASES, ids=[cls.__name__ for cls, _ in DEFAULTS_CASES])
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
    pytest.param(Adamax, {"betas": (0.9, 1.0)}, True, id="adamax-beta2-one"),
    pytest.param(Adamax, {"eps": -1.0}, True, id="adamax-negative-eps"),
    pytest.param(NAdam, {"momentum_decay": -1e-3}, True, id="nadam-negative-momentum-decay"),
    pytest.param(NAdam, {"weight_decay": -0.1, "decoupled_weight_decay": True}, True, id="nadam-negative-decay"),
    pytest.param(RAdam, {"betas": (1.0, 0.999)}, True, id="radam-beta1-one"),
    pytest.param(Adadelta, {"rho": 1.5}, True, id="adadelta-rho-above-one"),
    pytest.param(Adadelta, {"rho": 1.0}, False, id="adadelta-rho-one"),
    pytest.param(ASGD, {"lr": -0.1}, True, id="asgd-negative-lr"),
    pytest.param(ASGD, {"lambd": -0.1, "alpha": -1.0}, False, id="asgd-negative-lambd-alpha"),
    pytest.param(Rprop, {"etas": (1.2, 0.5)}, True, id="rprop-etas-swapped"),
    pytest.param(Rprop, {"etas": (0.5, 1.0)}, True, id="rprop-etaplus-one"),
    pytest.param(Rprop, {"step_sizes": (1.0, 1e-6)}, False, id="rprop-step-sizes-reversed"),
    pytest.param(Adam, {"eps": NAN}, True, id="adam-nan-eps"),
    pytest.param(Adam, {"weight_decay": NAN}, True, id="adam-nan-weight-decay"),
    pytest.param(Nesterov, {"dampening": 0.1}, True, id="nesterov-with-dampening"),
    pytest.param(Nesterov, {"momentum": 0.0}, True, id="nesterov-zero-momentum"),
    pytest.param(AdamW, {"lr": -1e-3}, True, id="adamw-negative-lr"),
    pytest.param(AdamW, {"weight_decay": -1e-2}, True, id="adamw-negative-weight-decay"),
    pytest.param(AdamW, {"weight_decay": NAN}, True, id="adamw-nan-weight-decay"),
    pytest.param(AdamW, {"betas": (0.9, 1.0)}, True, id="adamw-beta2-one"),
    pytest.param(AdamW, {"eps": -1e-8}, True, id="adamw-negative-eps"),
    pytest.param(RMSprop, {"lr": -1e-2}, True, id="rmsprop-negative-lr"),
    pytest.param(RMSprop, {"alpha": -0.1}, True, id="rmsprop-negative-alpha"),
    pytest.param(RMSprop, {"alpha": NAN}, True, id="rmsprop-nan-alpha"),
    pytest.param(RMSprop, {"eps": -1e-8}, True, id="rmsprop-negative-eps"),
    pytest.param(RMSprop, {"momentum": -0.9}, True, id="rmsprop-negative-momentum"),
    pytest.param(RMSprop, {"weight_decay": -0.1}, True, id="rmsprop-negative-weight-decay"),
    pytest.param(Adagrad, {"lr": -1e-2}, True, id="adagrad-negative-lr"),
    pytest.param(Adagrad, {"lr_decay": -0.1}, True, id="adagrad-negative-lr-decay"),
    pytest.param(Adagrad, {"lr_decay": NAN}, True, id="adagrad-nan-lr-decay"),
    pytest.param(Adagrad, {"weight_decay": -0.1}, True, id="adagrad-negative-weight-decay"),
    pytest.param(Adagrad, {"initial_accumulator_value": -0.1}, True, id="adagrad-negative-initial-accumulator"),
    pytest.param(Adagrad, {"eps": -1e-10}, True, id="adagrad-negative-eps"),
    pytest.param(SGD, {"lr": 0.0}, False, id="sgd-zero-lr"),
    pytest.param(SGD, {"lr": NAN}, False, id="sgd-nan-lr"),  # torch.optim.SGD checks `lr < 0.0` too
    pytest.param(SGD, {"momentum": 0.9, "dampening": 1.5}, False, id="sgd-dampening-above-one"),
    pytest.param(Momentum, {"nesterov": True}, False, id="momentum-nesterov"),
    pytest.param(Adam, {"lr": 0.0, "betas": (0.0, 0.0), "eps": 0.0}, False, id="adam-boundaries"),
    pytest.param(AdamW, {"weight_decay": 0.0, "amsgrad": True}, False, id="adamw-no-decay"),
    pytest.param(RMSprop, {"alpha": 1.5}, False, id="rmsprop-alpha-above-one"),  # torch checks only alpha ≥ 0
    pytest.param(RMSprop, {"momentum": 0.9, "centered": True, "eps": 0.0}, False, id="rmsprop-boundaries"),
    pytest.param(Adagrad, {"lr": 0.0, "lr_decay": 0.0, "eps": 0.0}, False, id="adagrad-boundaries"),
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


# ---- the command line, every registered rule in both dtypes --------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(REGISTRY))
def test_run_passes_for_every_registered_rule(name: str, dtype: str, tmp_path) -> None:
    """`backprop-parity run --optimizer NAME --dtype D` with every branch of the rule on: exit 0. Short (6 steps,
    a 2-5-3 network, batch 8: well under a second each); the long runs are tests/test_parity.py's."""
    flags = []
    for key, value in REGISTRY[name].rule.every_branch.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        else:
            flags += [flag, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    argv = ["run", "--optimizer", name, "--dtype", dtype, *flags, "--layers", "2,5,3", "--batch-size", "8"]
    assert main([*argv, "--steps", "6", "--logdir", str(tmp_path), "--no-tensorboard"]) == 0


def test_the_report_records_both_sides_lr(tmp_path) -> None:
    """A manual schedule stepped one step early (a catalog fault): the report's ``lr_manual`` shows the
    manual side's own lr, one halving ahead of torch's ``lr`` from step 3 (StepLR(3, 0.5))."""
    out = tmp_path / "r.json"
    argv = ["run", "--inject", "schedule-stepped-before-update", "--lr-schedule", "step:3:0.5", "--steps", "4"]
    assert main([*argv, "--keep-going", "--logdir", str(tmp_path), "--no-tensorboard", "--json", str(out)]) == 1
    report = json.loads(out.read_text())
    assert report["lr_manual"][:2] == report["lr"][:2] == [0.01, 0.01]
    assert report["lr_manual"][2] == 0.005 != report["lr"][2]


def test_a_copy_of_adam_holds_no_scratch_arrays_and_steps_as_the_original() -> None:
    """The scratch arrays are work space, not state: a copy (the engine's rewind copy before every step) has
    none, and its next step is bit for bit the original's."""
    rng = np.random.default_rng(0)
    original = Adam(lr=0.1)
    params, grads = {"w": rng.standard_normal((4, 3))}, {"w": rng.standard_normal((4, 3))}
    state = original.init(params)
    original.step(params, grads, state)
    twin, twin_params, twin_state = copy.deepcopy((original, params, state))
    assert original._scratch and twin._scratch == {}
    original.step(params, grads, state)
    twin.step(twin_params, grads, twin_state)
    assert np.array_equal(params["w"], twin_params["w"])
