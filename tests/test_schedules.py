"""Learning-rate schedules: the manual lr equals torch's ``param_groups[0]["lr"]`` at every step.

Tolerance: none, bit for bit. Both sides evaluate the same Python-float expressions in the same order
(torch's recursive ``get_lr`` formulas, the same ``math.cos``), so any difference is a formula or
ordering difference: a closed form, which agrees to ~1e-15, already fails (see the control test).
"""

import math

import numpy as np
import pytest
import torch
from test_optimizers import MAX_REL, gradient_sequence, initial_weights, max_rel, torch_twin

import torch_ref
from manual import schedules
from manual.optim import SGD, Adam
from manual.schedules import parse_schedule
from torch_ref import schedules as torch_schedules

STEPS = 500  # several StepLR periods, ExponentialLR down to 1e-3 of its start, cosine past T_max and back
BASE_LR = 0.1

SCHEDULES = [
    "step:30:0.5",
    "step:7:0.3",  # γ not a power of two: a running product and a power part ways
    "exp:0.99",
    "cosine:500",
    "cosine:100",  # past T_max: torch's cosine climbs back up (period 2·T_max), through its restart branch
    "cosine:1",
    "warmup:20",
    "warmup:1",
    "warmup:20,cosine:200",
    "warmup:10,step:50:0.3",
    "warmup:10,exp:0.995",
]


def lr_pairs(text: str, steps: int = STEPS) -> list[tuple[float, float]]:
    """(manual lr, torch lr) used by each of ``steps`` optimizer steps, each scheduler stepped after its optimizer."""
    parsed = parse_schedule(text)
    manual = SGD(lr=BASE_LR)
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    reference = torch.optim.SGD([param], lr=BASE_LR, foreach=False)
    manual_schedule, torch_schedule = schedules.build(parsed, manual), torch_schedules.build(parsed, reference)
    pairs = []
    for _ in range(steps):
        pairs.append((manual.lr, reference.param_groups[0]["lr"]))
        reference.step()  # no gradient: nothing moves, but torch sees the step before its scheduler's
        torch_schedule.step()
        manual_schedule.step()
    return pairs


@pytest.mark.filterwarnings("error")  # torch warns if its scheduler is stepped out of order
@pytest.mark.parametrize("text", SCHEDULES)
def test_lr_equals_torchs_at_every_step(text: str) -> None:
    for step, (manual, reference) in enumerate(lr_pairs(text), start=1):
        assert type(reference) is float
        assert manual == reference, f"step {step}: manual lr {manual!r} != torch {reference!r}"


@pytest.mark.parametrize("text", ["exp:0.99", "cosine:100", "warmup:20", "step:7:0.3"])
def test_a_closed_form_is_not_torchs_arithmetic(text: str) -> None:
    """The control: the closed form (base·γ^k, ½·base·(1 + cos(πk/T)), …) misses torch's lr in the last bits."""
    parsed = parse_schedule(text)
    scheduler = schedules.build(parsed, SGD(lr=BASE_LR))
    closed = []
    for _ in range(STEPS):
        closed.append(scheduler.closed_form_lr())
        scheduler.step()
    torch_lrs = [reference for _, reference in lr_pairs(text)]
    assert closed != torch_lrs
    assert np.allclose(closed, torch_lrs, rtol=1e-13, atol=1e-17)  # …while agreeing to rounding


@pytest.mark.parametrize("warmup", [1, 5, 20])
def test_warmup_ramps_from_a_nonzero_lr_to_the_base(warmup: int) -> None:
    """Step t runs at base·t/(W+1) for t = 1 … W+1; a schedule that follows starts at exactly the base."""
    alone, then_cosine = lr_pairs(f"warmup:{warmup}", warmup + 2), lr_pairs(f"warmup:{warmup},cosine:50", warmup + 2)
    for step, ((lr, _), (lr_then, _)) in enumerate(zip(alone, then_cosine, strict=True), start=1):
        expected = BASE_LR * min(step, warmup + 1) / (warmup + 1)
        assert lr > 0.0
        assert math.isclose(lr, expected, rel_tol=1e-14), f"step {step}"  # torch multiplies ratios: a few ulps
        if step <= warmup:
            assert lr_then == lr, f"step {step}"  # the same LinearLR until the milestone
    assert then_cosine[warmup][0] == BASE_LR  # SequentialLR jumps the cosine to epoch 0 in closed form: exact


def test_cosine_does_not_stop_at_t_max() -> None:
    """torch's CosineAnnealingLR reaches eta_min at T_max and then rises again (period 2·T_max)."""
    lrs = [reference for _, reference in lr_pairs("cosine:10", 31)]
    assert lrs[10] == 0.0  # step 11 runs at η_min = 0
    assert lrs[11] > 0.0 and math.isclose(lrs[20], BASE_LR, rel_tol=1e-12)  # back at the base at 2·T_max
    assert lrs[30] < 1e-15  # and at η_min again at 3·T_max


@pytest.mark.parametrize(("text", "first_lr"), [("warmup:4", BASE_LR * (1.0 / 5)), ("cosine:10", BASE_LR)])
def test_building_sets_the_first_lr_as_torch_does(text: str, first_lr: float) -> None:
    """Like a torch scheduler's constructor, ``build`` sets the lr of step 1 (LinearLR: lr·start_factor)."""
    manual = SGD(lr=BASE_LR)
    schedules.build(parse_schedule(text), manual)
    assert manual.lr == first_lr


def test_a_schedule_drives_the_optimizer_as_torchs_does() -> None:
    """The lr a schedule sets is the one the next step reads: Adam under warm-up then cosine, against torch."""
    parsed = parse_schedule("warmup:5,cosine:15")
    manual = Adam(lr=0.05, weight_decay=0.01)
    model, reference = torch_twin("adam", manual.hyperparameters())
    params = initial_weights()
    state = manual.init(params)
    manual_schedule, torch_schedule = schedules.build(parsed, manual), torch_schedules.build(parsed, reference)
    for step, grads in enumerate(gradient_sequence(), start=1):
        for name, param in model.named_parameters():
            param.grad = torch.tensor(grads[name])
        manual.step(params, grads, state)
        reference.step()
        manual_schedule.step()
        torch_schedule.step()
        for name, expected in torch_ref.export_weights(model).items():
            assert max_rel(params[name], expected) <= MAX_REL, f"step {step}: {name}"
    assert manual.lr == reference.param_groups[0]["lr"]


PARSE_CASES = [
    ("step:30:0.5", [("step", (30, 0.5))]),
    ("exp:0.95", [("exp", (0.95,))]),
    ("cosine:200", [("cosine", (200,))]),
    ("warmup:10", [("warmup", (10,))]),
    ("warmup:10,cosine:200", [("warmup", (10,)), ("cosine", (200,))]),
    (" warmup : 3 , step : 5 : 2 ", [("warmup", (3,)), ("step", (5, 2.0))]),  # spaces are forgiven; γ > 1 grows
    ("exp:1e-1", [("exp", (0.1,))]),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES)
def test_parse_schedule(text: str, expected: list) -> None:
    parsed = parse_schedule(text)
    assert parsed == expected
    assert [tuple(type(arg) for arg in args) for _, args in parsed] == [
        tuple(type(arg) for arg in args) for _, args in expected
    ]


# (bad text, a fragment the one-line message must contain)
PARSE_ERRORS = [
    ("", "empty schedule"),
    ("   ", "empty schedule"),
    ("linear:5", "unknown kind 'linear'"),
    ("Cosine:5", "unknown kind 'Cosine'"),
    ("step:30", "step takes 2 argument(s), as step:STEP_SIZE:GAMMA"),
    ("exp", "exp takes 1 argument(s), as exp:GAMMA"),
    ("cosine:10:0.1", "cosine takes 1 argument(s), as cosine:T_MAX"),
    ("step:2.5:0.1", "STEP_SIZE must be an integer, got '2.5'"),
    ("cosine:ten", "T_MAX must be an integer, got 'ten'"),
    ("exp:fast", "GAMMA must be a number, got 'fast'"),
    ("warmup:0", "W must be positive and finite, got '0'"),
    ("step:10:-0.5", "GAMMA must be positive and finite"),
    ("exp:nan", "GAMMA must be positive and finite"),
    ("exp:inf", "GAMMA must be positive and finite"),
    ("cosine:-3", "T_MAX must be positive and finite"),
    ("warmup:5,", "unknown kind ''"),
    ("cosine:10,warmup:5", "a sequence is warmup:W followed by step, exp or cosine"),
    ("warmup:5,warmup:5", "a sequence is warmup:W followed by step, exp or cosine"),
    ("warmup:5,cosine:10,exp:0.9", "at most two parts"),
]


@pytest.mark.parametrize(("text", "fragment"), PARSE_ERRORS)
def test_parse_schedule_rejects_bad_text(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_schedule(text)
    message = str(raised.value)
    assert fragment in message
    assert "\n" not in message
