"""Name every departing piece of a user's network, whatever its form.

At step 1, when it fails:

* a network exposing its layers: each piece whose tensors fail (a layer, the loss) is replayed on what the
  user's piece received; one that torch's piece reproduces only inherited a departure, and is left out;
  every other is listed with its own diagnosis (``Report.parts``), so a tiny departure (1e-7 inside a log)
  cannot mask a gross one (a bias gradient averaged);
* any other network: the whole network is replayed with the catalog's mistakes, one and two at a time
  (``compare.check.diagnosis.network_replay``).

At step 2, when the first failure is a running statistic that a layer created on step 1 (torch took its
value after step 1, so step 2 is where its update is first compared): that layer, replayed from torch's
model as step 1 left it.

At the end, when a parameter first departs after its gradient agreed (the update is wrong): the optimizer's
known mistakes, textbook variants and conventions are replayed on the user's gradients of the first steps
(``compare.check.diagnosis.optimizer_mistakes.diagnose_optimizer``), as ``check_optimizer`` does.
"""

import copy
from dataclasses import replace
from typing import Any

from torch import nn

import compare.check.diagnosis.conventions as conventions
from compare.check.check_optimizer import OptimizerRun
from compare.check.diagnosis import initial_values, numerical, several
from compare.check.diagnosis.known_mistakes import (
    departs,
    diagnose_layer,
    diagnose_model,
    piece_inputs,
    piece_of,
)
from compare.check.diagnosis.network_replay import diagnose_network
from compare.check.diagnosis.optimizer_mistakes import diagnose_optimizer
from compare.check.model_side import UserModelSide
from compare.check.report import Diagnosis, Failure, Part, Report
from compare.core.records import StepRecord
from compare.core.tolerances import tolerance


class ModelDiagnoser:
    """Called with each step's record by the engine; ``finish()`` once the run has ended."""

    def __init__(
        self,
        start: nn.Sequential,
        torch_loss: Any,
        side: UserModelSide,
        report: Report,
        dtype: str,
        per_layer: bool,
        reference: Any = None,
    ) -> None:
        self.start, self.torch_loss, self.side, self.report = start, torch_loss, side, report
        self.dtype, self.per_layer = dtype, per_layer
        self.reference = reference  # the torch side: its gradients, for the measured diagnosis
        self.after_first: nn.Sequential | None = None  # torch's model after step 1, when it took late statistics
        self.first_runs: dict[str, list] = {}  # step 1 of each layer that created statistics (``piece_inputs``)

    def __call__(self, record: StepRecord) -> None:
        late = self.side.taken and self.per_layer and self.reference is not None
        if record.step == 1 and late and record.first_failure is None:  # step 1 clean: step 2 may be the first
            self.after_first = copy.deepcopy(self.reference.model)
            recorded, grads, buffers = self.side.recorder, self.side.grads(), self.side.kept_buffers
            for piece in {name.partition(".")[0] for name in self.side.taken}:
                self.first_runs[piece] = piece_inputs(self.start, self.torch_loss, recorded, grads, piece, buffers)
        if record.step == 2 and self.after_first is not None:
            self._late(record)
        if record.step != 1 or record.first_failure is None:
            return
        if record.first_failure.stage in ("param", "eval") or record.first_failure.tensor == "lr":
            return  # the optimizer's: named at the end
        self.report.diagnosed = True
        if self.per_layer:
            self._parts(record)
        else:
            diagnosis = diagnose_network(
                self.start, self.torch_loss, self.side.batch, self.side.loss, self.side.grads(), self.dtype
            )
            self.report.diagnosis = diagnosis
            self.report.parts = [Part("network", Failure.of(record.first_failure), diagnosis)]
        if self.report.diagnosis is None and self.reference is not None:  # no known mistake: a convention, or
            pairs = self._failing_grads(record)  # what the departure itself says
            start = {name: p.detach().cpu().numpy() for name, p in self.start.named_parameters()}
            self.report.diagnosis = conventions.l2_diagnosis(start, pairs, tolerance(self.dtype, "grad").max_rel)
            self.report.diagnosis = self.report.diagnosis or self._measured(pairs)

    def _late(self, record: StepRecord) -> None:
        """A running statistic created on step 1 departing at step 2: its layer, replayed from step 1's end."""
        failure = record.first_failure
        if failure is None or failure.stage != "state" or failure.tensor not in self.side.taken:
            return
        self.report.diagnosed = True
        recorded, grads, buffers = self.side.recorder, self.side.grads(), self.side.kept_buffers
        diagnosis = diagnose_model(self.after_first, self.torch_loss, recorded, grads, failure, self.dtype, buffers)
        piece = piece_of(failure, len(self.start) - 1)
        if diagnosis is not None and piece is not None:
            diagnosis = self._started(piece, diagnosis)
        self.report.diagnosis = diagnosis
        self.report.parts = [Part(self._name(piece), Failure.of(failure), diagnosis)]

    def _started(self, piece: str, diagnosis: Diagnosis) -> Diagnosis:
        """The start of layer ``piece``'s statistics, told by replaying its step 1 from each start they may have
        had with the mistake found at step 2; one that is not torch's named as a convention."""
        module, runs = self.start[int(piece)], self.first_runs.get(piece)
        late = {name.partition(".")[2]: None for name in self.side.taken if name.partition(".")[0] == piece}
        for candidate, starts in initial_values.starts_to_try(module, late) if runs else []:
            found = diagnose_layer(candidate, runs, None, self.dtype)
            if found is None or found.name != diagnosis.name:
                continue
            for key, value in starts.items():
                name, own = f"{piece}.{key}", dict(module.named_buffers())[key].detach().cpu().numpy()
                note = initial_values.convention_note(name, value, own, type(module).__name__, f"twin[{piece}].{key}")
                self.side.late_notes[name] = note
                explained = diagnosis.explanation + initial_values.beside(name, value, own)
                diagnosis = replace(diagnosis, explanation=explained)
            return diagnosis
        return diagnosis

    def _failing_grads(self, record: StepRecord) -> list[tuple[str, Any, Any]]:
        """(name, the user's gradient, torch's) of each failing parameter gradient, in the record's order."""
        mine, theirs = self.side.grads(), self.reference.grads()
        failing = [c.tensor for c in record.checks if not c.passed and c.stage == "grad"]
        return [(name, mine[name], theirs[name]) for name in failing if name in mine and name in theirs]

    def _measured(self, pairs: list) -> Diagnosis | None:
        """The failing gradients of step 1 (nearest the loss first), measured (``compare.check.diagnosis``)."""
        widths = [m.out_features for m in self.start.modules() if isinstance(m, nn.Linear)]
        batch = self.side.batch
        context = numerical.Context(
            batch=None if batch is None else len(batch[0]), classes=widths[-1] if widths else None
        )
        return numerical.diagnose(pairs, context)

    def _parts(self, record: StepRecord) -> None:
        last, seen, parts = len(self.start) - 1, set(), []
        recorded, grads, buffers = self.side.recorder, self.side.grads(), self.side.kept_buffers
        for check in record.checks:
            failure = Failure.of(check) if not check.passed else None
            piece = None if failure is None else piece_of(failure, last)
            if piece is None or piece in seen:
                continue
            seen.add(piece)
            if not departs(self.start, self.torch_loss, recorded, grads, piece, self.dtype, buffers):
                continue  # torch's piece, on what the user's received, makes the same: an inherited departure
            diagnosis = diagnose_model(self.start, self.torch_loss, recorded, grads, failure, self.dtype, buffers)
            parts.append(Part(self._name(piece), failure, diagnosis))
        self.report.parts = parts
        named = [part.diagnosis for part in parts if part.diagnosis is not None]
        if named:
            self.report.diagnosis = named[0] if len(named) == 1 else _both(named)
        elif record.first_failure is not None:
            failure = record.first_failure
            self.report.diagnosis = diagnose_model(
                self.start, self.torch_loss, recorded, grads, failure, self.dtype, buffers
            )

    def _name(self, piece: str) -> str:
        if piece == "loss":
            return f"loss ({type(self.torch_loss).__name__})"
        return f"layer {piece} ({type(self.start[int(piece)]).__name__})"

    def finish(self, torch_optimizer: Any, parsed: list | None) -> None:
        """The optimizer's mistake, when a parameter departed after its gradient agreed; or, beside a piece that
        departed at step 1, when torch's rule on the user's own gradients does not make the user's parameters."""
        failure = self.report.first_failure
        if failure is None or self.report.error is not None or not self.side.history:
            return
        torch_class, hyperparameters = type(torch_optimizer), torch_optimizer.defaults
        name = f"optimizer ({torch_class.__name__})"
        if self.report.diagnosis is not None or self.report.parts:  # a piece departed at step 1
            run = self._run(parsed, len(self.side.history))
            if not several.optimizer_departs(torch_class, hyperparameters, run, self.dtype):
                return
            diagnosis = self._optimizer(torch_optimizer, run)
            later = next((c for c in self.report.checks if not c.passed and c.stage in ("state", "param")), None)
            parts = self.report.parts or [Part("network", failure, self.report.diagnosis)]
            self.report.parts = [*parts, Part(name, Failure.of(later) if later else failure, diagnosis)]
            named = [d for d in (self.report.diagnosis, diagnosis) if d is not None]
            self.report.diagnosis = _both(named) if len(named) > 1 else named[0] if named else None
            return
        if not (failure.stage == "param" or failure.tensor == "lr") or failure.step > len(self.side.history):
            return
        self.report.diagnosed = True
        diagnosis = self._optimizer(torch_optimizer, self._run(parsed, failure.step))
        self.report.diagnosis = diagnosis
        self.report.parts = [Part(name, failure, diagnosis)]

    def _run(self, parsed: list | None, steps: int) -> OptimizerRun:
        """The user's gradients, parameters and lr of the first ``steps`` steps, from the starting values."""
        history = self.side.history[:steps]
        start = {name: param.detach().numpy().copy() for name, param in self.start.named_parameters()}
        return OptimizerRun(start, parsed, [h[0] for h in history], [h[1] for h in history], [h[2] for h in history])

    def _optimizer(self, torch_optimizer: Any, run: OptimizerRun) -> Diagnosis | None:
        torch_class, hyperparameters = type(torch_optimizer), torch_optimizer.defaults
        settings = self.side.optimizer.settings()
        return diagnose_optimizer(
            torch_class, hyperparameters, run, self.dtype, settings, hyperparameters
        ) or several.optimizer_pairs(torch_class, hyperparameters, run, self.dtype)


def _both(named: list[Diagnosis]) -> Diagnosis:
    """Several pieces, each with its own mistake: all named, the first one's numbers."""
    names = list(dict.fromkeys(d.name for d in named))  # one name per mistake, though several pieces make it
    return Diagnosis(
        " and ".join(names),
        "; ".join(dict.fromkeys(d.explanation for d in named)),
        max(d.max_rel for d in named),
        fix="; ".join(dict.fromkeys(d.fix for d in named if d.fix)),
    )
