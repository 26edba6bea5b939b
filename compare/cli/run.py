"""``backprop-parity run``: train the package's MLP and its torch twin in lockstep and compare every tensor.

The flags become a ``RunConfig`` (``config_from_args``): the command line is parsed here and nowhere
else; ``compare.pipeline.run`` does the rest, as it does for ``compare.run(config)``.
"""

import argparse
import datetime as dt
import signal
import sys
from pathlib import Path

import torch

from compare import faults, pipeline
from compare.cli import PROG, exits
from compare.cli.optimizer_flags import add_flags, given, hyperparameter_fields
from compare.core import distributed
from compare.errors import InputError
from compare.inputs import data, devices, world
from compare.inputs.config import DTYPES, MAX_STEPS, RunConfig, parse_layers
from compare.inputs.prepare import prepare
from compare.output.progress import StepPrinter
from manual.optim import REGISTRY
from manual.optim.variants import VARIANTS
from manual.spec import ACTIVATION_NAMES, LOSS_NAMES


def add_parser(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "run",
        help="train both twins in lockstep and compare every tensor",
        description="Train the manual MLP and its torch twin from the same weights on the same batches; "
        "compare forward outputs, loss, gradients, optimizer state and parameters at every step. "
        "Exit 0 when parity holds, 1 when it breaks, 2 on bad input.",
    )
    opt = run.add_argument_group(
        "optimizer (torch.optim names and defaults; flags an optimizer does not take are errors)"
    )
    opt.add_argument(
        "--optimizer",
        choices=list(REGISTRY),
        help="momentum and nesterov are torch.optim.SGD with momentum 0.9 (default: adam)",
    )
    add_flags(opt)
    _training_loop_flags(opt)
    _model_flags(run)
    _data_flags(run)
    _process_flags(run)
    _output_flags(run)
    run.set_defaults(handler=run_command)


def _training_loop_flags(opt: argparse._ArgumentGroup) -> None:
    opt.add_argument(
        "--lr-schedule",
        metavar="SCHEDULE",
        help="torch.optim.lr_scheduler applied after each step: step:STEP_SIZE:GAMMA, exp:GAMMA, cosine:T_MAX, "
        "warmup:STEPS, or warmup:W,cosine:T (one after the other) (default: constant)",
    )
    opt.add_argument(
        "--clip-grad-norm",
        dest="clip_grad_norm",
        type=float,
        metavar="MAX",
        help="clip the global gradient norm as torch.nn.utils.clip_grad_norm_ (default: off)",
    )
    opt.add_argument(
        "--variant",
        choices=list(VARIANTS),
        help="run a textbook rule on the manual side against torch's, to see when and by how much it departs "
        "(implies --keep-going and the optimizer it is compared with)",
    )
    opt.add_argument(
        "--inject",
        choices=list(faults.CATALOG),
        metavar="FAULT",
        help="put this known mistake into the manual side, to see the checker catch it "
        "(`backprop-parity faults` lists them and the arguments each needs)",
    )


def _model_flags(run: argparse.ArgumentParser) -> None:
    model = run.add_argument_group("model")
    model.add_argument("--layers", metavar="W0,W1,...", help="widths, input first (default: D,16,16,C from the data)")
    model.add_argument("--activation", choices=ACTIVATION_NAMES, default="relu", help="(default: relu)")
    model.add_argument("--loss", choices=LOSS_NAMES, default="cross_entropy", help="(default: cross_entropy)")
    model.add_argument(
        "--weights",
        metavar="FILE.npz",
        help="initial weights, keyed by state_dict name (0.weight, 0.bias, 2.weight, ...), "
        "torch layout (out, in) (default: He/Glorot init from --seed)",
    )
    model.add_argument("--save-weights", metavar="FILE.npz", help="write the final manual weights, same format")
    model.add_argument(
        "--dropout",
        type=float,
        default=0.0,
        metavar="P",
        help="inverted dropout after each hidden activation; the manual mask is injected into torch (default: 0, none)",
    )
    model.add_argument("--batchnorm", action="store_true", help="BatchNorm1d between each hidden Linear and activation")


def _data_flags(run: argparse.ArgumentParser) -> None:
    train = run.add_argument_group("data and training")
    train.add_argument("--dataset", choices=data.BUILTIN, help="built-in data generated from --seed (default: spiral)")
    train.add_argument(
        "--data",
        metavar="FILE.npz",
        help="your data: X float (N, D); y int labels (N,) or, for mse, float targets (N, C)",
    )
    train.add_argument("--steps", type=int, default=500, help=f"optimizer steps, 1 to {MAX_STEPS} (default: 500)")
    train.add_argument(
        "--batch-size",
        dest="batch_size",
        type=int,
        default=32,
        help="examples per step, shuffled each epoch (default: 32)",
    )
    train.add_argument(
        "--seed", type=int, default=0, help="fixes the data, the initial weights and the batch order (default: 0)"
    )
    train.add_argument("--dtype", choices=tuple(DTYPES), default="float64", help="(default: float64)")
    train.add_argument(
        "--resync",
        action="store_true",
        help="after each step copy torch's parameters, buffers and optimizer state into the manual side, so "
        "each step is compared from identical values: rounding cannot build up over the run, a wrong rule "
        "still shows at the step it acts (not with --variant)",
    )
    train.add_argument(
        "--strict-trajectory",
        action="store_true",
        help="fail at the first departure of the free-running trajectory, drift or not (default: a departure "
        "is judged by one step from identical values: within tolerance it is drift, recorded and resynced)",
    )
    train.add_argument(
        "--gradcheck",
        action="store_true",
        help="a third witness: central finite differences on sampled parameter elements (float64) at step 1 "
        "and at the first step whose gradients disagree, to tell which side is wrong",
    )
    train.add_argument(
        "--val-fraction",
        dest="val_fraction",
        type=float,
        default=0.2,
        help="share of the examples held out for validation curves, never trained on (default: 0.2)",
    )
    train.add_argument(
        "--keep-going",
        action="store_true",
        help="run to the last step after a failure (default: stop at the first failure)",
    )


def _process_flags(run: argparse.ArgumentParser) -> None:
    where = run.add_argument_group("device and processes (the manual side always runs here, on the CPU)")
    where.add_argument(
        "--device",
        choices=devices.DEVICES,
        default="cpu",
        help="where the torch twin runs; cuda runs with TF32 off and deterministic algorithms on, and exits 2 "
        "where no CUDA device exists (default: cpu)",
    )
    where.add_argument(
        "--world-size",
        dest="world_size",
        type=int,
        metavar="N",
        help="run the torch twin as N data-parallel processes (DistributedDataParallel: gloo on cpu, nccl on "
        "cuda), the batch split evenly among them, against the manual full-batch step; this command is rank 0 "
        "and starts the others on 127.0.0.1. Under torchrun, N comes from its environment (default: one "
        "process, no DDP)",
    )
    where.add_argument(
        "--dist-timeout",
        dest="dist_timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="the longest any rank waits for the others (start-up, each step's collectives, the end); a rank "
        "that dies or hangs ends the run with exit 3 after at most this long (default: 60)",
    )


def _output_flags(run: argparse.ArgumentParser) -> None:
    out = run.add_argument_group("output")
    out.add_argument(
        "--logdir", default="runs", help="TensorBoard root; each run gets a new directory in it (default: runs)"
    )
    out.add_argument("--run-name", help="run directory name (default: <time>-<optimizer>-<dtype>); never reused")
    out.add_argument(
        "--json",
        metavar="FILE",
        help="also write the JSON report here (replaced if it exists; runs/<run>/report.json is always written)",
    )
    out.add_argument(
        "--log-every",
        dest="log_every",
        type=int,
        default=25,
        metavar="K",
        help="validation curves, per-parameter norms and histograms every K steps; losses, lr and parity "
        "are logged every step (default: 25)",
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
    """The run the flags describe (checked by ``RunConfig`` itself)."""
    return RunConfig(
        optimizer=args.optimizer,
        hyperparameters=given(args, tuple(hyperparameter_fields())),
        layers=parse_layers(args.layers) if args.layers is not None else None,
        activation=args.activation,
        loss=args.loss,
        dataset=args.dataset,
        data=str(args.data) if args.data is not None else None,
        weights=args.weights,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        dtype=args.dtype,
        stop_at_first_failure=not (args.keep_going or args.variant),
        lr_schedule=args.lr_schedule,
        clip_grad_norm=args.clip_grad_norm,
        dropout=args.dropout,
        batchnorm=args.batchnorm,
        variant=args.variant,
        inject=args.inject,
        val_fraction=args.val_fraction,
        log_every=args.log_every,
        gradcheck=args.gradcheck,
        resync=args.resync,
        strict_trajectory=args.strict_trajectory,
        device=args.device,
        world_size=args.world_size,
    )


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
    printer = StepPrinter(config.steps, lambda line: print(line, flush=True))
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
    if printer.summary():
        print(printer.summary())
    if stop.signum is not None and result.run_dir is not None:
        print(f"{PROG}: interrupted after {result.steps} steps; wrote what was done", file=sys.stderr)
    print(result.verdict)
    if result.warnings:
        print(f"{PROG}: {warnings_line(result.warnings)}", file=sys.stderr)
    if result.aborted is not None:
        print(f"{PROG}: error: {result.aborted}; the report holds the {result.steps} steps done", file=sys.stderr)
        return exits.ABORTED
    if stop.signum is not None:
        return exits.SIGNAL_BASE + int(stop.signum)
    if result.undecidable_from is not None:
        return exits.DIVERGED
    return exits.PASS if result.passed else exits.FAIL


def warnings_line(counts: dict[str, int]) -> str:
    """Every run-time warning of the run (NumPy's overflow, say) in one line, most frequent first."""
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    shown = "; ".join(f"{message} ({count}x)" for message, count in ranked[:3])
    more = f"; {len(ranked) - 3} more kinds" if len(ranked) > 3 else ""
    return f"{sum(counts.values())} run-time warnings: {shown}{more} (the report's first_failure says where)"


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
