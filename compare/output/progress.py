"""What a person sees while a run goes: a progress bar with the time left (tqdm, on stderr, only when
stderr is a terminal), and on stdout one line at step 1, every tenth of the run and at the first
departure from torch. With ``--keep-going`` a run that departs would fail at most of its steps; those
are not printed one by one: ``summary()`` tells, at the end, how the departure grew."""

import sys
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

from compare.core.records import StepRecord


class Bar:
    """tqdm's bar, off when ``stream`` is not a terminal (a log file or a pipe gets no bar)."""

    def __init__(self, total: int, description: str, stream: TextIO | None = None) -> None:
        stream = stream if stream is not None else sys.stderr
        self.enabled = hasattr(stream, "isatty") and stream.isatty()
        self.bar = tqdm(
            total=total,
            desc=description,
            unit="step",
            file=stream,
            disable=not self.enabled,
            leave=False,
            dynamic_ncols=True,
        )

    def update(self, done: int, note: str = "") -> None:
        """The bar at ``done`` of its total, with a short note after it."""
        self.bar.update(done - self.bar.n)
        if note:
            self.bar.set_postfix_str(note, refresh=False)

    def close(self) -> None:
        self.bar.close()


class StepPrinter:
    """The ``run`` command's ``on_step`` hook: the bar, the lines, and the departure's history."""

    def __init__(self, steps: int, say: Callable[[str], None] = print, stream: TextIO | None = None) -> None:
        self.every = max(1, steps // 10)
        self.say = say
        self.bar = Bar(steps, "steps", stream)
        self.departed: list[tuple[int, float]] = []  # (step, that step's worst max_rel) of each failing step

    def __call__(self, record: StepRecord) -> None:
        worst = max((check.diff.max_rel for check in record.checks), default=0.0)
        failed = record.first_failure is not None
        first = failed and not self.departed
        if failed:
            self.departed.append((record.step, worst))
        self.bar.update(record.step, f"worst max_rel {worst:.1e}")
        if record.step % self.every == 0 or record.step == 1 or first:
            status = "ok" if not failed else ("MISMATCH" if first else "outside tolerance")
            line = (
                f"step {record.step:>6}  loss manual {record.loss_manual:.6f}  torch {record.loss_torch:.6f}  "
                f"worst max_rel {worst:.2e}  {status}"
            )
            self._print(line)

    def _print(self, line: str) -> None:
        with self.bar.bar.external_write_mode():
            self.say(line)

    def summary(self) -> str | None:
        """How the departure grew after the first failing step (None when at most one step failed)."""
        if len(self.departed) < 2:
            return None
        count = len(self.departed)
        marks = sorted({0, count // 4, count // 2, 3 * count // 4, count - 1})
        path = ", ".join(f"step {self.departed[i][0]} {self.departed[i][1]:.1e}" for i in marks)
        peak_step, peak = max(self.departed, key=lambda item: item[1])
        return (
            f"departure: {count} steps outside tolerance, worst max_rel {path} "
            f"(largest {peak:.1e}, at step {peak_step})"
        )

    def close(self) -> None:
        self.bar.close()
