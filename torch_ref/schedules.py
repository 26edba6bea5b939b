"""The torch.optim.lr_scheduler schedule of each ``--lr-schedule`` part, built by the reference alone.

The parsed text (``[(kind, args), ...]``, as ``manual.schedules.parse_schedule`` returns it: input
parsing, not a rule) becomes torch's schedulers here, from torch's documentation, never through the
manual side's translation: a wrong warm-up start factor there must not reach the reference.

* ``step:STEP_SIZE:GAMMA`` → ``StepLR(step_size, gamma)``;
* ``exp:GAMMA`` → ``ExponentialLR(gamma)``;
* ``cosine:T_MAX`` → ``CosineAnnealingLR(T_max, eta_min=0)``;
* ``warmup:W`` → ``LinearLR(start_factor=1/(W+1), end_factor=1, total_iters=W)``: lr·t/(W+1) at step t,
  the full lr from step W+1, where a following part starts (``SequentialLR`` milestone W).
"""

from collections.abc import Sequence

from torch.optim import Optimizer, lr_scheduler


def scheduler(kind: str, args: Sequence[float], optimizer: Optimizer) -> lr_scheduler.LRScheduler:
    if kind == "step":
        return lr_scheduler.StepLR(optimizer, step_size=int(args[0]), gamma=args[1])
    if kind == "exp":
        return lr_scheduler.ExponentialLR(optimizer, gamma=args[0])
    if kind == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=int(args[0]), eta_min=0.0)
    if kind == "warmup":
        warmup = int(args[0])
        return lr_scheduler.LinearLR(optimizer, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup)
    raise ValueError(f"unknown schedule kind {kind!r}")


def build(parsed: Sequence[tuple[str, Sequence[float]]], optimizer: Optimizer) -> lr_scheduler.LRScheduler:
    """torch's scheduler(s) for ``parsed``; a SequentialLR for a sequence (only ``warmup:W`` precedes).

    Building it sets the step-1 lr; call ``.step()`` after each ``optimizer.step()``.
    """
    schedulers = [scheduler(kind, args, optimizer) for kind, args in parsed]
    if len(schedulers) == 1:
        return schedulers[0]
    milestones = [int(args[0]) for _, args in parsed[:-1]]
    return lr_scheduler.SequentialLR(optimizer, schedulers, milestones)
