"""``backprop-parity run``: train the package's MLP and its torch twin in lockstep and compare every tensor.

The flags become a ``RunConfig`` (``config_from_args``): the command line is parsed here and nowhere
else; ``compare.pipeline.run`` does the rest, as it does for ``compare.run(config)``.
"""

import argparse
import dataclasses
import datetime as dt
import signal
import sys
from pathlib import Path

import torch

from compare import exits, faults, pipeline
from compare.cli import PROG
from compare.cli.optimizer_flags import add_flags, given, hyperparameter_fields
from compare.core import distributed
from compare.errors import InputError
from compare.inputs import config, devices, world
from compare.inputs.config import RunConfig, parse_layers, parse_sides
from compare.inputs.config import roles as config_roles
from compare.inputs.flags import flag
from compare.inputs.prepare import prepare
from compare.output import textwidth
from compare.output.progress import StepPrinter

GROUPS = {  # RunConfig's flag groups (compare.inputs.config), titled in --help
    config.OPTIMIZER: "optimizer (torch.optim names and defaults; flags an optimizer does not take are errors)",
    config.MODEL: "model",
    config.DATA: "data and training",
    config.PROCESSES: "device and processes (the manual side always runs here, on the CPU)",
    config.OUTPUT: "output",
}


def add_parser(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "run",
        help="train both twins in lockstep and compare every tensor",
        description="Train the manual MLP and its torch twin from the same weights on the same batches; "
        "compare forward outputs, loss, gradients, optimizer state and parameters at every step. "
        "The verdict is the last line: PASS or PASS (drift adjudicated) exit 0, FAIL or DEPARTS (a textbook "
        "variant) exit 1, DIVERGED exit 4 (both sides alike left the finite numbers, or no step can tell rounding "
        "from a wrong rule), INCOMPLETE exit 130 on Ctrl-C or 3 when a data-parallel rank died or timed out; "
        "2 on bad input (docs/verdicts.md).",
    )
    groups = {key: run.add_argument_group(title) for key, title in GROUPS.items()}
    choices = {"inject": list(faults.CATALOG), "device": devices.DEVICES}  # those config.py cannot import
    for f in dataclasses.fields(RunConfig):
        if "group" in f.metadata:
            _add_field_flag(groups[f.metadata["group"]], f, choices.get(f.name))
        if f.name == "optimizer":
            add_flags(groups[config.OPTIMIZER])  # the optimizer's own keywords, right after --optimizer
    _other_flags(groups)
    run.set_defaults(handler=run_command)


def _add_field_flag(group: argparse._ArgumentGroup, f: dataclasses.Field, choices) -> None:
    """One flag of ``run`` from a ``RunConfig`` field and its metadata (``compare.inputs.config.option``)."""
    meta = dict(f.metadata)
    name = meta.pop("flag", flag(f.name))
    kwargs = {"dest": f.name, "default": f.default, "help": meta.pop("help")}
    meta.pop("group")
    if isinstance(f.default, bool):
        kwargs["action"] = meta.pop("action", "store_true")
    else:
        kwargs["type"] = meta.pop("type", type(f.default) if f.default is not None else str)
        if choices is not None or meta.get("choices"):
            kwargs["choices"] = choices if choices is not None else meta.pop("choices")
    meta.pop("choices", None)
    group.add_argument(name, **kwargs, **meta)


def _other_flags(groups: dict[str, argparse._ArgumentGroup]) -> None:
    """The flags that are not part of the run's configuration: where its outputs go, and the group's timeout."""
    groups[config.MODEL].add_argument(
        "--save-weights", metavar="FILE.npz", help="write the final manual weights, same format"
    )
    groups[config.PROCESSES].add_argument(
        "--dist-timeout",
        dest="dist_timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="the longest any rank waits for the others (start-up, each step's collectives, the end); a rank "
        "that dies or hangs ends the run with exit 3 after at most this long (default: 60)",
    )
    out = groups[config.OUTPUT]
    out.add_argument(
        "--logdir", default="runs", help="TensorBoard root; each run gets a new directory in it (default: runs)"
    )
    out.add_argument(
        "--run-name",
        help="run directory name (default: <time>-<optimizer> and what is not the default, e.g. "
        "20261203-041233-sgd-lr0.3-f32-tanh); never reused",
    )
    out.add_argument(
        "--json",
        metavar="FILE",
        help="also write the JSON report here (replaced if it exists; runs/<run>/report.json is always written)",
    )
    out.add_argument(
        "--no-tensorboard",
        dest="tensorboard",
        action="store_false",
        help="write no event files (the run directory still gets report.json)",
    )


def parse_run_args(argv: list[str]) -> argparse.Namespace:
    """``run``'s flags alone, parsed as the command line parses them (``faults --table`` uses this)."""
    parser = argparse.ArgumentParser(prog=PROG)
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["run", *argv])


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run the flags describe (checked by ``RunConfig`` itself): every field from its own flag."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig) if "group" in f.metadata}
    if values["layers"] is not None:
        values["layers"] = parse_layers(values["layers"])
    if isinstance(values["sides"], str):
        values["sides"] = parse_sides(values["sides"])
    values["stop_at_first_failure"] = values["stop_at_first_failure"] and not values["variant"]  # a variant runs on
    return RunConfig(hyperparameters=given(args, tuple(hyperparameter_fields())), **values)


def output_from_args(args: argparse.Namespace) -> pipeline.Output:
    return pipeline.Output(Path(args.logdir), args.run_name, args.tensorboard, args.json, args.save_weights)


def run_command(args: argparse.Namespace) -> int:
    # The twins are small and take turns; a second torch thread only spins against NumPy (5x slower
    # on 2 busy cores, measured), so the CLI runs torch on one thread.
    torch.set_num_threads(1)
    if not (args.dist_timeout > 0 and args.dist_timeout < float("inf")):
        raise InputError(f"--dist-timeout must be a positive number of seconds, got {args.dist_timeout}")
    config = config_from_args(args)
    member = world.membership(config.world_size)
    if member is not None and member.rank != 0:  # started by torchrun: a replica that follows rank 0
        return serve_torchrun(prepare(config), member, args.dist_timeout)
    stop = StopRequest()
    printer = StepPrinter(config.steps, lambda line: print(line, flush=True), sides=config_roles(config.sides))
    hooks = pipeline.Hooks(
        announce=lambda line: print(f"{PROG}: {line}", flush=True),
        on_step=printer,
        should_stop=stop,
    )
    previous = {sig: signal.signal(sig, stop.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = pipeline.run(config, output_from_args(args), hooks, args.dist_timeout)
    finally:
        printer.close()
        stop.after(previous)
    return finish(result, printer, stop)


def finish(result, printer: StepPrinter, stop: "StopRequest") -> int:
    """What ends the run's output (the verdict line last, after any note on stderr) and its exit status."""
    if printer.summary():
        print(printer.summary(), flush=True)
    if stop.signum is not None:
        name = signal.Signals(stop.signum).name
        report_json = None if result.run_dir is None else result.run_dir / "report.json"
        kept = "nothing was written" if report_json is None else f"the partial report is {report_json}"
        print(f"{PROG}: interrupted ({name}) after {result.steps} steps; {kept}", file=sys.stderr)
    if result.aborted is not None:
        print(f"{PROG}: error: {result.aborted}; the report holds the {result.steps} steps done", file=sys.stderr)
    sys.stderr.flush()
    for line in textwidth.for_terminal(result.verdict):  # by word, to a terminal's width: never inside a number
        print(line, flush=True)
    return result.decision.exit_status(stop.signum, result.aborted is not None)


def serve_torchrun(prepared, member: world.Membership, timeout_s: float) -> int:
    """A rank other than 0 under torchrun: join torchrun's group and follow rank 0 to the end."""
    device = distributed.rank_device(devices.resolve(prepared.config.device), member)

    def join(device: torch.device) -> None:
        torch.distributed.init_process_group(distributed.backend(device), timeout=dt.timedelta(seconds=timeout_s))

    try:
        distributed.serve(prepared, member, device, join)
    except (RuntimeError, torch.distributed.DistError) as error:
        print(f"{PROG}: error: rank {member.rank}: {distributed.first_line(error)}", file=sys.stderr)
        return exits.ABORTED
    return exits.PASS


class StopRequest:
    """Ctrl-C or SIGTERM ends the run at the next step boundary, so the report, the event files and
    the steps they hold agree. A second signal before that boundary is reached stops at once (the report
    of the steps done is still written); once the stop is under way (the loop has ended, the report is
    being written) further signals are ignored, so that nothing interrupts the writing or the exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.honoured = False  # the engine has seen the request: the loop is ending
        self.forced = False

    def handle(self, signum: int, frame: object) -> None:
        if self.signum is None:
            self.signum = signum
        elif not (self.honoured or self.forced):
            self.forced = True
            raise KeyboardInterrupt

    def __call__(self) -> bool:
        self.honoured = self.signum is not None
        return self.honoured

    def after(self, previous: dict) -> None:
        """Restore ``previous`` handlers, unless a stop was asked for: the process is then on its way out,
        and a late signal must not turn into a traceback at exit or a death by signal."""
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_IGN if self.signum is not None else handler)
