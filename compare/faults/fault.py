"""One fault of the catalog (``compare.faults.catalog``): a mistake, its fix, where it must first show, and why."""

from dataclasses import dataclass
from pathlib import Path

from compare.core.override import Override
from compare.faults.files import FILES
from compare.faults.needs import Need


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    fix: str  # what to change in the user's code, in one line
    expected: tuple[int, str, str]  # (step, stage, tensor) of the first failure
    why: str  # the reasoning behind ``expected``
    override: Override  # what it replaces in the manual side
    args: tuple[str, ...] = ()  # run arguments under which it can act; ``{name}`` is a file of FILES
    needs: tuple[Need, ...] = ()
    problem: str | None = None  # the failure's ``problem`` when it is not a plain difference

    @property
    def steps(self) -> int:
        """Enough steps to reach the expected failure and to show that nothing fails before it."""
        return self.expected[0] + 2

    def files(self) -> list[str]:
        return [key for key in FILES if any(f"{{{key}}}" in arg for arg in self.args)]

    def argv(self, folder: Path | None = None) -> list[str]:
        """The run arguments, with ``--steps``; input files are written into ``folder`` (or shown as NAME.npz)."""
        paths = {}
        for key in self.files():
            if folder is None:
                paths[key] = f"{key}.npz"
            else:
                paths[key] = str(folder / f"{key}.npz")
                FILES[key](Path(paths[key]))
        return [*(arg.format(**paths) for arg in self.args), "--steps", str(self.steps)]
