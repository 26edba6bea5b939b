"""The one place run directories are made: a new directory per run, never reused or overwritten, named
by what sets the run apart (``run_label``), so a list of twenty runs reads without opening any."""

import datetime as dt
import re
from pathlib import Path

from compare.errors import InputError
from compare.inputs.config import RUN_NAME
from manual.optim import REGISTRY

DEFAULTS = {"dtype": "float64", "activation": "relu", "loss": "cross_entropy", "dataset": "spiral"}
SHORT = {"float32": "f32", "float64": "f64", "leaky_relu": "leaky", "cross_entropy": "ce"}
VERDICT_TEXT = "verdict.txt"  # a run's verdict as the terminal showed it, for ``runs show``
REPORT_HTML = "report.html"  # the verdict as one self-contained page (``compare.output.html``)
LABEL_LENGTH = 48  # the label is cut here (a run name stays readable in a table); the report has the rest


def run_label(config: dict) -> str:
    """What a run's directory is named after its start time: the optimizer (or the textbook variant run
    against it), then only what is not the default, most telling first: the injected fault, the lr, the
    schedule, the dtype, the activation, then the rest (``adam``, ``classic_momentum-step``,
    ``adam-inject-bias-grad-averaged``, ``sgd-lr0.3-f32-tanh``). ``config``: the report's ``config``
    (``RunConfig.to_json()``)."""
    optimizer = str(config.get("optimizer") or "adam")
    parts = [str(config["variant"])] if config.get("variant") else [optimizer]  # a variant names its optimizer
    if config.get("inject"):
        parts.append(f"inject-{config['inject']}")
    lr = (config.get("hyperparameters") or {}).get("lr")
    entry = REGISTRY.get(optimizer)
    if lr is not None and entry is not None and float(lr) != entry.default_lr:
        parts.append(f"lr{float(lr):g}")
    if config.get("lr_schedule"):
        parts.append("+".join(part.split(":")[0] for part in str(config["lr_schedule"]).split(",")))
    for key, default in DEFAULTS.items():
        value = str(config.get(key) or default)
        if value != default:
            parts.append("data" if value.endswith(".npz") else SHORT.get(value, value))
    flags = {"batchnorm": "bn", "clip_grad_norm": "clip", "resync": "resync", "gradcheck": "gradcheck"}
    parts += [label for key, label in flags.items() if config.get(key)]
    if config.get("dropout"):
        parts.append(f"drop{float(config['dropout']):g}")
    sides = list(config.get("sides") or ("manual", "torch"))
    if sides != ["manual", "torch"]:
        parts.append("-".join(sides))  # manual-jax, torch-jax
    if config.get("framework_defaults"):
        parts.append("framework-defaults")
    if config.get("world_size"):
        parts.append(f"ddp{config['world_size']}")
    if str(config.get("device") or "cpu") != "cpu":
        parts.append(str(config["device"]).split(":")[0])
    label = re.sub(r"[^A-Za-z0-9._-]", "_", "-".join(parts))
    return label[:LABEL_LENGTH].rstrip("-_.")


def check_run_name(run_name: str | None) -> None:
    if run_name is not None and not RUN_NAME.fullmatch(run_name):
        raise InputError(f"--run-name {run_name!r}: use letters, digits, '.', '_' and '-' (no slashes)")


def new_run_dir(logdir: Path, run_name: str | None, template: str) -> Path:
    """Create a fresh run directory: ``run_name``, or ``template`` with ``{time}`` filled in (then ``-2``,
    ``-3``, ... if runs started in the same second)."""
    check_run_name(run_name)
    if logdir.exists() and not logdir.is_dir():
        raise InputError(f"--logdir {logdir}: exists and is not a directory")
    names = [run_name] if run_name is not None else candidate_names(template)
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        for name in names:
            try:
                (logdir / name).mkdir()
                return logdir / name
            except FileExistsError:
                continue
    except OSError as error:
        raise InputError(f"--logdir {logdir}: cannot create a run directory ({error.strerror})") from None
    if run_name is not None:
        raise InputError(f"run directory {logdir / run_name} already exists; choose another --run-name")
    raise InputError(f"--logdir {logdir}: too many runs named {names[0]}*")


def candidate_names(template: str) -> list[str]:
    first = template.format(time=f"{dt.datetime.now():%Y%m%d-%H%M%S}")
    return [first, *(f"{first}-{i}" for i in range(2, 1000))]
