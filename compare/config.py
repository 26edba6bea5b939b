"""Turn command-line arguments into a fully resolved, validated run: every problem with the
user's input is raised here, as one ``InputError`` line, before anything is written."""

import argparse
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from compare import data, devices, distributed, faults
from compare.errors import InputError
from compare.npz import read_npz
from manual.init import init_state_dict
from manual.mlp import check_state_dict
from manual.optim import OPTIMIZERS
from manual.optim.variants import VARIANTS
from manual.schedules import parse_schedule
from manual.spec import MLPSpec

MAX_STEPS = 1_000_000
DTYPES = {"float64": np.float64, "float32": np.float32}
# Learning rates for the CLI when --lr is not given: torch's 1e-3 barely moves the built-in
# spirals in 500 steps, and the curves in TensorBoard should show learning.
DEFAULT_LR = {
    "sgd": 0.1,
    "momentum": 0.05,
    "nesterov": 0.05,
    "adam": 0.01,
    "adamw": 0.01,
    "rmsprop": 0.01,
    "adagrad": 0.05,
}
HIDDEN_DEFAULT = (16, 16)
# Which flags each optimizer takes: the torch keyword → the command-line flag.
FLAGS = {
    "lr": "--lr",
    "momentum": "--momentum",
    "dampening": "--dampening",
    "nesterov": "--nesterov",
    "betas": "--betas",
    "eps": "--eps",
    "weight_decay": "--weight-decay",
    "amsgrad": "--amsgrad",
    "alpha": "--alpha",
    "centered": "--centered",
    "lr_decay": "--lr-decay",
    "initial_accumulator_value": "--initial-accumulator-value",
}
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run; written into the report as ``config``."""

    optimizer: str
    hyperparameters: dict
    layers: tuple[int, ...]
    activation: str
    loss: str
    dataset: str
    weights: str | None
    steps: int
    batch_size: int
    seed: int
    dtype: str
    stop_at_first_failure: bool
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
    device: str = "cpu"  # where the torch twin runs
    world_size: int | None = None  # data-parallel ranks of the torch twin (None: one process, no DDP)

    @property
    def spec(self) -> MLPSpec:
        return MLPSpec(self.layers, self.activation, self.loss, self.dropout, self.batchnorm)

    @property
    def schedule(self) -> list | None:
        return None if self.lr_schedule is None else parse_schedule(self.lr_schedule)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Prepared:
    """A validated run: its configuration and the arrays it starts from."""

    config: RunConfig
    X: np.ndarray  # (N, D) training examples in the run's dtype
    targets: np.ndarray  # (N,) int labels or (N, C) in the run's dtype
    weights: dict[str, np.ndarray]
    X_val: np.ndarray  # (M, D) the held-out split (M may be 0)
    targets_val: np.ndarray


def streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent generators for the data, the initial weights and the batch order, so that
    changing one (say, --data) leaves the others as they were."""
    data_rng, init_rng, batch_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    return data_rng, init_rng, batch_rng


def dropout_seed(seed: int) -> int:
    """A fourth independent stream, for the manual side's dropout masks."""
    return int(np.random.SeedSequence(seed).spawn(4)[3].generate_state(1)[0])


def optimizer_name(args: argparse.Namespace) -> str:
    """The torch optimizer of the run: ``--optimizer``, or the one a ``--variant`` is compared with."""
    if args.variant is None:
        return args.optimizer or "adam"
    paired = VARIANTS[args.variant].torch_name
    if args.optimizer not in (None, paired):
        raise InputError(f"--variant {args.variant} is compared with --optimizer {paired}, not {args.optimizer}")
    return paired


def hyperparameters(args: argparse.Namespace, optimizer: str) -> dict:
    """The optimizer's torch keyword arguments: its defaults, overridden by the flags given.

    A ``--variant`` takes the hyperparameters of its textbook rule, which builds its torch twin too.
    """
    cls = VARIANTS[args.variant].optimizer if args.variant else OPTIMIZERS[optimizer]
    given = {key: getattr(args, key) for key in FLAGS if getattr(args, key) not in (None, False)}
    accepted = set(cls.__dataclass_fields__)
    for key in given:
        if key not in accepted:
            flags = ", ".join(FLAGS[k] for k in cls.__dataclass_fields__)
            what = f"--variant {args.variant}" if args.variant else f"--optimizer {optimizer}"
            raise InputError(f"{FLAGS[key]} does not apply to {what} (it takes {flags})")
    given.setdefault("lr", DEFAULT_LR[optimizer])
    for key, value in given.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{FLAGS[key]} must be a finite number, got {value}")
    try:
        return cls(**given).hyperparameters()
    except ValueError as error:
        raise InputError(f"--optimizer {optimizer}: {error}") from None


def parse_layers(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InputError(f"--layers {text!r}: expected comma-separated integers such as 2,16,16,3") from None
    if len(widths) < 2:
        raise InputError(f"--layers {text!r}: needs at least an input and an output width")
    if any(w < 1 for w in widths):
        raise InputError(f"--layers {text!r}: every width must be at least 1 (found {min(widths)})")
    return widths


def load_dataset(args: argparse.Namespace, rng: np.random.Generator) -> data.Dataset:
    if args.data is not None:
        return data.load(Path(args.data))
    return data.builtin(args.dataset or "spiral", rng)


def load_weights(path: Path, spec: MLPSpec, dtype: type) -> dict[str, np.ndarray]:
    arrays = read_npz(path, "--weights")
    try:
        check_state_dict(spec, arrays)
    except ValueError as error:
        raise InputError(f"--weights {path}: {error}") from None
    for name, array in arrays.items():
        if not np.issubdtype(array.dtype, np.floating):
            raise InputError(f"--weights {path}: weight {name!r} must be floating point, got {array.dtype}")
        if not np.all(np.isfinite(array)):
            raise InputError(f"--weights {path}: weight {name!r} holds NaN or inf")
    return {name: array.astype(dtype) for name, array in arrays.items()}


def resolve(args: argparse.Namespace) -> Prepared:
    if args.data is not None and args.dataset is not None:
        raise InputError("give either --dataset or --data, not both")
    if not 1 <= args.steps <= MAX_STEPS:
        raise InputError(f"--steps must be between 1 and {MAX_STEPS}, got {args.steps}")
    if args.seed < 0:
        raise InputError(f"--seed must be >= 0, got {args.seed}")
    optimizer = optimizer_name(args)
    hparams = hyperparameters(args, optimizer)
    if args.lr_schedule is not None:
        try:
            parse_schedule(args.lr_schedule)
        except ValueError as error:
            raise InputError(f"--lr-schedule {args.lr_schedule!r}: {error}") from None
    if args.clip_grad_norm is not None and not (math.isfinite(args.clip_grad_norm) and args.clip_grad_norm > 0):
        raise InputError(f"--clip-grad-norm must be a positive number, got {args.clip_grad_norm}")
    if not 0.0 <= args.dropout < 1.0:
        raise InputError(f"--dropout must be in [0, 1), got {args.dropout}")
    data_rng, init_rng, _ = streams(args.seed)
    dataset = load_dataset(args, data_rng)
    n, d = dataset.X.shape
    if args.layers is not None:
        layers = parse_layers(args.layers)
    elif args.loss == "bce" and dataset.has_labels:
        layers = (d, *HIDDEN_DEFAULT, 1)  # one logit for two classes
    else:
        outputs = dataset.num_outputs if dataset.has_labels else dataset.y.shape[1]
        layers = (d, *HIDDEN_DEFAULT, outputs)
    if layers[0] != d:
        raise InputError(f"--layers starts with width {layers[0]} but the data has {d} features")
    targets = data.targets(dataset, args.loss, layers[-1])
    if not 0.0 <= args.val_fraction < 1.0:
        raise InputError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    n_val = round(n * args.val_fraction)
    if n - n_val < 1:
        raise InputError(f"--val-fraction {args.val_fraction} leaves no training examples out of {n}")
    if args.resync and args.variant:
        raise InputError("--resync cannot be used with --variant: a textbook rule's state has no torch counterpart")
    if args.gradcheck and args.dtype != "float64":
        raise InputError("--gradcheck needs --dtype float64: in float32, rounding swamps finite differences")
    if args.log_every < 1:
        raise InputError(f"--log-every must be at least 1, got {args.log_every}")
    order = data_rng.permutation(n)  # the held-out split, fixed by the seed
    val, train = order[:n_val], order[n_val:]
    n = len(train)
    if not 1 <= args.batch_size <= n:
        raise InputError(f"--batch-size must be between 1 and the {n} training examples, got {args.batch_size}")
    if args.batchnorm and args.batch_size < 2:
        raise InputError("--batchnorm needs --batch-size of at least 2 (a batch of one has no variance)")
    member = distributed.membership(args.world_size)
    if member is not None:
        distributed.check(member, args.batch_size, args.batchnorm, args.device)
        if args.batchnorm and args.batch_size // member.world_size < 2:
            raise InputError("--batchnorm needs at least 2 examples per rank (--batch-size / --world-size)")
    if not (math.isfinite(args.dist_timeout) and args.dist_timeout > 0):
        raise InputError(f"--dist-timeout must be a positive number of seconds, got {args.dist_timeout}")
    devices.resolve(args.device, distributed.ranks_here(member))
    spec = MLPSpec(layers, args.activation, args.loss, args.dropout, args.batchnorm)
    dtype = DTYPES[args.dtype]
    if args.weights is not None:
        weights = load_weights(Path(args.weights), spec, dtype)
    else:
        weights = init_state_dict(spec, init_rng, dtype)
    config = RunConfig(
        optimizer=optimizer,
        hyperparameters=hparams,
        layers=layers,
        activation=args.activation,
        loss=args.loss,
        dataset=str(args.data) if args.data is not None else (args.dataset or "spiral"),
        weights=args.weights,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        dtype=args.dtype,
        stop_at_first_failure=not (args.keep_going or args.variant),
        lr_schedule=args.lr_schedule,
        clip_grad_norm=args.clip_grad_norm,
        dropout=args.dropout,
        batchnorm=args.batchnorm,
        variant=args.variant,
        inject=args.inject,
        val_fraction=args.val_fraction,
        log_every=args.log_every,
        gradcheck=args.gradcheck,
        resync=args.resync,
        device=args.device,
        world_size=member.world_size if member is not None else None,
    )
    faults.check(config)
    X = dataset.X.astype(dtype)
    targets = targets if targets.dtype.kind == "i" else targets.astype(dtype)
    return Prepared(config, X[train], targets[train], weights, X[val], targets[val])


def batch_stream(prepared: Prepared):
    """Endless (x, y) mini-batches in the order the seed fixes; both twins see each one."""
    _, _, batch_rng = streams(prepared.config.seed)
    for index in data.batches(len(prepared.X), prepared.config.batch_size, batch_rng):
        yield prepared.X[index], prepared.targets[index]
