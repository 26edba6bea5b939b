"""``backprop-parity`` (also ``python -m compare``): one sub-command per module in ``COMMANDS``; exit
statuses from ``compare.exits``. To add a command, write a module with ``add_parser(commands)``
that adds its sub-parser and sets ``handler`` (a function of the parsed arguments returning the exit
status), and list it here; raising ``InputError`` in the handler gives one line and exit 2."""

import argparse
import importlib
import os
import signal
import sys

from compare import __version__, exits
from compare.cli import PROG, interrupt
from compare.errors import InputError

COMMANDS: tuple[str, ...] = (
    "compare.cli.run",
    "compare.cli.check",
    "compare.cli.runs",
    "compare.cli.board",
    "compare.cli.faults",
    "compare.cli.experiment",
    "compare.cli.bench",
    "compare.cli.docs",
)


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (and exit 2), not a usage block."""

    def error(self, message: str):
        self.exit(exits.USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Prove hand-written backprop right: a NumPy MLP and its torch twin, "
        "trained in lockstep, every tensor compared at every step.",
        epilog="exit status: " + "; ".join(f"{code} {meaning}" for code, meaning in exits.TABLE.items()),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    for module in COMMANDS:
        importlib.import_module(module).add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    previous = interrupt.hold()  # first: a signal from here on is a clean exit 130 or 143
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    finally:
        interrupt.restore(previous)


def _main(argv: list[str]) -> int:
    try:
        if any("\0" in argument for argument in argv):  # the console script cannot pass one; main(argv) can
            raise InputError("an argument holds a NUL byte, which no path or value can")
        args = build_parser().parse_args(argv)  # imports every command, torch among them: seconds
        interrupt.arm()
        return args.handler(args)
    except (KeyboardInterrupt, interrupt.Terminated) as stopped:  # in start-up, or a second signal in a run
        for sig in interrupt.SIGNALS:
            signal.signal(sig, signal.SIG_IGN)  # a further signal must not interrupt the exit
        terminated = isinstance(stopped, interrupt.Terminated)
        print(f"{PROG}: {'terminated' if terminated else 'interrupted'}; nothing more is written", file=sys.stderr)
        return exits.SIGNAL_BASE + stopped.signum if terminated else exits.INTERRUPTED
    except BrokenPipeError:  # the reader went away (`backprop-parity runs | head`): the files are written
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush fails quietly
        return exits.SIGNAL_BASE + signal.SIGPIPE
    except InputError as error:
        one_line = str(error).replace("\r", "\\r").replace("\n", "\\n")  # a path may hold a newline
        print(f"{PROG}: error: {one_line}", file=sys.stderr)
        return exits.USAGE
