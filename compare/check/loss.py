"""``check_loss``: a user's loss against a torch loss, value and gradient.

Accepted: an object with ``forward(scores, targets)`` → the loss and ``backward()`` (or
``backward(dout=1)``) → dL/dscores, as the textbooks write ``SoftmaxWithLoss``; or a pair of functions
``(loss_fn(scores, targets) -> loss, grad_fn(scores, targets) -> dL/dscores)``. Targets go to both
sides as given: class indices (N,), or float targets (N, C) (one-hot or probabilities, which torch's
``CrossEntropyLoss`` takes too). Compared per step: ``loss`` (stage ``loss``), ``dscores`` (``grad``).
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

import compare.check.guard as guard
from compare.check.diagnose import diagnose_loss
from compare.check.report import Report
from compare.core import scales
from compare.core.checks import Checks


def _batches(value: Any, steps: int, dtype: str | None) -> list[np.ndarray]:
    items = list(value) if isinstance(value, list | tuple) else [value] * steps
    arrays = [np.asarray(item) for item in items]
    return [a.astype(dtype) if dtype is not None and a.dtype.kind == "f" else a for a in arrays]


def _user_pass(loss: Any, step: int, scores: np.ndarray, targets: np.ndarray) -> tuple[Any, Any]:
    if isinstance(loss, tuple):
        loss_fn, grad_fn = loss
        value = guard.call(step, "loss", "loss_fn(scores, targets)", loss_fn, guard.fresh(scores), guard.fresh(targets))
        grad = guard.call(step, "grad", "grad_fn(scores, targets)", grad_fn, guard.fresh(scores), guard.fresh(targets))
        return value, grad
    where = "forward(scores, targets)"
    value = guard.call(step, "loss", where, loss.forward, guard.fresh(scores), guard.fresh(targets))
    return value, guard.call(step, "grad", "backward()", loss.backward)


def package_labels(torch_loss: nn.Module, targets: np.ndarray) -> np.ndarray:
    """Targets as the package's own loss takes them: class indices for cross-entropy (one-hot rows
    become their index), the array itself otherwise."""
    if isinstance(torch_loss, nn.CrossEntropyLoss) and targets.ndim == 2:
        return targets.argmax(axis=1)
    return targets


@guard.limited
def check_loss(
    loss: Any,
    torch_loss: nn.Module,
    scores: np.ndarray | Sequence[np.ndarray],
    targets: np.ndarray | Sequence[np.ndarray],
    *,
    steps: int = 1,
    dtype: str = "float64",
    seed: int = 0,
    diagnose: bool = True,
    time_limit: float | None = guard.DEFAULT_TIME_LIMIT,
) -> Report:
    """Check ``loss`` against ``torch_loss`` on ``scores`` and ``targets`` (one batch, or lists: one per
    step). ``seed`` is unused (nothing random), accepted for a uniform signature."""
    del seed
    score_batches = _batches(scores, steps, dtype)
    target_batches = _batches(targets, len(score_batches), dtype)
    report = Report("loss", steps=len(score_batches))
    runs = []
    try:
        for step, (s, t) in enumerate(zip(score_batches, target_batches, strict=True), start=1):
            checks = Checks(step, dtype)
            value, grad = _user_pass(loss, step, s, t)
            st = torch.from_numpy(s.copy()).requires_grad_(True)
            reference = guard.call(
                step, "loss", "torch_loss(scores, targets)", torch_loss, st, torch.from_numpy(t.copy())
            )
            guard.call(step, "grad", "torch backward", reference.backward)
            value = guard.returned(value, step, "loss", "the loss", np.dtype(dtype))
            grad = guard.returned(grad, step, "grad", "the gradient", np.dtype(dtype))
            checks.add("loss", "loss", value, reference, scales.loss_floor(torch_loss, st, t))
            checks.add("grad", "dscores", grad, st.grad, scales.loss_grad_floor(torch_loss, st, t))
            report.checks.extend(checks.collect())
            runs.append((s, package_labels(torch_loss, t), value, grad))
    except guard.UserCodeError as error:
        report.error = error.failure
    if diagnose and not report.passed and report.error is None:
        report.diagnosis = diagnose_loss(torch_loss, runs, dtype)
        report.diagnosed = True
    return report
