"""Learning-rate schedules that set an optimizer's ``lr`` exactly as ``torch.optim.lr_scheduler`` does.

Pure Python floats, in torch's order of operations: torch computes most schedules *recursively*
from the current lr (ExponentialLR multiplies it by γ every step; CosineAnnealingLR scales it by a
ratio of cosines; LinearLR by a ratio of factors), not from a closed form, and the two differ in the
last bits. Replicating the recursion makes the manual lr equal torch's bit for bit.

Usage mirrors torch: ``build`` sets the step-1 lr on the optimizer (as a torch scheduler's
constructor does), and ``.step()`` is called after each optimizer step to set the next one.

CLI syntax (``parse_schedule``)::

    step:STEP_SIZE:GAMMA    StepLR(step_size, gamma): lr·γ^⌊k/STEP_SIZE⌋ after k steps
    exp:GAMMA               ExponentialLR(gamma): lr·γ^k
    cosine:T_MAX            CosineAnnealingLR(T_max, eta_min=0)
    warmup:W                LinearLR(start_factor=1/(W+1), end_factor=1, total_iters=W)
    warmup:W,KIND:ARGS      SequentialLR([LinearLR as above, KIND], milestones=[W]); KIND is step, exp or cosine

Warm-up: the t-th optimizer step runs at lr·t/(W+1) for t = 1 … W+1, then at lr, so the first
step is never at lr 0 and the ramp ends exactly where a following schedule takes over at its base lr.
"""

import math
from dataclasses import dataclass

Parsed = list[tuple[str, tuple]]

USAGE = "step:STEP_SIZE:GAMMA, exp:GAMMA, cosine:T_MAX, warmup:W, or warmup:W,<step|exp|cosine>:..."


class LRScheduler:
    """Common machinery of torch's ``LRScheduler``, for one parameter group and ``last_epoch=-1``.

    ``base_lr`` is torch's ``initial_lr``: the optimizer's lr when the first scheduler was built.
    """

    def __init__(self, optimizer, base_lr: float | None = None) -> None:
        self.optimizer = optimizer
        self.base_lr = optimizer.lr if base_lr is None else base_lr
        self.last_epoch = -1
        self._is_initial = False
        self._initial_step()

    def _initial_step(self) -> None:
        """torch's constructor step: epoch 0, in "initial mode" (where most schedules keep the lr)."""
        self._is_initial = True
        self.step()
        self._is_initial = False

    def step(self) -> None:
        """Advance one epoch; call after the optimizer's step, as with torch."""
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr()

    def jump_to(self, epoch: int) -> None:
        """torch's ``_update_lr(epoch)``: set ``last_epoch`` and the closed-form lr there (SequentialLR uses it)."""
        self.last_epoch = epoch
        self.optimizer.lr = self.closed_form_lr()

    def get_lr(self) -> float:
        raise NotImplementedError

    def closed_form_lr(self) -> float:
        raise NotImplementedError


class StepLR(LRScheduler):
    """torch.optim.lr_scheduler.StepLR: lr ← lr·γ whenever ``last_epoch`` is a non-zero multiple of ``step_size``."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, base_lr: float | None = None) -> None:
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, base_lr)

    def get_lr(self) -> float:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self.optimizer.lr
        return self.optimizer.lr * self.gamma

    def closed_form_lr(self) -> float:
        return self.base_lr * self.gamma ** (self.last_epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """torch.optim.lr_scheduler.ExponentialLR: lr ← lr·γ every step (a running product, not base·γ^k)."""

    def __init__(self, optimizer, gamma: float, base_lr: float | None = None) -> None:
        self.gamma = gamma
        super().__init__(optimizer, base_lr)

    def get_lr(self) -> float:
        if self._is_initial:
            return self.optimizer.lr
        return self.optimizer.lr * self.gamma

    def closed_form_lr(self) -> float:
        return self.base_lr * self.gamma**self.last_epoch


class CosineAnnealingLR(LRScheduler):
    r"""torch.optim.lr_scheduler.CosineAnnealingLR, in torch's recursive form.

    With η_min the floor and e = ``last_epoch``::

        lr ← η_min + (lr − η_min)·(1 + cos(πe/T_max)) / (1 + cos(π(e − 1)/T_max))
        lr ← lr + (base − η_min)·(1 − cos(π/T_max)) / 2     (when (e − 1 − T_max) mod 2T_max = 0)

    which approximates the closed form η_min + (base − η_min)(1 + cos(πe/T_max))/2. It does NOT
    stop at T_max: the lr reaches η_min there and then climbs back, a cosine of period 2·T_max.
    (torch's third branch, the closed form when ``_step_count == 1`` and ``last_epoch > 0``, needs
    a scheduler resumed from a checkpoint and cannot be reached here.)
    """

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, base_lr: float | None = None) -> None:
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, base_lr)

    def get_lr(self) -> float:
        lr, e, T_max, eta_min = self.optimizer.lr, self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return lr
        if (e - 1 - T_max) % (2 * T_max) == 0:
            return lr + (self.base_lr - eta_min) * (1 - math.cos(math.pi / T_max)) / 2
        ratio = (1 + math.cos(math.pi * e / T_max)) / (1 + math.cos(math.pi * (e - 1) / T_max))
        return ratio * (lr - eta_min) + eta_min

    def closed_form_lr(self) -> float:
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2


class LinearLR(LRScheduler):
    """torch.optim.lr_scheduler.LinearLR: the factor goes linearly from ``start_factor`` to ``end_factor``
    over ``total_iters`` steps, applied recursively as a ratio of successive factors."""

    def __init__(
        self,
        optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        base_lr: float | None = None,
    ) -> None:
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError("start_factor must be greater than 0 and at most 1")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("end_factor must be between 0 and 1")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, base_lr)

    def get_lr(self) -> float:
        lr = self.optimizer.lr
        if self.last_epoch == 0:
            return lr * self.start_factor
        if self._is_initial or self.last_epoch > self.total_iters:
            return lr
        delta = self.end_factor - self.start_factor
        return lr * (1.0 + delta / (self.total_iters * self.start_factor + (self.last_epoch - 1) * delta))

    def closed_form_lr(self) -> float:
        delta = self.end_factor - self.start_factor
        return self.base_lr * (self.start_factor + delta * min(self.total_iters, self.last_epoch) / self.total_iters)


class SequentialLR:
    """torch.optim.lr_scheduler.SequentialLR: ``schedulers[i]`` runs from ``milestones[i-1]`` on.

    Its quirks, reproduced: building it resets the lr to the base, rewinds every child by one epoch
    and replays only the first child's constructor step; at a milestone the next child is not
    stepped but jumped to epoch 0 *in closed form* (so a cosine restarts at exactly the base lr,
    whatever lr the previous child left), and is stepped recursively from there.
    """

    def __init__(self, optimizer, schedulers: list[LRScheduler], milestones: list[int]) -> None:
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"{len(schedulers)} schedulers need {len(schedulers) - 1} milestone(s): {milestones}")
        self.optimizer = optimizer
        self.schedulers = schedulers
        self.milestones = milestones
        self.last_epoch = 0
        optimizer.lr = schedulers[0].base_lr
        for scheduler in schedulers:
            scheduler.last_epoch -= 1
        schedulers[self._index(0)]._initial_step()

    def _index(self, epoch: int) -> int:
        return sum(milestone <= epoch for milestone in self.milestones)  # bisect_right over sorted milestones

    def step(self) -> None:
        self.last_epoch += 1
        index = self._index(self.last_epoch)
        scheduler = self.schedulers[index]
        if index > 0 and self.milestones[index - 1] == self.last_epoch:
            scheduler.jump_to(0)
        else:
            scheduler.step()


@dataclass(frozen=True)
class Kind:
    """A CLI schedule kind: its argument names, as the usage line writes them, and the torch scheduler it builds."""

    args: tuple[str, ...]
    torch_name: str


KINDS = {
    "step": Kind(("STEP_SIZE", "GAMMA"), "StepLR"),
    "exp": Kind(("GAMMA",), "ExponentialLR"),
    "cosine": Kind(("T_MAX",), "CosineAnnealingLR"),
    "warmup": Kind(("W",), "LinearLR"),
}
SCHEDULERS: dict[str, type[LRScheduler]] = {
    "StepLR": StepLR,
    "ExponentialLR": ExponentialLR,
    "CosineAnnealingLR": CosineAnnealingLR,
    "LinearLR": LinearLR,
}
INTEGER_ARGS = {"STEP_SIZE", "T_MAX", "W"}


def _parse_number(value_text: str, part: str, name: str) -> int | float:
    try:
        value = int(value_text) if name in INTEGER_ARGS else float(value_text)
    except ValueError:
        kind = "an integer" if name in INTEGER_ARGS else "a number"
        raise ValueError(f"schedule {part!r}: {name} must be {kind}, got {value_text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"schedule {part!r}: {name} must be positive and finite, got {value_text!r}")
    return value


def parse_schedule(text: str) -> Parsed:
    """``"warmup:5,cosine:100"`` → ``[("warmup", (5,)), ("cosine", (100,))]``; ValueError (one line) on bad text."""
    if not text.strip():
        raise ValueError(f"empty schedule; expected {USAGE}")
    parsed: Parsed = []
    for raw_part in text.split(","):
        part = raw_part.strip()
        kind, *args = [piece.strip() for piece in part.split(":")]
        if kind not in KINDS:
            raise ValueError(f"schedule {part!r}: unknown kind {kind!r}; expected {USAGE}")
        names = KINDS[kind].args
        if len(args) != len(names):
            usage = ":".join((kind, *names))
            raise ValueError(f"schedule {part!r}: {kind} takes {len(names)} argument(s), as {usage}")
        parsed.append((kind, tuple(_parse_number(arg, part, name) for arg, name in zip(args, names, strict=True))))
    if len(parsed) > 2:
        raise ValueError(f"schedule {text!r}: at most two parts, as warmup:W,<step|exp|cosine>:...")
    if len(parsed) == 2 and (parsed[0][0] != "warmup" or parsed[1][0] == "warmup"):
        raise ValueError(f"schedule {text!r}: a sequence is warmup:W followed by step, exp or cosine")
    return parsed


def torch_specs(parsed: Parsed) -> tuple[list[tuple[str, dict]], list[int]]:
    """The ``torch.optim.lr_scheduler`` class name and kwargs of each part, and SequentialLR's milestones.

    The one place the CLI arguments become scheduler kwargs, read by both ``build`` functions.
    """
    specs: list[tuple[str, dict]] = []
    for kind, args in parsed:
        if kind == "step":
            kwargs = {"step_size": args[0], "gamma": args[1]}
        elif kind == "exp":
            kwargs = {"gamma": args[0]}
        elif kind == "cosine":
            kwargs = {"T_max": args[0], "eta_min": 0.0}
        else:  # warmup: t/(W+1) at step t, reaching 1 at step W+1, where a following schedule starts
            kwargs = {"start_factor": 1.0 / (args[0] + 1), "end_factor": 1.0, "total_iters": args[0]}
        specs.append((KINDS[kind].torch_name, kwargs))
    milestones = [args[0] for kind, args in parsed[:-1]]  # only warmup:W may precede another part
    return specs, milestones


def build(parsed: Parsed, optimizer) -> LRScheduler | SequentialLR:
    """The schedule for ``optimizer`` (anything with an ``lr`` attribute); sets the step-1 lr now, as torch does."""
    specs, milestones = torch_specs(parsed)
    base_lr = optimizer.lr
    schedulers = [SCHEDULERS[name](optimizer, **kwargs, base_lr=base_lr) for name, kwargs in specs]
    if len(schedulers) == 1:
        return schedulers[0]
    return SequentialLR(optimizer, schedulers, milestones)
