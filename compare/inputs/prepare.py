"""From a ``RunConfig`` to the arrays a run starts from: the data (split into training and held-out
examples), the initial weights, and the configuration resolved against them (layer widths from the
data, every hyperparameter). Every problem is an ``InputError`` raised before anything is written."""

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from compare.errors import InputError
from compare.inputs import data, devices, safety, world
from compare.inputs.config import DTYPES, RunConfig
from compare.inputs.flags import flag
from compare.inputs.npz import read_npz
from compare.inputs.seeds import streams
from manual.init import init_state_dict
from manual.mlp import check_state_dict
from manual.optim import REGISTRY
from manual.optim.variants import VARIANTS
from manual.spec import MLPSpec

HIDDEN_DEFAULT = (16, 16)


@dataclass(frozen=True)
class Prepared:
    """A validated run: its resolved configuration and the arrays it starts from."""

    config: RunConfig
    X: np.ndarray  # (N, D) training examples in the run's dtype
    targets: np.ndarray  # (N,) int labels or (N, C) in the run's dtype
    weights: dict[str, np.ndarray]
    X_val: np.ndarray  # (M, D) the held-out split (M may be 0)
    targets_val: np.ndarray
    # What torch's optimizer is built from: the keyword arguments the user gave (and the name's default
    # lr), never the manual rule's resolved defaults, which would carry a wrong default to both sides.
    torch_hyperparameters: dict


def optimizer_name(config: RunConfig) -> str:
    """The torch optimizer of the run: ``optimizer``, or the one a ``variant`` is compared with."""
    if config.variant is None:
        return config.optimizer or "adam"
    if config.variant not in VARIANTS:
        raise InputError(f"--variant must be one of {', '.join(VARIANTS)}, got {config.variant!r}")
    paired = VARIANTS[config.variant].torch_name
    if config.optimizer not in (None, paired):
        raise InputError(f"--variant {config.variant} is compared with --optimizer {paired}, not {config.optimizer}")
    return paired


def hyperparameters(config: RunConfig, optimizer: str) -> dict:
    """The optimizer's torch keyword arguments: its defaults, overridden by those given.

    A ``variant`` takes the hyperparameters of its textbook rule, which builds its torch twin too."""
    if optimizer not in REGISTRY:
        raise InputError(f"--optimizer must be one of {', '.join(REGISTRY)}, got {optimizer!r}")
    cls = VARIANTS[config.variant].optimizer if config.variant else REGISTRY[optimizer].rule
    accepted = set(cls.__dataclass_fields__)
    given = dict(config.hyperparameters)
    for key in given:
        if key not in accepted:
            flags = ", ".join(flag(k) for k in cls.__dataclass_fields__)
            what = f"--variant {config.variant}" if config.variant else f"--optimizer {optimizer}"
            raise InputError(f"{flag(key)} does not apply to {what} (it takes {flags})")
    given.setdefault("lr", REGISTRY[optimizer].default_lr)
    try:
        return cls(**given).hyperparameters()
    except (ValueError, TypeError) as error:
        raise InputError(f"--optimizer {optimizer}: {error}") from None


def load_dataset(config: RunConfig, rng: np.random.Generator) -> data.Dataset:
    if config.data is not None:
        safety.check_input_file("--data", config.data)
        safety.check_archive_fits("--data", Path(config.data))
        return data.load(Path(config.data))
    return data.builtin(config.dataset or "spiral", rng)


def load_weights(path: Path, spec: MLPSpec, dtype: type) -> dict[str, np.ndarray]:
    arrays = read_npz(path, "--weights")
    try:
        check_state_dict(spec, arrays)
    except ValueError as error:
        raise InputError(f"--weights {path}: {error}") from None
    for name, array in arrays.items():
        if name.endswith(".num_batches_tracked"):  # BatchNorm's step counter, as --save-weights writes it
            if array.dtype.kind not in "iu" or array.shape != ():
                raise InputError(f"--weights {path}: {name!r} must be an integer count, got {array.dtype}")
            continue
        if not np.issubdtype(array.dtype, np.floating):
            raise InputError(f"--weights {path}: weight {name!r} must be floating point, got {array.dtype}")
        if not np.all(np.isfinite(array)):
            raise InputError(f"--weights {path}: weight {name!r} holds NaN or inf")
    safety.check_cast("--weights", str(path), arrays, dtype)
    return {
        name: array.astype(np.int64) if array.dtype.kind in "iu" else array.astype(dtype)
        for name, array in arrays.items()
    }


def check_batchnorm_fan_in(config: RunConfig, layers: tuple[int, ...]) -> None:
    """A Linear of fan-in 1 feeding BatchNorm is refused: each row of its weight is one number whose scale
    BatchNorm divides away, so its gradient is exactly zero in exact arithmetic; both sides can only
    compute rounding noise there (adaptive optimizers turn it into steps of size lr), so the two
    trajectories part by construction and no verdict on them would mean anything."""
    if config.batchnorm and 1 in layers[:-2]:
        where = "the data has one feature" if layers[0] == 1 else f"--layers {','.join(map(str, layers))}"
        raise InputError(
            f"--batchnorm after a Linear of fan-in 1 ({where}): BatchNorm divides that layer's weight scale "
            "away, its gradient is exactly zero and only rounding noise is left to compare; use a width of at "
            "least 2 before every hidden layer, or no --batchnorm"
        )


def default_layers(config: RunConfig, dataset: data.Dataset) -> tuple[int, ...]:
    d = dataset.X.shape[1]
    if config.loss == "bce" and dataset.has_labels:
        return (d, *HIDDEN_DEFAULT, 1)  # one logit for two classes
    outputs = dataset.num_outputs if dataset.has_labels else dataset.y.shape[1]
    return (d, *HIDDEN_DEFAULT, outputs)


def check_processes(config: RunConfig, batch_size: int) -> None:
    """Data parallelism and the device, checked before any process starts."""
    member = world.membership(config.world_size)
    if member is not None:
        world.check(member, batch_size, config.batchnorm, config.device)
        if config.batchnorm and batch_size // member.world_size < 2:
            raise InputError("--batchnorm needs at least 2 examples per rank (--batch-size / --world-size)")
    devices.resolve(config.device, world.ranks_here(member))


def prepare(config: RunConfig) -> Prepared:
    optimizer = optimizer_name(config)
    hparams = hyperparameters(config, optimizer)
    data_rng, init_rng, _ = streams(config.seed)
    dataset = load_dataset(config, data_rng)
    n, d = dataset.X.shape
    layers = config.layers if config.layers is not None else default_layers(config, dataset)
    if layers[0] != d:
        raise InputError(f"--layers starts with width {layers[0]} but the data has {d} features")
    check_batchnorm_fan_in(config, tuple(layers))
    dtype = DTYPES[config.dtype]
    source = f"the labels (largest {dataset.num_outputs - 1})" if config.layers is None and dataset.has_labels else ""
    safety.check_memory(tuple(layers), config.batch_size, n, np.dtype(dtype).itemsize, source)
    targets = data.targets(dataset, config.loss, layers[-1])
    n_val = round(n * config.val_fraction)
    if n - n_val < 1:
        raise InputError(f"--val-fraction {config.val_fraction} leaves no training examples out of {n}")
    order = data_rng.permutation(n)  # the held-out split, fixed by the seed
    val, train = order[:n_val], order[n_val:]
    if not config.batch_size <= len(train):
        raise InputError(
            f"--batch-size must be between 1 and the {len(train)} training examples, got {config.batch_size}"
        )
    check_processes(config, config.batch_size)
    member = world.membership(config.world_size)
    resolved = replace(
        config,
        optimizer=optimizer,
        hyperparameters=hparams,
        layers=tuple(layers),
        world_size=member.world_size if member is not None else None,
    )
    if config.data is not None:
        safety.check_cast("--data", config.data, {"X": dataset.X, "y": dataset.y}, dtype)
    if config.weights is not None:
        weights = load_weights(Path(config.weights), resolved.spec, dtype)
    else:
        weights = init_state_dict(resolved.spec, init_rng, dtype)
    X = dataset.X.astype(dtype)
    targets = targets if targets.dtype.kind == "i" else targets.astype(dtype)
    torch_hparams = hparams if config.variant else {"lr": REGISTRY[optimizer].default_lr, **config.hyperparameters}
    return Prepared(resolved, X[train], targets[train], weights, X[val], targets[val], torch_hparams)


def batch_stream(prepared: Prepared):
    """Endless (x, y) mini-batches in the order the seed fixes; both twins (and every rank) see each one."""
    _, _, batch_rng = streams(prepared.config.seed)
    for index in data.batches(len(prepared.X), prepared.config.batch_size, batch_rng):
        yield prepared.X[index], prepared.targets[index]
