"""The lockstep engine: one batch to both twins, then every tensor compared, stage by stage.

Stages, in the order a step computes them (the first failure is the earliest in this order):

* ``forward``: every layer's output, ``<i>.out`` for layer ``i`` of the Sequential;
* ``loss``: the scalar loss;
* ``grad``: in chain-rule order from the loss down, dL/d``<i>.out`` and each layer's
  ``<i>.weight`` / ``<i>.bias`` gradient; with clipping, then ``total_norm`` and every
  ``<param>.clipped`` gradient;
* ``state``: every optimizer-state tensor after the update, ``<param>.<key>``
  (``momentum_buffer``, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``, ``step``);
* ``state``: also the learning rate used (``lr``) and BatchNorm's ``running_mean``,
  ``running_var`` and ``num_batches_tracked``;
* ``param``: every parameter after the update;
* ``eval`` (models with Dropout or BatchNorm only): every layer's output in evaluation mode,
  on the same batch, after the update.
"""

import copy
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from compare import gradcheck, scales
from compare.gradcheck import Witness
from compare.metrics import TensorDiff, diff, worst_elements
from compare.tolerances import STAGES, tolerance
from manual import schedules as manual_schedules
from manual.clip import clip_grad_norm as manual_clip_grad_norm
from manual.layers import Dropout
from manual.mlp import MLP
from manual.optim import OPTIMIZERS
from manual.spec import MLPSpec
from torch_ref import InjectedMasks, build_twin
from torch_ref.optim import named_state


@dataclass(frozen=True)
class Check:
    """One tensor compared at one step and stage."""

    step: int
    stage: str
    tensor: str
    diff: TensorDiff
    max_rel: float  # the tolerance it was held to
    worst: tuple[dict, ...] = ()  # side-by-side elements, filled only when it fails

    @property
    def passed(self) -> bool:
        return self.diff.within(self.max_rel)


@dataclass
class StepRecord:
    step: int
    loss_manual: float
    loss_torch: float
    lr: float
    checks: list[Check]
    # {side: {"grad_norm" | "param_norm" | "update_ratio": {param name: value}}}, when collected
    stats: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    gradcheck: list[Witness] = field(default_factory=list)  # finite differences, when asked for

    @property
    def first_failure(self) -> Check | None:
        return next((check for check in self.checks if not check.passed), None)

    def worst_by_stage(self) -> dict[str, Check]:
        """For each stage, the check with the largest ``max_rel`` (ties: the earliest)."""
        worst: dict[str, Check] = {}
        for check in self.checks:
            if check.stage not in worst or check.diff.max_rel > worst[check.stage].diff.max_rel:
                worst[check.stage] = check
        return worst


class Lockstep:
    """Both twins and their optimizers (and optional schedules and clipping), advanced together."""

    def __init__(
        self,
        manual_model: MLP,
        manual_optimizer,
        torch_model: nn.Sequential,
        torch_loss: nn.Module,
        torch_optimizer: torch.optim.Optimizer,
        dtype: str,
        manual_schedule=None,
        torch_schedule=None,
        clip_grad_norm: float | None = None,
    ) -> None:
        self.manual_model = manual_model
        self.manual_optimizer = manual_optimizer
        self.manual_state = manual_optimizer.init(manual_model.named_parameters())
        self.torch_model = torch_model
        self.torch_loss = torch_loss
        self.torch_optimizer = torch_optimizer
        self.dtype = dtype
        self.manual_schedule = manual_schedule
        self.torch_schedule = torch_schedule
        self.clip_grad_norm = clip_grad_norm
        self.manual_clip = manual_clip_grad_norm  # replaceable, like the manual optimizer
        self.masks = InjectedMasks(torch_model)
        self.device = next(torch_model.parameters()).device
        # A textbook variant keeps some state torch has no counterpart for: compare only the rest.
        self.comparable_state = getattr(manual_optimizer, "comparable_state", None)
        self.stats_every: int | None = None  # per-parameter norms every K steps (for TensorBoard), or never
        self._before: dict[str, dict[str, np.ndarray]] = {}  # {side: {param: value before the update}}, reused
        # After each step, copy torch's parameters, buffers and optimizer state into the manual side, so
        # every step starts from identical values: what is left is that step's own difference.
        self.resync = False
        # Compare the forward, loss and gradients on a second thread while the manual optimizer steps,
        # where that is safe (see _overlaps); by default for models large enough to gain from it.
        parameters = sum(param.size for param in manual_model.named_parameters().values())
        self.background = parameters >= BACKGROUND_MIN_PARAMETERS
        # Finite differences at step 1 and at the first step whose forward, loss or gradients disagree.
        self.gradcheck = False
        self._gradcheck_rng = np.random.default_rng(0)
        self._gradchecked_failure = False
        # torch's forward and backward on a batch, ``(x, y, dropout masks) -> (layer outputs, loss)``:
        # this process's by default; compare.distributed puts a data-parallel one in its place.
        self.torch_pass = self._torch_train_pass

    def step(self, step: int, x: np.ndarray, y: np.ndarray) -> StepRecord:
        checks = Checks(step, self.dtype, self.device.type, background=self._overlaps())
        model, tmodel = self.manual_model, self.torch_model
        before = copy.deepcopy(model) if self.gradcheck else None
        model.train()
        tmodel.train()
        outs = model.forward(x)
        loss_manual = model.loss.forward(outs[-1], y)
        douts = model.backward(model.loss.backward())
        masks = {i: layer.mask for i, layer in enumerate(model.layers) if isinstance(layer, Dropout)}
        touts, loss_torch = self.torch_pass(x, y, masks)

        inputs = [torch.from_numpy(x).to(self.device), *touts[:-1]]  # what each torch module received
        for i, (a, b) in enumerate(zip(outs, touts, strict=True)):
            checks.add("forward", f"{i}.out", a, b, scales.forward_floor(tmodel[i], inputs[i]))
        loss_floor = scales.loss_floor(self.torch_loss, touts[-1], y)
        checks.add("loss", "loss", np.float64(loss_manual), loss_torch.detach(), loss_floor)
        manual_grads = model.named_grads()
        torch_params = dict(tmodel.named_parameters())
        conditioning: dict[str, float] = {}  # per parameter: how much its gradient cancelled (≥ 1)
        # Each dL/d(i.out)'s floor is the size of the terms it came from, carried back through the chain
        # rule; the loss's own gradient starts it (near a minimum, p − y cancels but p and y do not).
        floor = scales.loss_grad_floor(self.torch_loss, touts[-1], y)
        for i in reversed(range(len(outs))):
            if i + 1 < len(outs):
                floor = scales.input_grad_floor(tmodel[i + 1], touts[i], max(scales.amax(touts[i + 1].grad), floor))
            checks.add("grad", f"{i}.out", douts[i], touts[i].grad, floor)
            g_scale = max(scales.amax(touts[i].grad), floor)
            floors = scales.param_grad_floors(tmodel[i], inputs[i], g_scale)
            for key in model.layers[i].params:
                name = f"{i}.{key}"
                checks.add("grad", name, manual_grads[name], torch_params[name].grad, floors[key])
                conditioning[name] = scales.conditioning(floors[key], torch_params[name].grad)
        witnesses = self._witnesses(step, before, x, y, checks, manual_grads, torch_params)
        if self.clip_grad_norm is not None:
            norm_manual = self.manual_clip(manual_grads, self.clip_grad_norm)
            norm_torch = torch.nn.utils.clip_grad_norm_(tmodel.parameters(), self.clip_grad_norm, foreach=False)
            checks.add("grad", "total_norm", np.float64(norm_manual), norm_torch)
            for name, grad in manual_grads.items():
                checks.add("grad", f"{name}.clipped", grad, torch_params[name].grad)

        lr_manual, lr_torch = float(self.manual_optimizer.lr), float(self.torch_optimizer.param_groups[0]["lr"])
        if checks.wrong_shape:
            # A gradient of the wrong shape cannot update its parameter: the finding is recorded, the step
            # ends. torch, the reference, still takes its step (its data-parallel replicas take theirs).
            self.torch_optimizer.step()
            self._schedules_step()
            return StepRecord(step, loss_manual, float(loss_torch.item()), lr_torch, checks.collect(), {}, witnesses)
        before = self._snapshot() if self.stats_every and logs_at(step, self.stats_every) else None
        checks.compare_in_background()
        self.manual_optimizer.step(model.named_parameters(), manual_grads, self.manual_state)
        checks.collect()  # before torch's step, which wants both cores
        self.torch_optimizer.step()
        stats = self._stats(before) if before is not None else {}

        checks.add("state", "lr", np.float64(lr_manual), np.float64(lr_torch))
        torch_state = named_state(self.torch_optimizer, tmodel)
        for name, manual_entries in self.manual_state.items():
            keys = set(manual_entries) | set(torch_state[name])
            if self.comparable_state is not None:
                keys &= self.comparable_state
            for key in sorted(keys):
                amplification = scales.state_amplification(key, conditioning.get(name, 1.0))
                checks.add_state(f"{name}.{key}", manual_entries.get(key), torch_state[name].get(key), amplification)
        torch_buffers = dict(tmodel.named_buffers())
        for name, buffer in model.named_buffers().items():
            checks.add_state(name, buffer.item() if buffer.dtype.kind == "i" else buffer, torch_buffers[name])
        for name, param in model.named_parameters().items():
            checks.add("param", name, param, torch_params[name].detach())

        if model.spec.mode_dependent:
            model.eval()
            tmodel.eval()
            with torch.no_grad():
                touts = self._torch_forward(x, keep_grads=False)
            inputs = [torch.from_numpy(x).to(self.device), *touts[:-1]]
            for i, (a, b) in enumerate(zip(model.forward(x), touts, strict=True)):
                checks.add("eval", f"{i}.out", a, b, scales.forward_floor(tmodel[i], inputs[i]))
        self._schedules_step()
        if self.resync:
            self._resync(torch_state)
        return StepRecord(step, loss_manual, float(loss_torch.item()), lr_torch, checks.collect(), stats, witnesses)

    def _torch_train_pass(
        self, x: np.ndarray, y: np.ndarray, masks: dict[int, np.ndarray | None]
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """torch's forward and backward on the batch: every layer's output (its ``.grad`` dL/d output kept)
        and the loss. ``masks``: the dropout masks NumPy drew, by layer index, injected into torch."""
        for i, mask in masks.items():
            if mask is not None:
                self.masks.set(i, mask, self.device)
        self.torch_optimizer.zero_grad(set_to_none=True)
        touts = self._torch_forward(x, keep_grads=True)
        loss = self.torch_loss(touts[-1], torch.from_numpy(y).to(self.device))
        loss.backward()
        return touts, loss

    def _schedules_step(self) -> None:
        if self.manual_schedule is not None:
            self.manual_schedule.step()
            self.torch_schedule.step()

    def _overlaps(self) -> bool:
        """Whether this step's forward, loss and gradient comparisons may run on a second thread while the
        manual optimizer steps (NumPy's element-wise work uses one core; comparing takes the other). Only
        when nothing writes to the gradients meanwhile: no clipping (it scales them in place), no
        finite-difference witnesses (they need the verdicts first), and one of this package's own
        optimizers, none of which writes to a gradient (a rule under test might)."""
        return (
            self.background
            and self.clip_grad_norm is None
            and not self.gradcheck
            and type(self.manual_optimizer) in BACKGROUND_SAFE_OPTIMIZERS
        )

    def _resync(self, torch_state: dict[str, dict]) -> None:
        """Torch's values into the manual side's own arrays (copied, never shared)."""
        live = {**self.manual_model.named_parameters(), **self.manual_model.named_buffers()}
        for name, tensor in self.torch_model.state_dict().items():
            live[name][...] = tensor.detach().cpu().numpy()
        for name, entries in self.manual_state.items():
            for key, value in torch_state[name].items():
                if key not in entries or value is None:
                    continue
                if isinstance(value, int) or entries[key] is None:
                    entries[key] = value if isinstance(value, int) else value.copy()
                else:
                    entries[key][...] = value

    def _witnesses(self, step, before, x, y, checks: "Checks", manual_grads, torch_params) -> list[Witness]:
        if before is None:
            return []
        failed = any(not check.passed for check in checks.collect())
        if not (step == 1 or (failed and not self._gradchecked_failure)):
            return []
        self._gradchecked_failure |= failed
        torch_grads = {name: p.grad.detach().cpu().numpy() for name, p in torch_params.items()}
        return gradcheck.witnesses(step, before, x, y, manual_grads, torch_grads, self._gradcheck_rng)

    def sides(self) -> dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """Each side's live ``(parameters, gradients)`` as NumPy arrays (torch's are views, not copies)."""
        torch_params = dict(self.torch_model.named_parameters())
        return {
            "manual": (self.manual_model.named_parameters(), self.manual_model.named_grads()),
            "torch": (
                {name: p.detach().cpu().numpy() for name, p in torch_params.items()},
                {name: p.grad.detach().cpu().numpy() for name, p in torch_params.items() if p.grad is not None},
            ),
        }

    def _snapshot(self) -> dict[str, dict[str, np.ndarray]]:
        """Each side's parameters before the update, copied into arrays kept between logged steps (fresh
        arrays of a large model cost more in new pages than the copy itself)."""
        for side, (params, _) in self.sides().items():
            arrays = self._before.setdefault(side, {})
            for name, param in params.items():
                if name not in arrays:
                    arrays[name] = np.empty_like(param)
                np.copyto(arrays[name], param)
        return self._before

    def _stats(self, before: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, dict[str, float]]]:
        """Gradient norm, parameter norm and ‖Δθ‖/‖θ‖ (update-to-parameter ratio) per parameter and side.
        ``before`` (the snapshot) is overwritten with the updates."""
        stats = {}
        for side, (params, grads) in self.sides().items():
            norms = {name: float(np.linalg.norm(p)) for name, p in params.items()}
            updates = {name: np.subtract(p, before[side][name], out=before[side][name]) for name, p in params.items()}
            stats[side] = {
                "grad_norm": {name: float(np.linalg.norm(g)) for name, g in grads.items()},
                "param_norm": norms,
                "update_ratio": {
                    name: float(np.linalg.norm(update)) / max(norms[name], 1e-300) for name, update in updates.items()
                },
            }
        return stats

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> dict[str, dict[str, float]]:
        """Loss and accuracy of both twins on held-out data, in evaluation mode; training mode is restored."""
        model, tmodel = self.manual_model, self.torch_model
        model.eval()
        tmodel.eval()
        try:
            manual_out = model.forward(X)[-1]
            manual_loss = model.loss.forward(manual_out, y)
            with torch.no_grad():
                torch_out = tmodel(torch.from_numpy(X).to(self.device))
                torch_loss = float(self.torch_loss(torch_out, torch.from_numpy(y).to(self.device)))
        finally:
            model.train()
            tmodel.train()
        return {
            "manual": {"loss": manual_loss, "accuracy": accuracy(manual_out, y, model.spec.loss)},
            "torch": {"loss": torch_loss, "accuracy": accuracy(torch_out.cpu().numpy(), y, model.spec.loss)},
        }

    def _torch_forward(self, x: np.ndarray, keep_grads: bool) -> list[torch.Tensor]:
        h = torch.from_numpy(x).to(self.device)
        outs = []
        for layer in self.torch_model:
            h = layer(h)
            if keep_grads:
                h.retain_grad()  # keep dL/d(layer output) for the grad stage
            outs.append(h)
        return outs


def logs_at(step: int, every: int) -> bool:
    """The steps that log the heavier curves: the first, then every ``every``-th."""
    return step == 1 or step % every == 0


def accuracy(output: np.ndarray, y: np.ndarray, loss: str) -> float | None:
    """Fraction classified right: argmax for labels or one-hot targets, logit > 0 for bce;
    ``None`` for regression targets, where accuracy means nothing."""
    if loss == "cross_entropy":
        return float(np.mean(output.argmax(axis=1) == y))
    if loss == "bce":
        return float(np.mean((output > 0) == (y > 0.5)))
    one_hot = y.shape[1] > 1 and np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1)
    return float(np.mean(output.argmax(axis=1) == y.argmax(axis=1))) if one_hot else None


def twins(
    spec: MLPSpec,
    weights: dict[str, np.ndarray],
    optimizer: str,
    hyperparameters: dict,
    dtype: str,
    manual_optimizer=None,
    schedule: list | None = None,
    clip: float | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Lockstep:
    """Both models from the same weights (copied into each) and both optimizers from one kwargs dict.

    ``manual_optimizer`` replaces the hand-written optimizer, e.g. with a rule under test;
    ``schedule`` is a parsed ``--lr-schedule``; ``seed`` seeds the manual side's dropout masks;
    ``device`` is where the torch twin runs (set up by ``compare.devices.configure`` for a GPU).
    """
    manual_model = MLP(spec, weights, np.random.default_rng(seed))
    manual_optimizer = manual_optimizer or OPTIMIZERS[optimizer](**hyperparameters)
    twin = build_twin(spec, weights, optimizer, hyperparameters, dtype, schedule, device)
    manual_schedule = manual_schedules.build(schedule, manual_optimizer) if schedule else None
    return Lockstep(
        manual_model,
        manual_optimizer,
        twin.model,
        twin.loss,
        twin.optimizer,
        dtype,
        manual_schedule,
        twin.schedule,
        clip,
    )


# One thread, shared by every Lockstep of the process, that compares while the manual optimizer steps.
COMPARER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compare")
# Handing the comparisons to it costs about half a millisecond a step (thread wake-ups; NumPy keeps the
# GIL on small arrays), so it pays only on larger models. Step time in the background against the
# foreground, 784-W-W-10 at batch 256, Adam, float64, 2 threads (1 thread alike within 0.05):
# W=16 (13k parameters) 1.10, W=64 (55k) 1.08, W=128 (118k) 1.00, W=256 (269k) 0.94, W=1024 (1.9M) 0.91.
BACKGROUND_MIN_PARAMETERS = 1 << 17
BACKGROUND_SAFE_OPTIMIZERS = frozenset(OPTIMIZERS.values())


@dataclass
class Checks:
    """Collects the checks of one step, each held to its dtype-and-stage tolerance.

    With ``background``, comparisons wait in a queue; ``compare_in_background()`` runs them on
    ``COMPARER`` as one job (the caller promises that nothing writes to the compared arrays meanwhile)
    and ``collect()`` waits for them; comparisons added after that run at once."""

    step: int
    dtype: str
    device: str = "cpu"  # where the torch twin ran: the tolerance table has an entry per device
    background: bool = False
    checks: list[Check] = field(default_factory=list)
    wrong_shape: bool = False  # a tensor of the wrong shape was added (known at once, even in the background)
    _queued: list[tuple] = field(default_factory=list)  # comparisons added in the background mode, not started
    _running: Future | None = None  # the started ones, as one job

    def add(
        self,
        stage: str,
        name: str,
        manual: np.ndarray,
        reference: torch.Tensor | np.ndarray | None,
        floor: float = 0.0,
    ) -> None:
        """``floor``: the magnitude of the terms that produced the tensor (see ``compare.scales``)."""
        if isinstance(reference, torch.Tensor):
            reference = reference.detach().cpu().numpy()
        if reference is None:
            reference = np.full(np.shape(manual), np.nan)  # torch produced no gradient at all
        self._record(stage, name, manual, reference, tolerance(self.dtype, stage, self.device).max_rel, floor)

    def add_state(self, name: str, manual, reference, amplification: float = 1.0) -> None:
        """Optimizer state and buffers: arrays at the state tolerance, integer counters exactly.

        ``amplification``: how much larger than rounding a relative error this state may inherit from
        its gradient (see ``compare.scales.state_amplification``)."""
        if isinstance(reference, torch.Tensor):
            reference = reference.detach().cpu().numpy()
            reference = int(reference) if reference.dtype.kind == "i" else reference
        if manual is None and reference is None:
            return
        if manual is None or reference is None:
            side = "manual" if manual is None else "torch"
            missing = TensorDiff(np.inf, np.inf, (), f"missing:{side}")
            self.collect().append(Check(self.step, "state", name, missing, 0.0))
            return
        exact = isinstance(manual, int | np.integer) or isinstance(reference, int | np.integer)
        max_rel = 0.0 if exact else tolerance(self.dtype, "state", self.device).max_rel
        reference = np.asarray(reference)
        self._record("state", name, np.asarray(manual), reference, max_rel, amplification=amplification)

    def compare_in_background(self) -> None:
        """Start the comparisons added so far on ``COMPARER``, as one job; ``collect()`` waits for them."""
        queued, self._queued = self._queued, []
        if queued:
            self._running = COMPARER.submit(lambda: [judge(*args) for args in queued])

    def collect(self) -> list[Check]:
        """Every check so far, in the order added, once the background comparisons are done; later
        comparisons run at once."""
        self.background = False
        if self._running is not None:
            self.checks.extend(self._running.result())
            self._running = None
        self.checks.extend(judge(*args) for args in self._queued)  # queued but never started: here
        self._queued = []
        return self.checks

    def _record(
        self,
        stage: str,
        name: str,
        manual: np.ndarray,
        reference: np.ndarray,
        max_rel: float,
        floor: float = 0.0,
        amplification: float = 1.0,
    ) -> None:
        self.wrong_shape |= np.shape(manual) != np.shape(reference)
        args = (self.step, stage, name, manual, reference, max_rel, floor, amplification)
        if self.background:
            self._queued.append(args)
        else:  # nothing is queued or running once the background mode has ended (collect)
            self.checks.append(judge(*args))


def judge(
    step: int,
    stage: str,
    name: str,
    manual: np.ndarray,
    reference: np.ndarray,
    max_rel: float,
    floor: float = 0.0,
    amplification: float = 1.0,
) -> Check:
    """One comparison, with the worst elements side by side when it fails."""
    result = diff(manual, reference, floor, amplification)
    check = Check(step, stage, name, result, max_rel)
    if not check.passed:
        check = Check(step, stage, name, result, max_rel, tuple(worst_elements(manual, reference)))
    return check


@dataclass
class RunResult:
    """What a lockstep run found, aggregated step by step so that memory does not grow with the run's
    length beyond a few numbers per step; ``records`` keeps every step's checks only when asked
    (``keep_records``). ``complete`` is False when the run was interrupted."""

    keep_records: bool = True
    records: list[StepRecord] = field(default_factory=list)
    steps: int = 0
    losses_manual: list[float] = field(default_factory=list)
    losses_torch: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    step_worst: list[float] = field(default_factory=list)  # each step's largest max_rel
    worst: dict[str, Check] = field(default_factory=dict)  # each stage's largest max_rel so far
    witnesses: list[Witness] = field(default_factory=list)
    first_failure: Check | None = None
    failed_steps: int = 0
    complete: bool = False
    validation: list[dict] = field(default_factory=list)  # {"step", "manual": {...}, "torch": {...}}

    @property
    def passed(self) -> bool:
        return self.first_failure is None and self.complete

    def add(self, record: StepRecord) -> None:
        self.steps += 1
        self.losses_manual.append(record.loss_manual)
        self.losses_torch.append(record.loss_torch)
        self.lrs.append(record.lr)
        self.step_worst.append(max((check.diff.max_rel for check in record.checks), default=0.0))
        for stage, check in record.worst_by_stage().items():
            if stage not in self.worst or check.diff.max_rel > self.worst[stage].diff.max_rel:
                self.worst[stage] = check
        self.witnesses.extend(record.gradcheck)
        failure = record.first_failure
        if failure is not None:
            self.failed_steps += 1
            self.first_failure = self.first_failure or failure
        if self.keep_records:
            self.records.append(record)

    def worst_by_stage(self) -> dict[str, Check]:
        return {stage: self.worst[stage] for stage in STAGES if stage in self.worst}


def run(
    lockstep: Lockstep,
    batches: Iterator[tuple[np.ndarray, np.ndarray]],
    steps: int,
    stop_at_first_failure: bool,
    on_step: Callable[[StepRecord], None],
    result: RunResult | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> RunResult:
    """Advance both twins ``steps`` times; ``result`` is filled as it goes. ``should_stop`` is asked
    between steps (a signal arrived, say): the run then ends cleanly with ``complete`` False, every
    finished step recorded and handed to ``on_step``."""
    result = result if result is not None else RunResult()
    for step in range(1, steps + 1):
        if should_stop():
            return result
        x, y = next(batches)
        record = lockstep.step(step, x, y)
        on_step(record)  # first: a caller that raises here (a divergence it watches for) leaves it out
        result.add(record)
        if record.first_failure is not None and stop_at_first_failure:
            break
    result.complete = True
    return result
