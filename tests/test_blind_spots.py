"""What parity of values alone cannot see: a tensor of the wrong dtype, dropout masks drawn with the
wrong keep probability, torch's twin built from the manual side's own code."""

import json
from dataclasses import dataclass, replace

import numpy as np
import torch

from compare.bench import sweep
from compare.cli.main import main
from conftest import lockstep_run
from manual import MLPSpec
from manual import schedules as manual_schedules
from manual.layers import Dropout
from manual.optim import REGISTRY
from manual.optim.adam import Adam
from manual.optim.adamw import AdamW
from torch_ref.optim import build_optimizer

SPEC = MLPSpec((3, 7, 5, 4), "tanh", "mse")


class AdamFloat64State(Adam):
    """Adam whose first moment is kept in float64 whatever the parameters' dtype: values within
    float32's tolerance, dtype not."""

    def step(self, params, grads, state) -> None:
        super().step(params, grads, state)
        for entries in state.values():
            entries["exp_avg"] = entries["exp_avg"].astype(np.float64)


def test_a_tensor_of_another_dtype_fails_as_dtype():
    result = lockstep_run(
        SPEC, "adam", Adam(lr=0.01).hyperparameters(), "float32", manual_optimizer=AdamFloat64State(lr=0.01)
    )
    failure = result.first_failure
    assert (failure.step, failure.stage, failure.tensor) == (1, "state", "0.weight.exp_avg")
    assert failure.diff.problem == "dtype:float64!=float32"


def test_every_dtype_agrees_in_a_correct_float32_run():
    spec = MLPSpec((3, 7, 5, 4), "relu", "cross_entropy", 0.3, True)
    for optimizer in ("adam", "rmsprop", "adagrad", "momentum"):  # torch_ref implies momentum 0.9 itself
        assert lockstep_run(spec, optimizer, {"lr": 0.01}, "float32", steps=4).first_failure is None, optimizer


class DropoutSwapped(Dropout):
    """Keeps with probability p instead of 1 − p, and scales by 1/(1 − p) as usual: torch, fed this
    mask, computes the same values."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        self.mask = self.rng.random(x.shape) < self.p
        self._noise = (self.mask / (1.0 - self.p)).astype(x.dtype)
        return x * self._noise


def swap_dropout(lockstep):
    layers = lockstep.manual.model.layers
    for index, layer in enumerate(layers):
        if isinstance(layer, Dropout):
            layers[index] = DropoutSwapped(layer.p, layer.rng)


def test_dropout_masks_drawn_with_keep_and_drop_swapped_fail_by_their_keep_fraction():
    """p = 0.3: 1 − p = 0.7 expected, about 0.3 kept. With 8 × 7 = 56 elements a step in the first
    dropout layer, Hoeffding's bound 2·exp(−2n·0.4²) falls below 1e-9 once n > 67: step 2."""
    spec = MLPSpec((3, 7, 5, 4), "relu", "mse", 0.3)
    failure = lockstep_run(spec, "sgd", {"lr": 0.1}, patch=swap_dropout).first_failure
    assert failure.tensor.endswith(".mask") and failure.step == 2
    assert failure.diff.problem.startswith("dropout-keep:")


def test_correct_dropout_masks_pass_over_a_long_run():
    spec = MLPSpec((3, 9, 9, 4), "relu", "mse", 0.5)
    assert lockstep_run(spec, "sgd", {"lr": 0.01}, steps=300).first_failure is None


# ---------------------------------------------------------------------------------------------
# torch's optimizer and schedule come from the configuration, never from the manual side's code.


@dataclass
class AdamWrongEps(Adam):
    eps: float = 1e-7  # torch's default is 1e-8


def test_a_wrong_default_in_the_manual_rule_does_not_reach_torch(tmp_path, monkeypatch):
    """The manual rule's defaults resolve the configuration; torch takes torch's own defaults."""
    monkeypatch.setitem(REGISTRY, "adam", replace(REGISTRY["adam"], rule=AdamWrongEps))
    out = tmp_path / "r.json"
    argv = ["run", "--optimizer", "adam", "--steps", "5", "--logdir", str(tmp_path), "--no-tensorboard"]
    assert main([*argv, "--json", str(out)]) == 1
    assert json.loads(out.read_text())["first_failure"]["stage"] in ("state", "param")


def test_a_wrong_warmup_in_the_manual_translation_does_not_reach_torch(tmp_path, monkeypatch):
    """The manual schedule's start factor 1/W instead of 1/(W + 1): the lr of step 1 differs."""
    original = manual_schedules.torch_specs

    def wrong(parsed):
        specs, milestones = original(parsed)
        return [(name, {**kwargs, "start_factor": 1.0 / parsed[0][1][0]}) for name, kwargs in specs], milestones

    monkeypatch.setattr(manual_schedules, "torch_specs", wrong)
    out = tmp_path / "r.json"
    argv = ["run", "--lr-schedule", "warmup:5", "--steps", "3", "--logdir", str(tmp_path), "--no-tensorboard"]
    assert main([*argv, "--json", str(out)]) == 1
    failure = json.loads(out.read_text())["first_failure"]
    assert (failure["step"], failure["stage"], failure["tensor"]) == (1, "state", "lr")


def test_torch_ref_builds_every_registered_optimizer_from_the_registry_alone():
    """The twin's class and implied keywords are the registry's data, never the rule's own defaults."""
    model = torch.nn.Linear(2, 2)
    for name, entry in REGISTRY.items():
        optimizer = build_optimizer(name, model, {})
        assert type(optimizer).__name__ == entry.torch_class
        assert all(optimizer.param_groups[0][key] == value for key, value in entry.torch_kwargs)


def test_cancellation_in_earlier_layers_is_carried_forward_into_the_floors():
    """float32, 7-6-7-3-6 ReLU, MSE, Adam lr 0.05, seed 7: without adjudication it failed at step 7 on
    grad 6.weight (max_rel 5.3e-4), the input of layer 6 being small only because its terms cancelled.
    With the input floors carried forward it passes as a free-running trajectory."""
    spec = MLPSpec((7, 6, 7, 3, 6), "relu", "mse")
    hyper = Adam(lr=0.05).hyperparameters()
    assert lockstep_run(spec, "adam", hyper, "float32", steps=30, seed=7, adjudicate=False).first_failure is None


def test_a_clipped_gradient_keeps_its_gradients_floor():
    """A draw of the false-alarm sweep (seed 4, #351) that failed from identical values at step 181 on
    ``grad 4.weight.clipped`` (max_rel 1.8e-3 in float32): the clipped gradient was held to its own
    scale while the gradient it scales had cancelled; its floor is now the gradient's times c."""
    draw = sweep.Draw(
        widths=(3, 2, 4, 8),
        activation="relu",
        loss="cross_entropy",
        optimizer="adamw",
        hyperparameters=AdamW(lr=0.04799464229283036, weight_decay=0.07157609721247822).hyperparameters(),
        dtype="float32",
        dropout=0.3,
        batchnorm=True,
        schedule="step:20:0.5",
        clip=1.0,
        steps=193,
        seed=644769488,
    )
    assert sweep.run(draw, strict=True) == ("pass", "")
