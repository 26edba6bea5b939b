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
from compare.inputs.data import BUILTIN
from compare.inputs.flags import flag
from compare.inputs.world import MAX_WORLD_SIZE
from manual.optim import REGISTRY
from manual.optim.variants import VARIANTS
from manual.schedules import parse_schedule
from manual.spec import ACTIVATION_NAMES, LOSS_NAMES, MLPSpec

MAX_STEPS = 1_000_000
DTYPES = {"float64": np.float64, "float32": np.float32}
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
SIDES = ("manual", "torch", "jax")  # manual: the hand-written NumPy MLP; torch: torch_ref; jax: jax_ref (optax)
DEFAULT_SIDES = ("manual", "torch")


def roles(sides: tuple[str, str]) -> tuple[str, str]:
    """(the side under test, the reference) of two sides: torch is the reference wherever it runs (its floors
    and its data-parallel and device plumbing), else jax; the other side is under test."""
    reference = "torch" if "torch" in sides else "jax"
    return next(side for side in sides if side != reference), reference


# The groups of ``run``'s --help, by key; each field of RunConfig names its own (``compare.cli.run`` titles them).
OPTIMIZER, MODEL, DATA, PROCESSES, OUTPUT = "optimizer", "model", "data", "processes", "output"


def option(default: object, group: str, text: str, **argparse: object) -> object:
    """A field of ``RunConfig`` with its command-line flag described: its --help ``text``, its ``group``, and
    any of ``metavar``, ``choices``, ``type``, ``flag`` (when not ``--field-name``) and ``action``. ``choices``
    ``None``: the command line gives them, from a module this layer must not import (the fault catalog,
    the devices' torch)."""
    return field(default=default, metadata={"group": group, "help": text, **argparse})


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run; the resolved one is written into the report as ``config``.

    ``optimizer`` ``None`` means adam (or the optimizer a ``variant`` is compared with);
    ``hyperparameters`` are torch keyword arguments (those not given take the rule's defaults and the
    registry's ``default_lr``); ``layers`` ``None`` means D,16,16,C from the data; ``data`` is the path
    of the user's ``.npz`` (then ``dataset`` must be ``None``). Each field's metadata describes its flag
    of ``backprop-parity run`` (``compare.cli.run`` derives the parser from it); ``hyperparameters`` are
    the optimizer's own flags (``compare.cli.optimizer_flags``)."""

    optimizer: str | None = option(
        None,
        OPTIMIZER,
        "momentum and nesterov are torch.optim.SGD with momentum 0.9 (default: adam)",
        choices=tuple(REGISTRY),
    )
    hyperparameters: dict = field(default_factory=dict)
    layers: tuple[int, ...] | None = option(
        None, MODEL, "widths, input first (default: D,16,16,C from the data)", metavar="W0,W1,...", type=str
    )
    activation: str = option("relu", MODEL, "(default: relu)", choices=ACTIVATION_NAMES)
    loss: str = option("cross_entropy", MODEL, "(default: cross_entropy)", choices=LOSS_NAMES)
    dataset: str | None = option(None, DATA, "built-in data generated from --seed (default: spiral)", choices=BUILTIN)
    weights: str | None = option(
        None,
        MODEL,
        "initial weights, keyed by state_dict name (0.weight, 0.bias, 2.weight, ...), "
        "torch layout (out, in) (default: He/Glorot init from --seed)",
        metavar="FILE.npz",
    )
    steps: int = option(500, DATA, f"optimizer steps, 1 to {MAX_STEPS} (default: 500)")
    batch_size: int = option(32, DATA, "examples per step, shuffled each epoch (default: 32)")
    seed: int = option(0, DATA, "fixes the data, the initial weights and the batch order (default: 0)")
    dtype: str = option("float64", DATA, "(default: float64)", choices=tuple(DTYPES))
    stop_at_first_failure: bool = option(
        True,
        DATA,
        "run to the last step after a failure (default: stop at the first failure)",
        flag="--keep-going",
        action="store_false",
    )
    lr_schedule: str | None = option(
        None,
        OPTIMIZER,
        "torch.optim.lr_scheduler applied after each step: step:STEP_SIZE:GAMMA, exp:GAMMA, cosine:T_MAX, "
        "warmup:STEPS, or warmup:W,cosine:T (one after the other) (default: constant)",
        metavar="SCHEDULE",
    )
    clip_grad_norm: float | None = option(
        None,
        OPTIMIZER,
        "clip the global gradient norm as torch.nn.utils.clip_grad_norm_ (default: off)",
        metavar="MAX",
        type=float,
    )
    dropout: float = option(
        0.0,
        MODEL,
        "inverted dropout after each hidden activation; the manual mask is injected into torch (default: 0, none)",
        metavar="P",
    )
    batchnorm: bool = option(False, MODEL, "BatchNorm1d between each hidden Linear and activation")
    variant: str | None = option(
        None,
        OPTIMIZER,
        "run a textbook rule on the manual side against torch's, to see when and by how much it departs "
        "(implies --keep-going and the optimizer it is compared with)",
        choices=tuple(VARIANTS),
    )
    inject: str | None = option(
        None,
        OPTIMIZER,
        "put this known mistake into the manual side, to see the checker catch it "
        "(`backprop-parity faults` lists them and the arguments each needs)",
        choices=None,
        metavar="FAULT",
    )
    val_fraction: float = option(
        0.2, DATA, "share of the examples held out for validation curves, never trained on (default: 0.2)"
    )
    log_every: int = option(
        25,
        OUTPUT,
        "validation curves, per-parameter norms and histograms every K steps; losses, lr and parity "
        "are logged every step (default: 25)",
        metavar="K",
    )
    gradcheck: bool = option(
        False,
        DATA,
        "a third witness: central finite differences on sampled parameter elements (float64) at step 1 "
        "and at the first step whose gradients disagree, to tell which side is wrong",
    )
    resync: bool = option(
        False,
        DATA,
        "after each step copy torch's parameters, buffers and optimizer state into the manual side, so "
        "each step is compared from identical values: rounding cannot build up over the run, a wrong rule "
        "still shows at the step it acts (not with --variant)",
    )
    strict_trajectory: bool = option(  # every free-running departure fails (no drift adjudication)
        False,
        DATA,
        "fail at the first departure of the free-running trajectory, drift or not (default: a departure "
        "is judged by one step from identical values: within tolerance it is drift, recorded and resynced)",
    )
    device: str = option(  # where the torch twin runs
        "cpu",
        PROCESSES,
        "where the torch twin runs; cuda runs with TF32 off and deterministic algorithms on, and exits 2 "
        "where no CUDA device exists (default: cpu)",
        choices=None,
    )
    world_size: int | None = option(  # data-parallel ranks of the torch twin (None: one process, no DDP)
        None,
        PROCESSES,
        "run the torch twin as N data-parallel processes (DistributedDataParallel: gloo on cpu, nccl on "
        "cuda), the batch split evenly among them, against the manual full-batch step; this command is rank 0 "
        "and starts the others on 127.0.0.1. Under torchrun, N comes from its environment (default: one "
        "process, no DDP)",
        metavar="N",
        type=int,
    )
    data: str | None = option(
        None,
        DATA,
        "your data: X float (N, D); y int labels (N,) or, for mse, float targets (N, C)",
        metavar="FILE.npz",
    )
    sides: tuple[str, ...] = option(
        DEFAULT_SIDES,
        PROCESSES,
        "the two sides trained in lockstep, from manual (the NumPy MLP), torch and jax (JAX + optax, the "
        "[jax] extra); torch is the reference where it runs, else jax (default: manual,torch)",
        metavar="A,B",
        type=str,
    )
    framework_defaults: bool = option(
        False,
        OPTIMIZER,
        "build the jax side's optimizer from optax's own defaults (beyond --lr) instead of torch's rule: "
        "each convention that then departs is named, with the keywords that make the two equal",
    )

    def __post_init__(self) -> None:
        for check in (_check_names, _check_numbers, _check_combinations, _check_sides):
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


def _check_sides(config: RunConfig) -> None:
    sides = tuple(config.sides)
    if len(sides) != 2 or len(set(sides)) != 2 or any(side not in SIDES for side in sides):
        raise InputError(f"--sides must be two different sides from {', '.join(SIDES)}, got {','.join(sides)!r}")
    if config.framework_defaults and "jax" not in sides:
        raise InputError("--framework-defaults compares optax's defaults with torch's: it needs jax among --sides")
    manual_only = {"--variant": config.variant, "--inject": config.inject, "--gradcheck": config.gradcheck or None}
    for name, value in manual_only.items():
        if value is not None and "manual" not in sides:
            raise InputError(f"{name} acts on the manual side: it needs manual among --sides")
    if config.world_size is not None and sides != DEFAULT_SIDES:
        raise InputError("--world-size runs the torch twin data-parallel against the manual side: --sides manual,torch")


def check_framework_defaults(config: RunConfig) -> None:
    """``--framework-defaults`` with optimizer keywords the user gave (before ``prepare`` fills in the rule's):
    each library's defaults beyond --lr are the point."""
    if config.framework_defaults and set(config.hyperparameters) - {"lr"}:
        given = ", ".join(flag(key) for key in config.hyperparameters if key != "lr")
        raise InputError(f"--framework-defaults takes each library's defaults beyond --lr; drop {given}")


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


def parse_sides(text: str) -> tuple[str, ...]:
    """``--sides manual,jax`` → ``("manual", "jax")``; the names are checked by ``RunConfig``."""
    return tuple(part.strip() for part in text.split(","))


def parse_layers(text: str) -> tuple[int, ...]:
    """``--layers 2,16,16,3`` → ``(2, 16, 16, 3)``; the widths are checked by ``RunConfig``."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InputError(f"--layers {text!r}: expected comma-separated integers such as 2,16,16,3") from None
