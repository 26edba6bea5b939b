"""What a person sees while a run goes: a progress bar with the time left (tqdm, on stderr, only when
stderr is a terminal), and on stdout one line at step 1, every tenth of the run and at the first
departure from torch. With ``--keep-going`` a run that departs would fail at most of its steps; those
are not printed one by one: ``summary()`` tells, at the end, how the departure grew."""

import sys
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

from compare.core.records import StepRecord

ERASE_LINE = "\r\x1b[2K"  # carriage return, then ANSI "erase the whole line"


class Bar:
    """tqdm's bar, off when ``stream`` is not a terminal (a log file or a pipe gets no bar).

    The bar is drawn from its first update, not when it is made: whatever is printed before the first
    step (the run's header line) starts on a line of its own instead of behind a 0% bar. It is removed
    when closed (``leave=False``): a finished run leaves its lines and its verdict, no stale bar."""

    def __init__(self, total: int, description: str, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total = total
        self.description = description
        self.bar: tqdm | None = None

    def update(self, done: int, note: str = "") -> None:
        """The bar at ``done`` of its total, with a short note after it."""
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = tqdm(
                total=self.total,
                initial=done,  # drawn first at the step done, not at a 0% that may stay on screen
                desc=self.description,
                unit="step",
                file=self.stream,
                leave=False,
                dynamic_ncols=True,
                miniters=1,  # redrawn at most every 0.1 s (mininterval), whatever the step rate so far
            )
        if note:
            self.bar.set_postfix_str(note, refresh=False)
        self.bar.update(done - self.bar.n)

    def write(self, say: Callable[[str], None], line: str) -> None:
        """``say(line)`` with the bar lifted out of the way (cleared, then drawn again under the line)."""
        if self.bar is None:
            say(line)
            return
        with self.bar.external_write_mode():
            say(line)

    def close(self) -> None:
        """Remove the bar, and whatever the terminal echoed onto its line (``^C``): the line is erased
        whole (``ERASE_LINE``), so an interrupted run leaves no frozen bar above its verdict."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.stream.write(ERASE_LINE)
            self.stream.flush()


class StepPrinter:
    """The ``run`` command's ``on_step`` hook: the bar, the lines, and the departure's history."""

    def __init__(
        self,
        steps: int,
        say: Callable[[str], None] = print,
        stream: TextIO | None = None,
        sides: tuple[str, str] = ("manual", "torch"),
    ) -> None:
        """``sides``: the names of the side under test and the reference, as the loss columns are labelled."""
        self.sides = sides
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
                f"step {record.step:>6}  loss {self.sides[0]} {record.loss_manual:.6f}  "
                f"{self.sides[1]} {record.loss_torch:.6f}  "
                f"worst max_rel {worst:.2e}  {status}"
            )
            self._print(line)

    def _print(self, line: str) -> None:
        self.bar.write(self.say, line)

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
