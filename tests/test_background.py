"""Comparisons run on a second thread while the manual optimizer steps give exactly the checks that the
same comparisons give in the foreground, and run there only when nothing writes to the gradients."""

import numpy as np
import pytest

from compare.core import engine, mlp_pair
from compare.core.manual_side import RULES_THAT_LEAVE_GRADS
from compare.core.override import NONE, layer_as, loss_as, optimizer_as
from compare.faults import layers, losses, optimizers
from conftest import HOSTILE_WIDTHS, make_batches
from manual import MLPSpec, init_state_dict
from manual.layers import Linear
from manual.optim import OPTIMIZERS, Adam

SPEC = MLPSpec(HOSTILE_WIDTHS, "relu", "cross_entropy")
CASES = [  # (name, optimizer, patch): a clean run, and faults that fail in the forward-to-gradient stages
    ("clean", "adam", None),
    ("bias grad averaged", "adam", layer_as(Linear, layers.LinearBiasGradAveraged)),
    ("bias grad of the wrong shape", "sgd", layer_as(Linear, layers.LinearBiasGradNotSummed)),
    ("loss grad without the mean", "momentum", loss_as(losses.CrossEntropyGradWithoutMean)),
]


def records(optimizer: str, patch, background: bool, steps: int = 6) -> list[engine.StepRecord]:
    weights = init_state_dict(SPEC, np.random.default_rng(0), np.float64)
    # (a model this small is compared in the foreground by default)
    lockstep = mlp_pair.twins(
        SPEC, weights, optimizer, {"lr": 0.05}, "float64", override=patch or NONE, background=background
    )
    assert lockstep.background is background
    return engine.run(lockstep, make_batches(SPEC, "float64", 1), steps, False, lambda r: None).records


@pytest.mark.parametrize(("name", "optimizer", "patch"), CASES, ids=[case[0] for case in CASES])
def test_background_checks_equal_the_foreground_ones(name, optimizer, patch):
    background, foreground = records(optimizer, patch, True), records(optimizer, patch, False)
    assert [record.checks for record in background] == [record.checks for record in foreground]
    failed = any(not check.passed for record in foreground for check in record.checks)
    assert failed is (name != "clean")  # each fault really fails, so the order of failures was compared too


class ZeroesGradients(Adam):
    """A rule under test that clears each gradient once it has used it (in place, as a fused kernel might)."""

    def step(self, params, grads, state):
        super().step(params, grads, state)
        for grad in grads.values():
            grad[...] = 0.0


SETTINGS = [  # (what, how the Lockstep is built, whether the gradients may be compared in the background)
    ("an optimizer of this package", {}, True),
    ("clipping, which scales the gradients in place", {"clip": 1.0}, False),
    ("finite-difference witnesses", {"gradcheck": True}, False),
    ("a rule under test", {"manual_optimizer": ZeroesGradients()}, False),
    ("a faulty subclass of a package optimizer", {"override": optimizer_as(optimizers.AdamNoBiasCorrection)}, False),
    ("background turned off", {"background": False}, False),
]


@pytest.mark.parametrize(("what", "built", "expected"), SETTINGS, ids=[setting[0] for setting in SETTINGS])
def test_the_background_is_used_only_when_nothing_writes_to_the_gradients(what, built, expected):
    weights = init_state_dict(SPEC, np.random.default_rng(0), np.float64)
    lockstep = mlp_pair.twins(SPEC, weights, "adam", {}, "float64", **{"background": True, **built})
    assert lockstep.background is expected


def test_a_rule_that_writes_to_its_gradients_is_judged_on_the_gradients_it_was_given():
    """Were its gradients compared while it ran, they could read as zeros: the grad stage must pass."""
    weights = init_state_dict(SPEC, np.random.default_rng(0), np.float64)
    lockstep = mlp_pair.twins(SPEC, weights, "adam", {}, "float64", manual_optimizer=ZeroesGradients(), background=True)
    result = engine.run(lockstep, make_batches(SPEC, "float64", 1), 4, False, lambda r: None)
    assert all(check.passed for record in result.records for check in record.checks if check.stage == "grad")


def test_package_optimizers_never_write_to_their_gradients():
    """What the background relies on, for every optimizer it runs beside."""
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((4, 3)), "b": rng.standard_normal(3)}
    grads = {name: rng.standard_normal(value.shape) for name, value in params.items()}
    for name, cls in OPTIMIZERS.items():
        optimizer = cls(**cls.every_branch)  # every branch, L2 too: where a rule could add to its gradient in place
        given = {key: grad.copy() for key, grad in grads.items()}
        state = optimizer.init(params)
        for _ in range(3):
            optimizer.step(params, given, state)
        assert all(np.array_equal(given[key], grads[key]) for key in grads), name
    assert RULES_THAT_LEAVE_GRADS == frozenset(OPTIMIZERS.values())


@pytest.mark.parametrize(("widths", "background"), [((2, 16, 16, 3), False), ((784, 256, 256, 10), True)])
def test_the_background_is_on_by_default_from_a_size_where_it_pays(widths, background):
    spec = MLPSpec(widths, "relu", "cross_entropy")
    lockstep = mlp_pair.twins(spec, init_state_dict(spec, np.random.default_rng(0), np.float64), "adam", {}, "float64")
    assert lockstep.background is background
