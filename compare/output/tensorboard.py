"""TensorBoard output for one run, laid out so the dashboards tell its story.

``<run>/manual`` and ``<run>/torch`` carry the same tags, so every curve of one side overlays the
other's; ``<run>/parity`` holds the differences, whose 1e-16 scale would flatten a loss axis.

manual/ and torch/, every step:    loss/train, lr
                   every K steps:  loss/validation, accuracy/validation (held-out split, eval mode),
                                   grad_norm/<param>, param_norm/<param>, update_ratio/<param> (‖Δθ‖/‖θ‖),
                                   histograms weights/<param> and grads/<param>
parity/, every step:               max_abs/<stage>, max_rel/<stage>, and log10_max_rel/<stage> (differences
                                   of 1e-16 next to a 1e-10 tolerance stay readable on a linear axis; an
                                   exact 0 is drawn at the floor, -20)
         every K steps:            tolerance/<stage> and log10_tolerance/<stage>, constant reference lines
once:                              text config and verdict, HParams, a custom-scalars layout

Per-step scalars go out as one event per writer per step (a Summary with several values), written in
this thread (``compare.output.events``), which keeps logging cheap; TensorBoard stores them as float32,
which holds 1e-16 differences fine.
"""

import math
from pathlib import Path

import numpy as np
from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary
from tensorboard.plugins.hparams import summary_v2 as hparams
from torch.utils.tensorboard import summary

from compare.core.engine import Lockstep, logs_at
from compare.core.records import StepRecord
from compare.core.tolerances import STAGES, tolerance
from compare.output.events import EventWriter

SIDES = ("manual", "torch")
# torch's default "tensorflow" bucketing searches ~1,500 edges per value (2 ms a histogram, measured);
# 64 even buckets show a layer's distribution as well at a tenth of the cost.
HISTOGRAM_BINS = 64
LAYOUT = {
    "Loss (manual vs torch)": {
        "train": ["Multiline", [r"^loss/train$"]],
        "validation": ["Multiline", [r"^loss/validation$"]],
        "validation accuracy": ["Multiline", [r"^accuracy/validation$"]],
    },
    "Parity (read at smoothing 0)": {
        "log10 max_rel by stage, and log10 tolerance": ["Multiline", [r"^log10_max_rel/", r"^log10_tolerance/"]],
        "max_abs by stage": ["Multiline", [r"^max_abs/"]],
    },
}


LOG10_FLOOR = -20.0  # where an exact 0 is drawn on the log10 curves


def log10(value: float) -> float:
    return max(math.log10(value), LOG10_FLOOR) if value > 0 else LOG10_FLOOR


def scalar_summary(values: dict[str, float]) -> Summary:
    return Summary(value=[Summary.Value(tag=tag, simple_value=value) for tag, value in values.items()])


# Values are binned a block at a time in two work arrays kept in cache: whole-array temporaries of a
# 1024×1024 float64 matrix cost more in fresh pages than the arithmetic (3.3 ms a histogram in blocks,
# 6.8 ms whole, 8.8 ms through torch's summary.histogram; 2 cores, AMD EPYC).
HISTOGRAM_BLOCK = 1 << 16


def histogram_summary(tag: str, array: np.ndarray) -> Summary | None:
    """What ``summary.histogram(tag, array, HISTOGRAM_BINS)`` writes, at about a third of its cost.

    Same buckets (``HISTOGRAM_BINS`` of equal width from the smallest to the largest value, as
    ``np.histogram``), same trimming and statistics. One difference: a value within rounding of a bucket
    edge may be counted in the bucket beside it, as ``torch.histc`` counts it; ``np.histogram`` spends
    two more passes to settle those. Non-finite values are left out (the parity curves report them,
    where ``np.histogram`` raises); ``None`` when no value is finite."""
    values = np.asarray(array, dtype=np.float64).reshape(-1)
    low, high = float(values.min()), float(values.max())  # NaN if any is NaN
    if not (math.isfinite(low) and math.isfinite(high)):
        values = values[np.isfinite(values)]
        if values.size == 0:
            return None
        low, high = float(values.min()), float(values.max())
    first, last = (low - 0.5, high + 0.5) if low == high else (low, high)  # as np.histogram widens one value
    counts = bucket_counts(values, first, last)
    nonzero = np.flatnonzero(counts)
    start, end = int(nonzero[0]), int(nonzero[-1]) + 1
    # TensorBoard reads each bucket's right edge only: an empty bucket in front carries the left edge.
    limits = np.linspace(first, last, HISTOGRAM_BINS + 1)[start : end + 1]
    with np.errstate(over="ignore"):  # a sum of finite values may still overflow to inf, and says so
        total, total_squares = values.sum(), values.dot(values)
    histogram = HistogramProto(
        min=low,
        max=high,
        num=len(values),
        sum=total,
        sum_squares=total_squares,
        bucket_limit=limits.tolist(),
        bucket=[0, *counts[start:end].tolist()],
    )
    return Summary(value=[Summary.Value(tag=tag, histo=histogram)])


def bucket_counts(values: np.ndarray, first: float, last: float) -> np.ndarray:
    """How many values fall in each of ``HISTOGRAM_BINS`` equal buckets over [first, last] (the last
    bucket includes ``last``): bucket ``⌊(v − first) / (last − first) · bins⌋``, as np.histogram computes it."""
    counts = np.zeros(HISTOGRAM_BINS, dtype=np.intp)
    scaled = np.empty(min(HISTOGRAM_BLOCK, values.size))
    index = np.empty(scaled.size, dtype=np.intp)
    for begin in range(0, values.size, HISTOGRAM_BLOCK):
        size = min(HISTOGRAM_BLOCK, values.size - begin)
        block, block_index = scaled[:size], index[:size]
        np.subtract(values[begin : begin + size], first, out=block)
        block /= last - first
        block *= HISTOGRAM_BINS
        block_index[...] = block  # truncation toward zero: every value is ≥ first
        np.minimum(block_index, HISTOGRAM_BINS - 1, out=block_index)  # the largest value, in the last bucket
        counts += np.bincount(block_index, minlength=HISTOGRAM_BINS)
    return counts


class RunWriters:
    """One writer per sub-run; each directory is new, so nothing interleaves with an old run."""

    def __init__(self, run_dir: Path, dtype: str, log_every: int, device: str = "cpu") -> None:
        self.dtype = dtype
        self.log_every = log_every
        self.writers = {name: EventWriter(run_dir / name) for name in (*SIDES, "parity")}
        limits = {stage: tolerance(dtype, stage, device).max_rel for stage in STAGES}
        self.tolerances = {
            **{f"tolerance/{stage}": limit for stage, limit in limits.items()},
            **{f"log10_tolerance/{stage}": log10(limit) for stage, limit in limits.items()},
        }

    def _scalars(self, name: str, values: dict[str, float], step: int) -> None:
        self.writers[name].add_summary(scalar_summary(values), step)

    def start(self, config: dict) -> None:
        """Configuration as text, as HParams (in each run's own file, no stray sub-directory), and the layout."""
        text = "\n".join(f"    {key}: {value}" for key, value in config.items())
        flat = {
            key: value if isinstance(value, bool | int | float | str) else str(value) for key, value in config.items()
        }
        for side, writer in self.writers.items():
            writer.add_summary(summary.text("config", text))
            writer.add_summary(hparams.hparams_pb({**flat, "side": side}))
        self.writers["parity"].add_summary(summary.custom_scalars(LAYOUT))
        for writer in self.writers.values():
            writer.flush()

    def log_step(self, record: StepRecord, lockstep: Lockstep) -> None:
        step = record.step
        for side, loss in (("manual", record.loss_manual), ("torch", record.loss_torch)):
            values = {"loss/train": loss, "lr": record.lr}
            for metric, per_param in record.stats.get(side, {}).items():
                values.update({f"{metric}/{name}": value for name, value in per_param.items()})
            self._scalars(side, values, step)
        heavy = logs_at(step, self.log_every)
        parity = dict(self.tolerances) if heavy else {}  # constant reference lines need no point per step
        for stage, check in record.worst_by_stage().items():
            parity[f"max_abs/{stage}"] = check.diff.max_abs
            parity[f"max_rel/{stage}"] = check.diff.max_rel
            parity[f"log10_max_rel/{stage}"] = log10(check.diff.max_rel)
        self._scalars("parity", parity, step)
        if heavy:
            for side, (params, grads) in lockstep.sides().items():
                arrays = {f"weights/{name}": array for name, array in params.items()}
                arrays.update({f"grads/{name}": array for name, array in grads.items()})
                for tag, array in arrays.items():
                    histogram = histogram_summary(tag, array)
                    if histogram is not None:
                        self.writers[side].add_summary(histogram, step)
            for writer in self.writers.values():
                writer.flush()  # a live dashboard sees the run as it goes

    def log_validation(self, step: int, metrics: dict[str, dict[str, float | None]]) -> None:
        for side in SIDES:
            values = {f"{key}/validation": value for key, value in metrics[side].items() if value is not None}
            self._scalars(side, values, step)

    def finish(self, verdict: str) -> None:
        for writer in self.writers.values():
            writer.add_summary(summary.text("verdict", "    " + verdict.replace("\n", "\n    ")))
            writer.close()
