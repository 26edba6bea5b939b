"""A side that raises is a finding: the exception becomes a check named ``raised:<Type>``.

The engine runs each stage of ``compare.core.stages.STEPS`` under its name; when a side's method raises,
``finding`` names the side (whose objects are on the traceback), the layer (the deepest frame whose ``self``
is one of the side's layers), the stage, the type and the message, and keeps the traceback for the report. An exception
raised by the checker's own code (neither side on the stack, or a type of the checker's own, such as a
failed data-parallel group) is not a finding: it propagates.
"""

import traceback as tb
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from compare.core.metrics import TensorDiff
from compare.core.records import Check, Raised, StepRecord

MANUAL_CODE = str(Path(__file__).resolve().parents[2] / "manual")
TORCH_CODE = (str(Path(__file__).resolve().parents[2] / "torch_ref"), "/torch/")


def _layers(side: Any) -> list:
    model = getattr(side, "model", None)
    layers = getattr(model, "layers", None)
    if layers is None and model is not None and hasattr(model, "__iter__"):
        layers = list(model)
    return list(layers or [])


def _frames(traceback: TracebackType | None) -> list:
    frames = []
    while traceback is not None:
        frames.append(traceback.tb_frame)
        traceback = traceback.tb_next
    return frames


def _owner(frame, sides: dict[str, Any]) -> tuple[str | None, str | None]:
    """Which side a frame belongs to, and the layer it is in (``"1 (Linear)"``) when it is a layer's."""
    this = frame.f_locals.get("self")
    for name, side in sides.items():
        layers = _layers(side)
        for index, layer in enumerate(layers):
            if this is layer:
                return name, f"{index} ({type(layer).__name__})"
        parts = (side, getattr(side, "model", None), getattr(side, "optimizer", None), getattr(side, "schedule", None))
        if this is not None and any(this is part for part in parts if part is not None):
            return name, "optimizer" if this is getattr(side, "optimizer", None) else None
    filename = frame.f_code.co_filename
    if filename.startswith(MANUAL_CODE):
        return "manual", None
    if filename.startswith(TORCH_CODE[0]) or TORCH_CODE[1] in filename:
        return "torch", None
    return None, None


def finding(error: Exception, step: int, stage: str, manual: Any, reference: Any) -> Raised | None:
    """The exception as a finding, or ``None`` when neither side is on its traceback or it is one of the
    checker's own (a data-parallel group that failed, ``compare.core.distributed.GroupError``)."""
    if type(error).__module__.split(".")[0] == "compare":
        return None
    side, layer = None, None
    for frame in _frames(error.__traceback__):
        owner, where = _owner(frame, {"manual": manual, "torch": reference})
        if owner is not None:
            side = side or owner
            if owner == side and where is not None:
                layer = where  # the deepest one of the side that raised
    if side is None:
        return None
    if stage == "forward" and any(frame.f_code.co_name == "backward" for frame in _frames(error.__traceback__)):
        stage = "grad"
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = "".join(tb.format_exception(error))
    return Raised(side, step, stage, layer or "-", type(error).__name__, message, text)


def record(raised: Raised) -> StepRecord:
    """The step's record: one failed check, named by the layer (or the stage) and ``raised:<Type>``."""
    problem = f"raised:{raised.type}"
    check = Check(raised.step, raised.stage, raised.layer, TensorDiff(np.inf, np.inf, (), problem), 0.0)
    nan = float("nan")
    return StepRecord(raised.step, nan, nan, nan, [check], raised=raised)
