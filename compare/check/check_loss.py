"""``check_loss``: a user's loss against a torch loss, value and gradient.

Accepted (``compare.check.forms.layer_loss``): an object with ``forward(scores, targets)`` → the loss and
``backward()`` (or ``backward(dout=1)``) → dL/dscores, as the textbooks write ``SoftmaxWithLoss``; a pair
of functions ``(loss_fn(scores, targets) -> loss, grad_fn(scores, targets) -> dL/dscores)``; or one
function ``loss(scores, targets) -> (loss, dscores)`` (``softmax_loss``, ``svm_loss``). ``torch_loss`` is
any callable (a ``torch.nn`` loss, or a function of two tensors). Targets go to both
sides as given: class indices (N,), or float targets (N, C) (one-hot or probabilities, which torch's
``CrossEntropyLoss`` takes too). Compared per step: ``loss`` (stage ``loss``), ``dscores`` (``grad``).
"""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

import compare.check.diagnosis.conventions as conventions
import compare.check.forms.arguments as arguments
import compare.check.forms.layer_loss as forms
import compare.check.sandbox.guard as guard
from compare.check.diagnosis import numerical
from compare.check.diagnosis.known_mistakes import diagnose_loss
from compare.check.forms import torch_tensors as tensors
from compare.check.report import Report
from compare.check.sandbox.isolated import entry_point
from compare.core import scales, spread
from compare.core.checks import Checks
from compare.core.tolerances import tolerance


def _batches(value: Any, steps: int, dtype: str | None) -> list[np.ndarray]:
    items = list(value) if isinstance(value, list | tuple) else [value] * steps
    arrays = [np.asarray(item) for item in items]
    return [a.astype(dtype) if dtype is not None and a.dtype.kind == "f" else a for a in arrays]


def _user_pass(loss: Any, form: str, step: int, scores: np.ndarray, targets: np.ndarray) -> tuple[Any, Any]:
    if form == "function":
        result = guard.call(step, "loss", "loss(scores, targets)", loss, guard.fresh(scores), guard.fresh(targets))
        if not (isinstance(result, tuple) and len(result) == 2):
            what = type(result).__name__
            error = TypeError(f"a loss function must return (loss, dscores); yours returned a {what}")
            guard.call(step, "loss", "loss(scores, targets)", _raise, error)
        return result
    if form == "pair":
        loss_fn, grad_fn = loss
        value = guard.call(step, "loss", "loss_fn(scores, targets)", loss_fn, guard.fresh(scores), guard.fresh(targets))
        grad = guard.call(step, "grad", "grad_fn(scores, targets)", grad_fn, guard.fresh(scores), guard.fresh(targets))
        return value, grad
    where = "forward(scores, targets)"
    value = guard.call(step, "loss", where, loss.forward, guard.fresh(scores), guard.fresh(targets))
    return value, guard.call(step, "grad", "backward()", loss.backward)


def _raise(error: Exception) -> None:
    raise error


def package_labels(torch_loss: nn.Module, targets: np.ndarray) -> np.ndarray:
    """Targets as the package's own loss takes them: class indices for cross-entropy (one-hot rows
    become their index), the array itself otherwise."""
    if isinstance(torch_loss, nn.CrossEntropyLoss) and targets.ndim == 2:
        return targets.argmax(axis=1)
    return targets


@entry_point  # report_dir=, isolate=, memory_limit=, time_limit, small: one thread
def check_loss(
    loss: Any,
    torch_loss: Callable,
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
    arguments.twin_second("loss", loss, torch_loss)
    arguments.labels_given("loss", scores, targets, "scores", "targets")
    arguments.targets_fit(scores, targets, torch_loss)
    arguments.settings("loss", dtype, steps)
    loss = tensors.numpy_side(loss)
    form = forms.loss_form(loss)
    score_batches = _batches(scores, steps, dtype)
    target_batches = _batches(targets, len(score_batches), dtype)
    report = Report("loss", steps=len(score_batches))
    first = scores[0] if isinstance(scores, list | tuple) and scores else scores
    report.notes.extend(filter(None, [arguments.dtype_note({"scores": first}, dtype)]))
    runs, scaled, kept, contexts = [], [], {}, {}
    try:
        for step, (s, t) in enumerate(zip(score_batches, target_batches, strict=True), start=1):
            checks = Checks(step, dtype, keep=kept)
            contexts[step] = numerical.Context(batch=len(s), classes=s.shape[1] if s.ndim == 2 else None)
            value, grad = _user_pass(loss, form, step, s, t)
            st = torch.from_numpy(s.copy()).requires_grad_(True)
            reference = guard.call(
                step, "loss", "torch_loss(scores, targets)", torch_loss, st, torch.from_numpy(t.copy())
            )
            guard.call(step, "grad", "torch backward", reference.backward)
            value = guard.returned(value, step, "loss", "the loss", np.dtype(dtype))
            value = arguments.scalar_loss(value, report.notes, step, tuple(reference.shape))
            grad = guard.returned(grad, step, "grad", "the gradient", np.dtype(dtype))
            checks.add("loss", "loss", value, reference, scales.loss_floor(torch_loss, st, t))
            checks.add("grad", "dscores", grad, st.grad, scales.loss_grad_floor(torch_loss, st, t))
            checks.rejudge(lambda k, s=s, t=t: _again(k, torch_loss, s, t))  # a failure re-judged at torch's spread
            report.checks.extend(checks.collect())
            runs.append((s, package_labels(torch_loss, t), value, grad))
            scaled.append((s, float(reference.detach()), st.grad.numpy(), value, grad))
    except guard.UserCodeError as error:
        report.error = error.failure
    if diagnose and not report.passed and report.error is None:
        report.diagnosis = diagnose_loss(torch_loss, runs, dtype)
        if report.diagnosis is None:
            report.diagnosis = conventions.loss_scale_diagnosis(torch_loss, scaled, _tolerance(dtype))
        if report.diagnosis is None:  # no known mistake or convention: what the departure itself says
            report.diagnosis = numerical.measure(report.checks, kept, contexts)
        report.diagnosed = True
    return report


def _again(k: int, torch_loss: Callable, s: np.ndarray, t: np.ndarray) -> dict:
    """torch's loss and dL/dscores again, scores moved by an ulp (``compare.core.spread``)."""
    (value,), grads, _ = spread.torch_again(k, torch_loss, [torch.from_numpy(s), torch.from_numpy(t)], [torch.ones(())])
    return {("loss", "loss"): value, ("grad", "dscores"): grads[0]}


def _tolerance(dtype: str) -> float:
    return tolerance(dtype, "loss").max_rel
