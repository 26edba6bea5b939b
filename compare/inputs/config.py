"""What determines a run, as data: a frozen ``RunConfig``, validated when it is built.

Every problem a configuration can have on its own is an ``InputError`` (one line, naming the flag that
sets the field) raised by the constructor; what needs the data (the layer widths, the batch size against
the examples) is checked by ``compare.inputs.prepare``, before anything is written. The command line
(``compare.cli.run``) builds one from its flags; a Python user builds one directly.
"""

import math
import re
from dataclasses import asdict, dataclass, field

import numpy as np

from compare.errors import InputError
from compare.inputs.world import MAX_WORLD_SIZE
from manual.schedules import parse_schedule
from manual.spec import ACTIVATION_NAMES, LOSS_NAMES, MLPSpec

MAX_STEPS = 1_000_000
DTYPES = {"float64": np.float64, "float32": np.float32}
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def flag(name: str) -> str:
    """The command-line flag that sets a field (``batch_size`` → ``--batch-size``)."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run; the resolved one is written into the report as ``config``.

    ``optimizer`` ``None`` means adam (or the optimizer a ``variant`` is compared with);
    ``hyperparameters`` are torch keyword arguments (those not given take the rule's defaults and the
    registry's ``default_lr``); ``layers`` ``None`` means D,16,16,C from the data; ``data`` is the path
    of the user's ``.npz`` (then ``dataset`` must be ``None``)."""

    optimizer: str | None = None
    hyperparameters: dict = field(default_factory=dict)
    layers: tuple[int, ...] | None = None
    activation: str = "relu"
    loss: str = "cross_entropy"
    dataset: str | None = None
    weights: str | None = None
    steps: int = 500
    batch_size: int = 32
    seed: int = 0
    dtype: str = "float64"
    stop_at_first_failure: bool = True
    lr_schedule: str | None = None
    clip_grad_norm: float | None = None
    dropout: float = 0.0
    batchnorm: bool = False
    variant: str | None = None
    inject: str | None = None
    val_fraction: float = 0.2
    log_every: int = 25
    gradcheck: bool = False
    resync: bool = False
    strict_trajectory: bool = False  # every free-running departure fails (no drift adjudication)
    device: str = "cpu"  # where the torch twin runs
    world_size: int | None = None  # data-parallel ranks of the torch twin (None: one process, no DDP)
    data: str | None = None

    def __post_init__(self) -> None:
        for check in (_check_names, _check_numbers, _check_combinations):
            check(self)

    @property
    def spec(self) -> MLPSpec:
        return MLPSpec(self.layers, self.activation, self.loss, self.dropout, self.batchnorm)

    @property
    def schedule(self) -> list | None:
        return None if self.lr_schedule is None else parse_schedule(self.lr_schedule)

    def to_json(self) -> dict:
        """The report's ``config``: ``dataset`` is the data file's path when there is one."""
        document = asdict(self)
        document["dataset"] = self.data if self.data is not None else (self.dataset or "spiral")
        del document["data"]
        return document


def _check_names(config: RunConfig) -> None:
    if config.data is not None and config.dataset is not None:
        raise InputError("give either --dataset or --data, not both")
    if config.dtype not in DTYPES:
        raise InputError(f"--dtype must be one of {', '.join(DTYPES)}, got {config.dtype!r}")
    if config.activation not in ACTIVATION_NAMES:
        raise InputError(f"--activation must be one of {', '.join(ACTIVATION_NAMES)}, got {config.activation!r}")
    if config.loss not in LOSS_NAMES:
        raise InputError(f"--loss must be one of {', '.join(LOSS_NAMES)}, got {config.loss!r}")
    if config.lr_schedule is not None:
        try:
            parse_schedule(config.lr_schedule)
        except ValueError as error:
            raise InputError(f"--lr-schedule {config.lr_schedule!r}: {error}") from None
    if config.layers is not None:
        if len(config.layers) < 2:
            raise InputError(f"--layers {_widths(config.layers)!r}: needs at least an input and an output width")
        if any(w < 1 for w in config.layers):
            raise InputError(
                f"--layers {_widths(config.layers)!r}: every width must be at least 1 (found {min(config.layers)})"
            )


def _check_numbers(config: RunConfig) -> None:
    if not 1 <= config.steps <= MAX_STEPS:
        raise InputError(f"--steps must be between 1 and {MAX_STEPS}, got {config.steps}")
    if config.seed < 0:
        raise InputError(f"--seed must be >= 0, got {config.seed}")
    if config.clip_grad_norm is not None and not (math.isfinite(config.clip_grad_norm) and config.clip_grad_norm > 0):
        raise InputError(f"--clip-grad-norm must be a positive number, got {config.clip_grad_norm}")
    if not 0.0 <= config.dropout < 1.0:
        raise InputError(f"--dropout must be in [0, 1), got {config.dropout}")
    if not 0.0 <= config.val_fraction < 1.0:
        raise InputError(f"--val-fraction must be in [0, 1), got {config.val_fraction}")
    if config.log_every < 1:
        raise InputError(f"--log-every must be at least 1, got {config.log_every}")
    if config.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {config.batch_size}")
    if config.world_size is not None and not 1 <= config.world_size <= MAX_WORLD_SIZE:
        raise InputError(f"--world-size must be between 1 and {MAX_WORLD_SIZE}, got {config.world_size}")
    for key, value in config.hyperparameters.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{flag(key)} must be a finite number, got {value}")


def _check_combinations(config: RunConfig) -> None:
    if config.resync and config.variant:
        raise InputError("--resync cannot be used with --variant: a textbook rule's state has no torch counterpart")
    if config.gradcheck and config.dtype != "float64":
        raise InputError("--gradcheck needs --dtype float64: in float32, rounding swamps finite differences")
    if config.batchnorm and config.batch_size < 2:
        raise InputError("--batchnorm needs --batch-size of at least 2 (a batch of one has no variance)")
    if config.inject is not None and config.variant is not None:
        raise InputError(f"--inject {config.inject} cannot be combined with --variant (both replace the manual rule)")


def _widths(layers: tuple[int, ...]) -> str:
    return ",".join(map(str, layers))


def parse_layers(text: str) -> tuple[int, ...]:
    """``--layers 2,16,16,3`` → ``(2, 16, 16, 3)``; the widths are checked by ``RunConfig``."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InputError(f"--layers {text!r}: expected comma-separated integers such as 2,16,16,3") from None
