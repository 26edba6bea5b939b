"""The torch.optim.lr_scheduler schedule matching each ``manual.schedules`` schedule, from the same parsed text."""

from torch.optim import Optimizer, lr_scheduler

from manual.schedules import Parsed, torch_specs


def build(parsed: Parsed, optimizer: Optimizer) -> lr_scheduler.LRScheduler:
    """torch's scheduler(s) for ``parsed`` (see ``manual.schedules.parse_schedule``); a SequentialLR for a sequence.

    Building it sets the step-1 lr; call ``.step()`` after each ``optimizer.step()``.
    """
    specs, milestones = torch_specs(parsed)
    schedulers = [getattr(lr_scheduler, name)(optimizer, **kwargs) for name, kwargs in specs]
    if len(schedulers) == 1:
        return schedulers[0]
    return lr_scheduler.SequentialLR(optimizer, schedulers, milestones)
