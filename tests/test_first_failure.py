"""One rule ranks checks for runs and user checks alike (``compare.core.records``): the first failure is the
earliest failing check by step, then by stage order (``compare.core.stages.STAGES``), whatever order the
checks were added in; the worst check of each stage is listed in stage order."""

import pytest

from compare.check.report import Report
from compare.core.metrics import TensorDiff
from compare.core.records import Check, RunResult, StepRecord

FAIL, PASS = TensorDiff(1.0, 1.0, ()), TensorDiff(0.0, 0.0, ())


def check(step: int, stage: str, tensor: str, diff: TensorDiff = FAIL) -> Check:
    return Check(step, stage, tensor, diff, 1e-10)


# (checks in the order added, the first failure's (step, stage, tensor))
CASES = [
    ([check(1, "grad", "0.weight"), check(1, "forward", "0.out")], (1, "forward", "0.out")),  # a witness's, added last
    ([check(1, "param", "0.bias"), check(1, "state", "lr")], (1, "state", "lr")),
    ([check(1, "grad", "b"), check(1, "grad", "a")], (1, "grad", "b")),  # within a stage: in the order checked
    ([check(1, "forward", "0.out", PASS), check(1, "loss", "loss")], (1, "loss", "loss")),
]
MULTI_STEP = [
    ([check(2, "forward", "0.out"), check(1, "param", "0.weight")], (1, "param", "0.weight")),
]


@pytest.mark.parametrize(("checks", "first"), CASES + MULTI_STEP)
def test_a_user_checks_first_failure_follows_the_step_then_the_stage_order(checks, first):
    failure = Report("layer", checks=checks).first_failure
    assert (failure.step, failure.stage, failure.tensor) == first


@pytest.mark.parametrize(("checks", "first"), CASES)
def test_a_run_steps_first_failure_follows_the_same_rule(checks, first):
    failure = StepRecord(1, 0.0, 0.0, 0.1, checks).first_failure
    assert (failure.step, failure.stage, failure.tensor) == first


def run_of(checks: list[Check]) -> RunResult:
    result = RunResult()
    result.add(StepRecord(1, 0.0, 0.0, 0.1, checks[:2]))
    result.add(StepRecord(2, 0.0, 0.0, 0.1, checks[2:]))
    return result


@pytest.mark.parametrize(
    "worst_of",
    [
        lambda checks: Report("layer", checks=checks).worst_by_stage(),
        lambda checks: StepRecord(1, 0.0, 0.0, 0.1, checks).worst_by_stage(),
        lambda checks: run_of(checks).worst_by_stage(),
    ],
    ids=["user check", "run step", "run"],
)
def test_each_stages_worst_check_is_listed_in_stage_order(worst_of):
    """The largest ``max_rel`` of each stage (ties: the first added), listed by stage order, not as added."""
    checks = [check(1, "param", "p", TensorDiff(0.0, 2e-11, ())), check(1, "forward", "f", PASS)]
    checks += [check(1, "param", "q", TensorDiff(0.0, 3e-11, ())), check(1, "param", "r", TensorDiff(0.0, 3e-11, ()))]
    assert [(stage, c.tensor) for stage, c in worst_of(checks).items()] == [("forward", "f"), ("param", "q")]
