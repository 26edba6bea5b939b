"""What a run is, once, in TensorBoard: the ``summary`` sub-run holds the HParams row (one column per
setting, the verdict and the worst max_rel as metrics), the verdict text with the configuration under it,
and the custom-scalars layout. Runs and experiments write it the same way.

HParams: every run declares the same experiment (``COLUMNS`` and ``METRICS``, from the optimizer registry),
so whichever run TensorBoard reads it from, the columns and their types are the same: numbers are numbers
(sortable), ``betas`` is ``beta1`` and ``beta2``. TensorBoard's HParams tab shows five setting columns by
default (those that differ between runs first), each 10em wide, then the metrics, and orders the
columns by name whatever the declaration says, so the five that tell runs apart are named to sort first
and carry their plain names as display names: ``1.verdict`` (``PASS``, ``FAIL step 3 grad``, ...),
``2.worst`` (the worst max_rel / tolerance; a drift-adjudicated pass, above 1, reads ``PASS (drift x8.33
from 12)`` in the verdict column), ``3.optimizer``, ``4.lr`` and ``5.special`` (what was
unusual: an injected fault, a textbook variant, a schedule, a data file): the verdict is on screen at
1400 px, where the metric columns come after a scroll. The row is written when the run ends. The run
itself is the Trial ID (``trial_name``: what is special first, its start time last, so a narrow column
still tells runs apart), not a column.

The metrics are shown in the order declared: the verdict (1 pass, 0 not), the worst max_rel / tolerance
(under 1 passes, whatever the dtype), and where it first failed: the step and the stage (its number in
``STAGES``, 1 forward ... 6 eval); a run that passed has no first-failure value (an empty cell).
"""

import dataclasses
import re
import textwrap

from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams
from torch.utils.tensorboard import summary

from compare.core.stages import STAGES
from compare.core.verdict import Verdict, Word
from compare.output.events import EventWriter, scalar_summary
from manual.optim import REGISTRY

SUMMARY_RUN = "summary"
PASSED = "summary/passed"  # 1 when the verdict is PASS, 0 otherwise
WORST = "summary/worst_over_tolerance"  # the largest max_rel / tolerance of any stage at any step
FAILED_STEP = "summary/first_failure_step"  # only when the run failed
FAILED_STAGE = "summary/first_failure_stage"  # 1 + the stage's index in STAGES, only when the run failed
METRICS = {  # tag: (column name, kept short for a narrow table; its description, shown on hovering)
    PASSED: ("verdict", "1 when parity held (PASS), 0 otherwise"),
    WORST: ("worst max_rel/tol", "the largest max_rel / tolerance of any stage at any step: under 1 passes"),
    FAILED_STEP: ("failed at step", "the first step that failed (empty when the run passed)"),
    FAILED_STAGE: ("stage", "the first failure's stage: " + ", ".join(f"{i} {s}" for i, s in enumerate(STAGES, 1))),
}
TIME_PREFIX = re.compile(r"^(\d{8})-(\d{6})-(.+)$")  # a run directory named by compare.output.rundir
DECISIONS = tuple(f"{word}:" for word in Word)  # how a verdict line starts (``compare.core.verdict``)
TEXT_WIDTH = 100  # the verdict's long lines are wrapped here: TensorBoard cuts a code line at the card's edge

FIRST = ("verdict", "worst", "optimizer", "lr", "special")  # shown by default (TensorBoard shows five)
SHOWN_AS = {"worst": "worst max_rel/tol"}  # display names other than the column's own
SETTINGS = (
    "dtype",
    "activation",
    "inject",
    "variant",
    "lr_schedule",
    "dataset",
    "layers",
    "loss",
    "steps",
    "batch_size",
    "seed",
    "dropout",
    "batchnorm",
    "clip_grad_norm",
    "device",
    "world_size",
    "resync",
)


# A pair-valued hyperparameter is two columns, named as torch's functional API names them.
PAIRS = {"betas": ("beta1", "beta2"), "etas": ("etaminus", "etaplus"), "step_sizes": ("step_size_min", "step_size_max")}


def _pair(name: str) -> tuple[str, str]:
    return PAIRS.get(name, (f"{name}_0", f"{name}_1"))


def _optimizer_fields() -> dict[str, object]:
    """Every optimizer hyperparameter with a default, over the registry (each pair, ``betas``, split in two)."""
    found: dict[str, object] = {}
    for entry in REGISTRY.values():
        for field in dataclasses.fields(entry.rule):
            default = field.default if field.default is not dataclasses.MISSING else 0.0
            if isinstance(default, tuple):
                found |= dict.fromkeys(_pair(field.name), 0.0)
            elif field.name != "lr":
                found.setdefault(field.name, default)
    return found


OPTIMIZER_FIELDS = _optimizer_fields()
BOOLEAN = {"batchnorm", "resync", *(name for name, value in OPTIMIZER_FIELDS.items() if isinstance(value, bool))}
NUMERIC = {
    "worst",
    "lr",
    "steps",
    "batch_size",
    "seed",
    "dropout",
    "clip_grad_norm",
    "world_size",
    *OPTIMIZER_FIELDS,
} - BOOLEAN
COLUMNS = (*FIRST, *SETTINGS, *OPTIMIZER_FIELDS)
NAMES = {name: f"{i}.{name}" for i, name in enumerate(FIRST, start=1)} | {name: name for name in COLUMNS[len(FIRST) :]}


def column_type(name: str) -> int:
    if name in BOOLEAN:
        return api_pb2.DATA_TYPE_BOOL
    return api_pb2.DATA_TYPE_FLOAT64 if name in NUMERIC else api_pb2.DATA_TYPE_STRING


def experiment_summary() -> Summary:
    """The HParams experiment every run declares, identical in each: each column typed, no domain (a
    domain would be one run's values, and the runs share one declaration)."""
    experiment = api_pb2.Experiment(
        hparam_infos=[
            api_pb2.HParamInfo(name=NAMES[name], display_name=SHOWN_AS.get(name, name), type=column_type(name))
            for name in COLUMNS
        ],
        metric_infos=[
            api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag), display_name=name, description=description)
            for tag, (name, description) in METRICS.items()
        ],
    )
    content = metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(experiment=experiment))
    return Summary(value=[Summary.Value(tag=metadata.EXPERIMENT_TAG, metadata=content, tensor=metadata.NULL_TENSOR)])


def special(config: dict) -> str:
    """What sets a run apart from a plain check, in a few words ("" for a plain one)."""
    parts = [f"experiment {config['experiment']}"] if config.get("experiment") else []
    for key, label in (("inject", "inject"), ("variant", "variant"), ("lr_schedule", "schedule")):
        if config.get(key):
            parts.append(f"{label} {config[key]}")
    if config.get("dataset") and str(config["dataset"]).endswith(".npz"):
        parts.append(f"data {str(config['dataset']).rsplit('/', 1)[-1]}")
    for key, label in (("resync", "resync"), ("gradcheck", "gradcheck"), ("batchnorm", "batchnorm")):
        if config.get(key):
            parts.append(label)
    if config.get("world_size"):
        parts.append(f"DDP x{config['world_size']}")
    if config.get("device", "cpu") != "cpu":
        parts.append(str(config["device"]))
    return ", ".join(parts)


def trial_name(run: str) -> str:
    """The HParams Trial ID of a run: ``20261203-041233-adam-f32`` reads ``adam-f32 12-03 04:12:33``; an
    experiment's sub-run ``learning-rate/lr-0.3`` reads ``lr-0.3 · learning-rate`` (the column shows about
    15 characters: the sub-runs told apart by their first ones)."""
    if "/" in run:
        experiment, subrun = run.split("/", 1)
        return f"{subrun} · {experiment}"
    match = TIME_PREFIX.match(run)
    if match is None:
        return run
    day, time, rest = match.groups()
    return f"{rest} {day[4:6]}-{day[6:]} {time[:2]}:{time[2:4]}:{time[4:]}"


def row(config: dict) -> dict[str, object]:
    """One HParams row: the run's configuration, one value per declared column it has (keyed by ``NAMES``)."""
    flat = {key: value for key, value in config.items() if key != "hyperparameters"}
    for key, value in (config.get("hyperparameters") or {}).items():
        if isinstance(value, list | tuple):
            flat |= dict(zip(_pair(key), value, strict=True))
        else:
            flat[key] = value
    if isinstance(flat.get("layers"), list | tuple):
        flat["layers"] = ",".join(map(str, flat["layers"]))
    flat |= {"special": special(config)}
    values: dict[str, object] = {}
    for name in COLUMNS:
        value = flat.get(name)
        if value is None:
            continue
        if name in BOOLEAN:
            values[NAMES[name]] = bool(value)
        elif name in NUMERIC:
            values[NAMES[name]] = float(value)
        else:
            values[NAMES[name]] = str(value)
    return values


def verdict_markdown(verdict: str, config: dict) -> str:
    """The verdict first (its decision lines as headings, then the full text, wrapped), the configuration
    once, as a table."""
    lines = verdict.splitlines()
    heads = [line for line in lines if line.startswith(DECISIONS)]
    wrapped = []
    for line in lines:
        wrapped += textwrap.wrap(line, TEXT_WIDTH, subsequent_indent="      ", drop_whitespace=False) or [""]
    table = ["| setting | value |", "|---|---|"]
    table += [f"| {key} | {_cell(value)} |" for key, value in config.items()]
    return "\n\n".join(
        [*(f"**{head}**" for head in heads), "    " + "\n    ".join(wrapped), "**configuration**", "\n".join(table)]
    )


def _cell(value: object) -> str:
    """A setting as a person writes it: ``lr=0.01 betas=(0.9, 0.999)``, ``2, 16, 16, 3``, not a Python dict."""
    if isinstance(value, dict):
        value = " ".join(f"{key}={_cell(item)}" for key, item in value.items())
    elif isinstance(value, list | tuple):
        value = "(" + ", ".join(_cell(item) for item in value) + ")"
    return str(value).replace("|", "\\|").replace("\n", " ")


class Overview:
    """The ``summary`` sub-run of a run: the HParams declaration and the layout when it starts; the
    verdict, the metrics and the run's HParams row when it ends (the row holds the verdict and the worst
    max_rel / tolerance as its first columns, so a run appears in the HParams table once it has ended)."""

    def __init__(self, writer: EventWriter, run: str, config: dict, layout: dict | None) -> None:
        self.writer = writer
        self.run = run
        self.config = config
        writer.add_summary(experiment_summary())
        if layout is not None:
            writer.add_summary(summary.custom_scalars(layout))
        writer.flush()

    def finish(
        self, verdict: str, decided: Verdict, worst_ratio: float, step: int, failure: tuple[int, str] | None = None
    ) -> None:
        """The verdict text (with the configuration under it) and the HParams metrics, at ``step``: ``decided``
        the run's verdict (its cell is the verdict column: a drift-adjudicated pass says so beside its worst
        max_rel / tolerance above 1), ``worst_ratio`` the worst max_rel / tolerance, ``failure`` the first
        failure's (step, stage)."""
        self.writer.add_summary(summary.text("verdict", verdict_markdown(verdict, self.config)), step)
        values = row(self.config) | {NAMES["verdict"]: decided.cell(tensor=False), NAMES["worst"]: worst_ratio}
        passed = decided.passed
        self.writer.add_summary(hparams.hparams_pb(values, trial_id=trial_name(self.run)), step)
        metrics = {PASSED: float(passed), WORST: worst_ratio}
        if failure is not None and not passed:
            stage = STAGES.index(failure[1]) + 1 if failure[1] in STAGES else 0  # 0: not a stage (a side raised)
            metrics |= {FAILED_STEP: float(failure[0]), FAILED_STAGE: float(stage)}
        self.writer.add_summary(scalar_summary(metrics), step)
        self.writer.flush()
