"""``backprop-parity faults``: the catalog of known mistakes (``compare.faults``), each with its one-line fix,
and with ``--table`` the proof that the checker catches each one where it should.

``--table`` runs every fault twice, in float64 with its own arguments and a few steps: once with
``run --inject NAME`` (which must fail, exit 1, with its first failure at the catalog's step, stage
and tensor) and once without (which must pass, exit 0, so the failure is the fault's doing). It
prints the Markdown table the README carries and exits 1 if any fault is missed or mislocated.
"""

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import compare
from compare import exits
from compare.cli import PROG
from compare.cli.run import config_from_args, parse_run_args
from compare.errors import InputError
from compare.faults import CATALOG, Fault

HEADER = ("fault", "detected", "step", "stage", "tensor", "expected")


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "faults",
        help="list the catalog of known backprop and optimizer mistakes (--table: run them all)",
        description="List the realistic mistakes that `run --inject NAME` puts into the manual side, with the "
        "arguments under which each can act and where the checker must catch it. --table runs every one (and "
        "the same run without it) and prints the Markdown detection table; exit 1 if any is missed or "
        "caught at the wrong step, stage or tensor.",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--table", action="store_true", help="run every fault and print the Markdown detection table")
    what.add_argument(
        "--files",
        metavar="DIR",
        help="write the input files some faults need (weights, data) into DIR and list their real paths",
    )
    parser.set_defaults(handler=faults_command)


def faults_command(args: argparse.Namespace) -> int:
    if args.table:
        return print_table()
    folder = None
    if args.files is not None:
        folder = Path(args.files)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(f"--files {folder}: cannot create the folder ({error.strerror})") from None
    print_catalog(folder)
    return exits.PASS


def print_catalog(folder: Path | None) -> None:
    print(f"{len(CATALOG)} faults. Run one with: {PROG} run --inject NAME ARGUMENTS")
    if folder is None:
        print("(NAME.npz input files: write them with --files DIR)")
    for fault in CATALOG.values():
        step, stage, tensor = fault.expected
        problem = f" ({fault.problem})" if fault.problem else ""
        print()
        print(fault.name)
        print(f"  {fault.description}")
        print(f"  fix:       {fault.fix}")
        print(f"  arguments: {' '.join(fault.argv(folder))}")
        print(f"  expected:  step {step}, {stage}, {tensor}{problem}: {fault.why}")


@dataclass(frozen=True)
class Outcome:
    """What one ``run`` reported: its exit status and first failure (``None`` when it passed)."""

    status: int | str  # an exit status, or "crashed: <error>"
    failure: dict | None

    @property
    def where(self) -> tuple[int, str, str] | None:
        f = self.failure
        return None if f is None else (f["step"], f["stage"], f["tensor"])


def run_once(fault: Fault, folder: Path, inject: bool) -> Outcome:
    """The fault's run through ``compare.run``, quietly, with its arguments (and the fault injected or not)."""
    argv = [*(["--inject", fault.name] if inject else []), *fault.argv(folder)]
    try:
        config = config_from_args(parse_run_args(argv))
        # quietly: NumPy's overflow warnings from softmax-without-max-shift
        with np.errstate(all="ignore"):
            result = compare.run(config, compare.Output(logdir=folder / "runs", tensorboard=False))
    except InputError as error:
        return Outcome(f"exit {exits.USAGE}: {error}", None)
    except Exception as error:  # a fault that crashes the run is a finding, not a reason to stop the table
        return Outcome(f"crashed: {type(error).__name__}: {error}", None)
    return Outcome(exits.PASS if result.passed else exits.FAIL, result.report["first_failure"])


@dataclass(frozen=True)
class Row:
    fault: Fault
    injected: Outcome
    clean: Outcome

    @property
    def ok(self) -> bool:
        if self.clean.status != exits.PASS or self.injected.status != exits.FAIL:
            return False
        problem_ok = self.fault.problem is None or self.injected.failure["problem"] == self.fault.problem
        return self.injected.where == self.fault.expected and problem_ok

    def detected(self) -> str:
        if isinstance(self.injected.status, str):
            return f"NO ({self.injected.status})"
        if self.injected.status == exits.PASS:
            return "NO"
        if self.clean.status != exits.PASS:
            return "NO (the run without it fails too)"
        problem = self.injected.failure["problem"]
        verdict = "yes" if self.ok else "yes, but ELSEWHERE"
        return f"{verdict} ({problem})" if problem else verdict

    def cells(self) -> tuple[str, ...]:
        found = self.injected.where or ("", "", "")
        step, stage, tensor = self.fault.expected
        return (
            f"`{self.fault.name}`",
            self.detected(),
            str(found[0]),
            found[1],
            f"`{found[2]}`" if found[2] else "",
            f"{step}, {stage}, `{tensor}`",
        )


def run_table() -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="backprop-parity-faults-") as tmp:
        for fault in CATALOG.values():
            folder = Path(tmp) / fault.name
            folder.mkdir()
            rows.append(Row(fault, run_once(fault, folder, inject=True), run_once(fault, folder, inject=False)))
    return rows


def markdown(rows: list[Row]) -> str:
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(row.cells()) + " |" for row in rows),
    ]
    return "\n".join(lines)


def print_table() -> int:
    started = time.perf_counter()
    rows = run_table()
    print(markdown(rows))
    bad = [row.fault.name for row in rows if not row.ok]
    seconds = time.perf_counter() - started
    if bad:
        print(f"{PROG}: {len(bad)} of {len(rows)} faults missed or mislocated: {', '.join(bad)}", file=sys.stderr)
        return exits.FAIL
    print(
        f"{PROG}: all {len(rows)} faults detected at the expected step, stage and tensor, and every run "
        f"without its fault passes ({seconds:.1f} s)",
        file=sys.stderr,
    )
    return exits.PASS
