"""Name every departing piece of a user's network, whatever its form.

At step 1, when it fails:

* a network exposing its layers: each piece whose tensors fail (a layer, the loss) is replayed on what the
  user's piece received; one that torch's piece reproduces only inherited a departure, and is left out;
  every other is listed with its own diagnosis (``Report.parts``), so a tiny departure (1e-7 inside a log)
  cannot mask a gross one (a bias gradient averaged);
* any other network: the whole network is replayed with the catalog's mistakes, one and two at a time
  (``compare.check.diagnosis.network_replay``).

At the end, when a parameter first departs after its gradient agreed (the update is wrong): the optimizer's
known mistakes, textbook variants and conventions are replayed on the user's gradients of the first steps
(``compare.check.diagnosis.known_mistakes.diagnose_optimizer``), as ``check_optimizer`` does.
"""

from typing import Any

from torch import nn

from compare.check.check_optimizer import OptimizerRun
from compare.check.diagnosis.known_mistakes import departs, diagnose_model, diagnose_optimizer, piece_of
from compare.check.diagnosis.network_replay import diagnose_network
from compare.check.model_side import UserModelSide
from compare.check.report import Diagnosis, Failure, Part, Report
from compare.core.records import StepRecord


class ModelDiagnoser:
    """Called with each step's record by the engine; ``finish()`` once the run has ended."""

    def __init__(
        self, start: nn.Sequential, torch_loss: Any, side: UserModelSide, report: Report, dtype: str, per_layer: bool
    ) -> None:
        self.start, self.torch_loss, self.side, self.report = start, torch_loss, side, report
        self.dtype, self.per_layer = dtype, per_layer

    def __call__(self, record: StepRecord) -> None:
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
        """The optimizer's mistake, when a parameter departed after its gradient agreed."""
        failure = self.report.first_failure
        if failure is None or self.report.diagnosis is not None or self.report.error is not None:
            return
        if not (failure.stage == "param" or failure.tensor == "lr") or failure.step > len(self.side.history):
            return
        self.report.diagnosed = True
        history = self.side.history[: failure.step]
        start = {name: param.detach().numpy().copy() for name, param in self.start.named_parameters()}
        run = OptimizerRun(start, parsed, [h[0] for h in history], [h[1] for h in history], [h[2] for h in history])
        user = self.side.optimizer
        diagnosis = diagnose_optimizer(
            type(torch_optimizer), torch_optimizer.defaults, run, self.dtype, user.settings(), torch_optimizer.defaults
        )
        self.report.diagnosis = diagnosis
        self.report.parts = [Part(f"optimizer ({type(torch_optimizer).__name__})", failure, diagnosis)]


def _both(named: list[Diagnosis]) -> Diagnosis:
    """Several pieces, each with its own mistake: all named, the first one's numbers."""
    names = list(dict.fromkeys(d.name for d in named))  # one name per mistake, though several pieces make it
    return Diagnosis(
        " and ".join(names),
        "; ".join(dict.fromkeys(d.explanation for d in named)),
        max(d.max_rel for d in named),
        fix="; ".join(dict.fromkeys(d.fix for d in named if d.fix)),
    )
