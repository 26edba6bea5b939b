"""TensorBoard output: ``<run>/manual`` and ``<run>/torch`` share tags so their curves overlay;
``<run>/parity`` holds the per-stage differences, whose 1e-16 scale would flatten a loss axis.

Tags: ``loss/train`` and ``lr`` on both sides; ``max_abs/<stage>``, ``max_rel/<stage>`` and
``tolerance/<stage>`` in parity (TensorBoard stores float32, which holds 1e-16 without trouble).
"""

from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from compare.engine import StepRecord
from compare.tolerances import STAGES, tolerance


class RunWriters:
    """One writer per sub-run; each directory is new, so nothing interleaves with an old run."""

    def __init__(self, run_dir: Path, dtype: str) -> None:
        self.dtype = dtype
        self.manual = SummaryWriter(str(run_dir / "manual"))
        self.torch = SummaryWriter(str(run_dir / "torch"))
        self.parity = SummaryWriter(str(run_dir / "parity"))

    def log_text(self, tag: str, markdown: str) -> None:
        self.parity.add_text(tag, markdown)

    def log_step(self, record: StepRecord) -> None:
        step = record.step
        self.manual.add_scalar("loss/train", record.loss_manual, step)
        self.torch.add_scalar("loss/train", record.loss_torch, step)
        self.manual.add_scalar("lr", record.lr, step)
        self.torch.add_scalar("lr", record.lr, step)
        for stage, check in record.worst_by_stage().items():
            self.parity.add_scalar(f"max_abs/{stage}", check.diff.max_abs, step)
            self.parity.add_scalar(f"max_rel/{stage}", check.diff.max_rel, step)
        for stage in STAGES:
            self.parity.add_scalar(f"tolerance/{stage}", tolerance(self.dtype, stage).max_rel, step)

    def close(self) -> None:
        for writer in (self.manual, self.torch, self.parity):
            writer.close()
