"""From a configuration to a verdict: prepare the inputs, build both sides, run them in lockstep, write
the run directory (report.json, verdict.txt, report.html, TensorBoard events). ``compare.run(config)``
and the command line's ``run`` both go through ``run`` here; everything the user gave is checked before
anything is written.
"""

import datetime as dt
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from compare import faults
from compare.check.diagnosis import numerical
from compare.core import distributed, engine, witness64
from compare.core.engine import Lockstep, Options
from compare.core.mlp_pair import SIDE_BUILDERS, Pair, jax_side, torch_twin
from compare.core.records import RunResult, StepRecord
from compare.core.verdict import Verdict, Word, of_run
from compare.inputs import devices, safety, world
from compare.inputs.config import RunConfig, check_framework_defaults, roles
from compare.inputs.npz import write_npz
from compare.inputs.prepare import Prepared, batch_stream, prepare
from compare.inputs.seeds import dropout_seed
from compare.output import html, report
from compare.output.rundir import REPORT_HTML, VERDICT_TEXT, check_run_name, new_run_dir, run_label
from compare.output.tensorboard import RunWriters
from manual.optim import OPTIMIZERS
from manual.optim.variants import VARIANTS


@dataclass(frozen=True)
class Output:
    """Where a run writes: a new directory under ``logdir`` (``run_name``, or ``<time>-<optimizer>`` and what
    is not the default) with report.json and, unless ``tensorboard`` is off, the event files; ``json`` and
    ``save_weights`` are further files the user asked for."""

    logdir: Path | str = "runs"
    run_name: str | None = None
    tensorboard: bool = True
    json: str | None = None
    save_weights: str | None = None


@dataclass(frozen=True)
class Hooks:
    """What a caller hears while a run goes: ``announce`` once with the run's one-line description,
    ``on_step`` after each step (with the lockstep, for its evaluate), ``should_stop`` between steps."""

    announce: Callable[[str], None] = lambda line: None
    on_step: Callable[[StepRecord], None] = lambda record: None
    should_stop: Callable[[], bool] = lambda: False


def check(config: RunConfig, output: Output = Output()) -> Prepared:
    """Everything about the run that can be wrong, checked before any work starts (the JAX side, when asked
    for, is built once here: JAX missing or a rule optax cannot compute is an ``InputError``)."""
    check_run_name(output.run_name)
    files = {"--json": output.json, "--save-weights": output.save_weights}
    safety.check_outputs(Path(output.logdir), files, {"--data": config.data, "--weights": config.weights})
    check_framework_defaults(config)
    prepared = prepare(config)
    faults.check(prepared.config)
    if "jax" in prepared.config.sides:
        jax_side(pair_of(prepared, torch.device("cpu")))
    return prepared


def pair_of(prepared: Prepared, device: torch.device) -> Pair:
    """What every side of the run is built from."""
    config = prepared.config
    variant = VARIANTS[config.variant].optimizer(**config.hyperparameters) if config.variant else None
    return Pair(
        config.spec,
        prepared.weights,
        config.optimizer,
        config.hyperparameters,
        config.dtype,
        variant,
        config.schedule,
        dropout_seed(config.seed),
        device,
        faults.CATALOG[config.inject].override if config.inject else faults.NONE,
        prepared.torch_hyperparameters,
        config.framework_defaults,
    )


def build(prepared: Prepared, device: torch.device, group: distributed.Group | None, stats: bool) -> Lockstep:
    """Both sides of the run (the fault, if any, built into the manual side) and the engine."""
    config = prepared.config
    pair = pair_of(prepared, device)
    under_test, reference_name = roles(config.sides)
    if group is None:
        reference = SIDE_BUILDERS[reference_name](pair)
    else:
        reference = group.side(torch_twin(pair), config.spec, config.clip_grad_norm)
    options = Options(
        dtype=config.dtype,
        clip_grad_norm=config.clip_grad_norm,
        resync=config.resync,
        gradcheck=config.gradcheck,
        adjudicate=not (config.strict_trajectory or config.variant),  # a variant's departure is its finding
        witness_every=witness64.every(sum(w.size for w in prepared.weights.values()), OPTIMIZERS[config.optimizer])
        if config.dtype == "float32" and not config.variant
        else None,
        stats_every=config.log_every if stats else None,
    )
    return Lockstep(SIDE_BUILDERS[under_test](pair), reference, options, (under_test, reference_name))


def describe(config: RunConfig, hyperparameters: dict, where: str, run_dir: Path) -> str:
    """The run's header line: ``adam lr=0.01 betas=(0.9, 0.999) on spiral, layers 2,16,3 ...``."""
    settings = " ".join(f"{key}={_setting(value)}" for key, value in hyperparameters.items())
    return (
        f"{config.variant or config.optimizer} {settings} on {config.to_json()['dataset']}, layers "
        f"{','.join(map(str, config.layers))} {config.activation} {config.loss}, {config.dtype}, "
        f"{config.steps} steps of batch {config.batch_size}, {where} -> {run_dir}"
    )


def run(config: RunConfig, output: Output = Output(), hooks: Hooks = Hooks(), dist_timeout: float = 60.0) -> RunResult:
    """Run the check ``config`` describes; the result carries the verdict, the report and the run directory.

    A data-parallel run whose group fails ends early with ``result.aborted`` set (the report holds the
    steps done); ``hooks.should_stop`` ends it cleanly between steps (``result.complete`` False)."""
    prepared = check(config, output)
    config = prepared.config
    member = world.membership(config.world_size)
    device = devices.resolve(config.device)
    if member is not None:
        device = distributed.rank_device(device, member)
    run_dir = new_run_dir(Path(output.logdir), output.run_name, f"{{time}}-{run_label(config.to_json())}")
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    settings = devices.configure(device)
    config_json = {**config.to_json(), "device_settings": settings}
    under_test, reference_name = roles(config.sides)
    names = (under_test, reference_name)
    writers = RunWriters(run_dir, config.dtype, config.log_every, device.type, names) if output.tensorboard else None
    where = f"torch on {settings['device']}" if "torch" in names else "jax on cpu"
    if names != ("manual", "torch"):
        where = f"{under_test} against {reference_name}, " + where
    if member is not None:
        where += f" as {member.world_size} DDP ranks ({distributed.backend(device)})"
    hooks.announce(describe(config, prepared.torch_hyperparameters, where, run_dir))
    result = RunResult(keep_records=False, run_dir=run_dir)  # streamed: memory does not grow with the steps
    group = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", RuntimeWarning)  # each one counted ...
            warnings.showwarning = _counter(result.warnings)  # ... into one line, not printed per operation
            if writers:
                writers.start({**config_json, "run_dir": str(run_dir)})
            if member is not None:
                group = distributed.Group(member, device, dist_timeout, prepared)
            lockstep = build(prepared, device, group, stats=writers is not None)
            on_step = _logger(prepared, lockstep, writers, result, hooks.on_step)
            stop_early = config.stop_at_first_failure
            batches = batch_stream(prepared)
            engine.run(lockstep, batches, config.steps, stop_early, on_step, result, hooks.should_stop)
            if writers and stop_early and group is None:  # the charts show the failure in context
                writers.draw_past_failure(lockstep, batches, result, config.steps)
            if group is not None:
                group.close()
    except distributed.GroupError as error:
        result.aborted = str(error)
    finally:
        if group is not None and not group.closed:
            group.abort()
        if result.steps == 0 and result.aborted is None and not result.complete:
            _discard(run_dir, writers, result)  # stopped before the first step: nothing to keep
        else:
            diverged = report.diverged_line(result, None) is not None
            lr = prepared.torch_hyperparameters["lr"]
            look_at = safety.divergence_suspect(config, prepared.X, lr) if diverged else None
            result.diagnosis = measured(result, config, min(config.batch_size, len(prepared.X)))
            _finish(result, config, config_json, run_dir, started_at, writers, output, look_at)
    if output.save_weights and result.aborted is None and result.complete:
        manual = lockstep.manual
        write_npz(Path(output.save_weights), manual.model.state_dict() if hasattr(manual, "model") else manual.values())
    return result


def measured(result: RunResult, config: RunConfig, batch: int) -> dict | None:
    """The run's first failure measured (``compare.check.diagnosis.numerical``: a ratio N, a transpose, ...),
    as ``{findings, fix}`` in plain text; ``None`` when nothing fits, when a side raised, for a textbook
    variant (its departure is expected) and for a parameter (what departs is the update, not kept)."""
    failure, pair = result.first_failure, result.first_pair
    if failure is None or pair is None or result.raised is not None or config.variant or failure.stage == "param":
        return None
    context = numerical.Context(batch=batch, classes=config.layers[-1])
    found = numerical.diagnose([(failure.tensor, *pair)], context)
    if found is None:
        return None
    return {"findings": [found.explanation, *found.findings], "fix": found.fix}


def _setting(value: object) -> str:
    """A hyperparameter as a person writes it: ``0.01``, ``(0.9, 0.999)``, ``True``."""
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_setting(item) for item in value) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _counter(counts: dict[str, int]):
    """A ``warnings.showwarning`` that counts run-time warnings by message and shows the others."""
    show = warnings.showwarning

    def count(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, RuntimeWarning):
            counts[str(message)] = counts.get(str(message), 0) + 1
        else:
            show(message, category, filename, lineno, file, line)

    return count


def _discard(run_dir: Path, writers: RunWriters | None, result: RunResult) -> None:
    """A run stopped before its first step leaves no directory behind (its event files closed first)."""
    if writers:
        writers.finish("interrupted before the first step", Verdict(Word.INCOMPLETE, 0))
    shutil.rmtree(run_dir, ignore_errors=True)
    result.run_dir = None
    result.verdict = "INCOMPLETE: interrupted before the first step; nothing written"
    result.decision = Verdict(Word.INCOMPLETE, 0)


def _logger(prepared: Prepared, lockstep: Lockstep, writers: RunWriters | None, result: RunResult, then):
    """Each step: held-out evaluation every ``log_every`` steps, the event files, then the caller's hook."""
    every = prepared.config.log_every

    def on_step(record: StepRecord) -> None:
        if len(prepared.X_val) and engine.logs_at(record.step, every):
            metrics = lockstep.evaluate(prepared.X_val, prepared.targets_val)
            result.validation.append({"step": record.step, **metrics})
            if writers:
                writers.log_validation(record.step, metrics)
        if writers:
            writers.log_step(record, lockstep)
        then(record)

    return on_step


def _finish(result, config, config_json, run_dir, started_at, writers, output, look_at: str | None) -> None:
    result.verdict = report.verdict(result, config.steps, config.variant, look_at)
    if config.framework_defaults:
        from jax_ref import conventions  # JAX is there: the run had a jax side

        *before, last = result.verdict.splitlines()  # the convention named before the one verdict line, last
        result.verdict = "\n".join([*before, conventions.line(config.optimizer, result.passed), last])
    result.decision = of_run(result, config.variant is not None)
    if writers:
        writers.finish(result.verdict, result.decision)  # flushes every event file
    result.report = report.build(result, config_json, run_dir, started_at, look_at)
    report.write_json(run_dir / "report.json", result.report)
    report.write_text(run_dir / VERDICT_TEXT, result.verdict)  # what ``runs show`` prints back
    page = html.run_page(result.report, result.verdict, result.step_worst, run_dir.name)
    report.write_text(run_dir / REPORT_HTML, page.rstrip("\n"))  # to send to someone without TensorBoard
    if output.json:
        report.write_json(Path(output.json), result.report)
