"""check_optimizer: textbook, optax-style and package optimizers on the spirals' gradient stream; the state
a textbook optimizer creates on its first update compared from it (a bare step count noted); schedules;
every catalog optimizer mistake and textbook variant fails where it acts and is named."""

import numpy as np
import pytest
import torch
from check_styles import SGD, Adam, Momentum, OptaxSGD

import compare
from compare.errors import InputError
from compare.faults.catalog import CATALOG_LIST
from manual.optim import REGISTRY, VARIANTS


def test_textbook_sgd_under_a_step_schedule_passes_and_the_lr_is_compared():
    report = compare.check_optimizer(SGD(lr=0.1), torch.optim.SGD, {"lr": 0.1}, lr_schedule="step:10:0.1", steps=25)
    assert report.passed, report
    lrs = [c for c in report.checks if c.tensor == "lr"]
    assert len(lrs) == 25 and all(c.passed for c in lrs)


def test_state_created_by_the_first_update_is_compared_from_it_and_a_scalar_count_is_noted():
    # m and v are None until the first update, then dicts keyed by parameter (torch's exp_avg, exp_avg_sq);
    # the step count is a bare integer attribute (iter), which no name maps: noted, never a failure.
    report = compare.check_optimizer(Adam(lr=0.01), torch.optim.Adam, {"lr": 0.01}, steps=3)
    assert report.passed, report
    compared = {(c.step, c.tensor) for c in report.checks if c.stage == "state" and c.tensor != "lr"}
    assert {(1, "0.weight.exp_avg"), (1, "0.weight.exp_avg_sq"), (3, "4.bias.exp_avg_sq")} <= compared, report
    assert any("step not compared" in note for note in report.notes)


def test_state_the_user_maps_is_compared():
    state_map = {"exp_avg": "m", "exp_avg_sq": "v"}
    report = compare.check_optimizer(Adam(lr=0.01), torch.optim.Adam, {"lr": 0.01}, state_map=state_map)
    assert report.passed, report
    compared = {c.tensor for c in report.checks if c.stage == "state"}
    assert {"0.weight.exp_avg", "4.bias.exp_avg_sq"} <= compared
    assert any("step not compared" in note for note in report.notes)


def test_an_optax_style_optimizer_passes_with_its_state_mapped_by_a_function():
    def trace(state, name):
        return state["trace"][name]

    hyperparameters = {"lr": 0.05, "momentum": 0.9}
    report = compare.check_optimizer(
        OptaxSGD(0.05, 0.9), torch.optim.SGD, hyperparameters, state_map={"momentum_buffer": trace}
    )
    assert report.passed, report
    assert any(c.tensor.endswith("momentum_buffer") for c in report.checks)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_package_optimizer_passes_with_all_its_state(name):
    entry = REGISTRY[name]
    hyperparameters = {"lr": entry.default_lr, **({"momentum": 0.9} if name in ("momentum", "nesterov") else {})}
    torch_class = getattr(torch.optim, entry.torch_class)
    if name == "nesterov":
        hyperparameters["nesterov"] = True
    report = compare.check_optimizer(entry.rule(**hyperparameters), torch_class, hyperparameters, steps=10)
    assert report.passed, report
    assert not report.notes  # every state key compared


# Hyperparameters (and schedule) under which each catalog optimizer mistake can act (its catalog ``args``).
SETTINGS = {
    "momentum-zero-init-dampened": (torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.5}, None),
    "momentum-lr-in-buffer": (torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}, "step:5:0.1"),
    "l2-on-weights-only": (torch.optim.SGD, {"lr": 0.1, "weight_decay": 0.01}, None),
    "adam-eps-inside-root": (torch.optim.Adam, {"lr": 0.01}, None),
    "adam-no-bias-correction": (torch.optim.Adam, {"lr": 0.01}, None),
    "adam-global-step-counter": (torch.optim.Adam, {"lr": 0.01}, None),
    "adam-beta-on-new-gradient": (torch.optim.Adam, {"lr": 0.01}, None),
    "adamw-decay-not-scaled-by-lr": (torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.01}, None),
    "adamw-coupled-l2": (torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.01}, None),
    "adagrad-lr-decay-off-by-one": (torch.optim.Adagrad, {"lr": 0.05, "lr_decay": 0.1}, None),
    "adamax-no-bias-correction": (torch.optim.Adamax, {"lr": 0.01}, None),
    "nadam-mu-for-mu-next": (torch.optim.NAdam, {"lr": 0.01}, None),
    "radam-uncorrected-first-moment": (torch.optim.RAdam, {"lr": 0.01}, None),
    "adadelta-eps-outside-roots": (torch.optim.Adadelta, {"lr": 1.0}, None),
    "asgd-shrink-not-scaled-by-eta": (torch.optim.ASGD, {"lr": 0.1}, None),
    "rprop-etas-swapped": (torch.optim.Rprop, {"lr": 0.01}, None),
}
OPTIMIZER_FAULTS = [fault for fault in CATALOG_LIST if fault.override.optimizer is not None]


def test_the_table_covers_every_catalog_optimizer_mistake():
    assert sorted(SETTINGS) == sorted(fault.name for fault in OPTIMIZER_FAULTS)


@pytest.mark.parametrize("fault", OPTIMIZER_FAULTS, ids=lambda fault: fault.name)
def test_each_catalog_optimizer_mistake_fails_where_the_catalog_says_and_is_named(fault):
    torch_class, hyperparameters, schedule = SETTINGS[fault.name]
    user = fault.override.optimizer(**hyperparameters)
    report = compare.check_optimizer(user, torch_class, hyperparameters, lr_schedule=schedule, steps=fault.steps)
    failure = report.first_failure
    assert (failure.step, failure.stage, failure.tensor) == fault.expected, report
    assert fault.name in report.diagnosis.names, report


def test_the_papers_eps_hat_adam_is_named():
    report = compare.check_optimizer(Adam(lr=0.01, eps_hat=True), torch.optim.Adam, {"lr": 0.01})
    assert (report.first_failure.step, report.first_failure.stage) == (1, "param"), report
    assert report.diagnosis.name == "adam_eps_hat"
    assert "ε is added" in str(report) or "uncorrected √v" in str(report)


def test_classic_momentum_passes_at_a_constant_lr_and_is_named_once_a_schedule_changes_it():
    hyperparameters = {"lr": 0.05, "momentum": 0.9}
    assert compare.check_optimizer(Momentum(0.05), torch.optim.SGD, hyperparameters).passed
    report = compare.check_optimizer(Momentum(0.05), torch.optim.SGD, hyperparameters, lr_schedule="step:10:0.1")
    # its velocity (torch's buffer × −lr, created by the first update) and the parameters depart at step 11
    failing = {(c.step, c.stage) for c in report.checks if not c.passed}
    assert report.first_failure.step == 11 and {(11, "state"), (11, "param")} <= failing, report
    assert "classic_momentum" in report.diagnosis.names
    assert set(VARIANTS) >= {"classic_momentum", "adam_eps_hat"}


def test_a_wrong_learning_rate_is_named_by_no_known_mistake_but_measured():
    report = compare.check_optimizer(SGD(lr=0.2), torch.optim.SGD, {"lr": 0.1}, steps=3)
    assert (report.first_failure.step, report.first_failure.tensor) == (1, "lr")
    assert report.diagnosed and report.diagnosis.name == "measured:ratio", report  # no known mistake: measured
    assert "the update of 0.weight: ratio 2 to torch's on every element" in str(report)
    assert "your step is 2× torch's: a learning rate of another value" in str(report)


def test_user_gradients_replace_the_stream_and_a_bad_schedule_is_one_line():
    params = {"w": np.ones(3)}
    gradients = [{"w": np.full(3, 0.5)}, {"w": np.full(3, -1.0)}]
    report = compare.check_optimizer(SGD(lr=0.1), torch.optim.SGD, {"lr": 0.1}, params=params, gradients=gradients)
    assert report.passed and report.steps == 2
    with pytest.raises(InputError, match="lr_schedule"):
        compare.check_optimizer(SGD(lr=0.1), torch.optim.SGD, {"lr": 0.1}, lr_schedule="stepp:3")
