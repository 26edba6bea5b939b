"""``backprop-parity`` (also ``python -m compare``): exit 0 parity holds, 1 parity broken,
2 bad input or usage (one line on stderr, no traceback), 3 a data-parallel run could not finish
(a rank failed or timed out; the report holds the steps done)."""

import argparse
import datetime as dt
import importlib
import os
import signal
import sys
from pathlib import Path

import torch

from compare import config as cfg
from compare import data, devices, distributed, engine, faults, report
from compare.errors import InputError
from compare.npz import write_npz
from compare.tensorboard import RunWriters
from manual.optim import OPTIMIZERS
from manual.optim.variants import VARIANTS
from manual.spec import ACTIVATION_NAMES, LOSS_NAMES

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_ABORTED = 0, 1, 2, 3
PROG = "backprop-parity"


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (and exit 2), not a usage block."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def betas(text: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected B1,B2 such as 0.9,0.999, got {text!r}")
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers B1,B2, got {text!r}") from None


# Every other command lives in its own module, whose add_parser(commands) adds a sub-parser and sets
# its ``handler`` (a function of the parsed arguments returning the exit status); raising InputError
# there gives the one-line message and exit 2.
COMMAND_MODULES: tuple[str, ...] = (
    "compare.runs_cli",
    "compare.faults_cli",
    "compare.experiment_cli",
    "compare.bench_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Prove hand-written backprop right: a NumPy MLP and its torch twin, "
        "trained in lockstep, every tensor compared at every step.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    add_run_parser(commands)
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(commands)
    return parser


def add_run_parser(commands: argparse._SubParsersAction) -> None:
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
        choices=list(OPTIMIZERS),
        help="momentum and nesterov are torch.optim.SGD with momentum 0.9 (default: adam)",
    )
    opt.add_argument(
        "--lr",
        type=float,
        help="learning rate (default: "
        + ", ".join(f"{name} {lr}" for name, lr in cfg.DEFAULT_LR.items())
        + "; chosen so the default spiral run visibly learns)",
    )
    opt.add_argument(
        "--momentum", type=float, help="sgd, momentum, nesterov, rmsprop: μ (default: 0; 0.9 for momentum, nesterov)"
    )
    opt.add_argument("--dampening", type=float, help="sgd, momentum: τ (default: 0)")
    opt.add_argument("--nesterov", action="store_true", help="sgd, momentum: Nesterov momentum")
    opt.add_argument("--betas", type=betas, metavar="B1,B2", help="adam, adamw: β1,β2 (default: 0.9,0.999)")
    opt.add_argument(
        "--eps", type=float, help="adam, adamw, rmsprop, adagrad: ε, outside the root (default: 1e-8; adagrad 1e-10)"
    )
    opt.add_argument(
        "--weight-decay",
        dest="weight_decay",
        type=float,
        help="λ: L2 added to the gradient; adamw decays the weights directly (default: 0; adamw 0.01)",
    )
    opt.add_argument("--amsgrad", action="store_true", help="adam, adamw: keep the running max of exp_avg_sq")
    opt.add_argument("--alpha", type=float, help="rmsprop: smoothing constant (default: 0.99)")
    opt.add_argument("--centered", action="store_true", help="rmsprop: normalise by the gradient's estimated variance")
    opt.add_argument("--lr-decay", dest="lr_decay", type=float, help="adagrad: (default: 0)")
    opt.add_argument(
        "--initial-accumulator-value", dest="initial_accumulator_value", type=float, help="adagrad: (default: 0)"
    )
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
    train = run.add_argument_group("data and training")
    train.add_argument("--dataset", choices=data.BUILTIN, help="built-in data generated from --seed (default: spiral)")
    train.add_argument(
        "--data",
        metavar="FILE.npz",
        help="your data: X float (N, D); y int labels (N,) or, for mse, float targets (N, C)",
    )
    train.add_argument("--steps", type=int, default=500, help=f"optimizer steps, 1 to {cfg.MAX_STEPS} (default: 500)")
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
    train.add_argument("--dtype", choices=tuple(cfg.DTYPES), default="float64", help="(default: float64)")
    train.add_argument(
        "--resync",
        action="store_true",
        help="after each step copy torch's parameters, buffers and optimizer state into the manual side, so "
        "each step is compared from identical values: rounding cannot build up over the run, a wrong rule "
        "still shows at the step it acts (not with --variant)",
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
    run.set_defaults(handler=run_command)


def check_output_file(flag: str, path: str | None) -> None:
    if path is not None and not Path(path).parent.is_dir():
        raise InputError(f"{flag} {path}: folder {Path(path).parent} does not exist")
    if path is not None and Path(path).is_dir():
        raise InputError(f"{flag} {path}: is a directory")


def new_run_dir(logdir: Path, run_name: str | None, optimizer: str, dtype: str) -> Path:
    """Create a fresh run directory; an existing one is never reused or overwritten."""
    if run_name is not None and not cfg.RUN_NAME.fullmatch(run_name):
        raise InputError(f"--run-name {run_name!r}: use letters, digits, '.', '_' and '-' (no slashes)")
    if logdir.exists() and not logdir.is_dir():
        raise InputError(f"--logdir {logdir}: exists and is not a directory")
    names = [run_name] if run_name is not None else candidate_names(optimizer, dtype)
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        for name in names:
            try:
                (logdir / name).mkdir()
                return logdir / name
            except FileExistsError:
                continue
    except OSError as error:
        raise InputError(f"--logdir {logdir}: cannot create a run directory ({error.strerror})") from None
    if run_name is not None:
        raise InputError(f"run directory {logdir / run_name} already exists; choose another --run-name")
    raise InputError(f"--logdir {logdir}: too many runs named {names[0]}*")


def candidate_names(optimizer: str, dtype: str) -> list[str]:
    """``<time>-<optimizer>-<dtype>``, then ``-2``, ``-3``, ... if runs started in the same second."""
    stem = f"{dt.datetime.now():%Y%m%d-%H%M%S}-{optimizer}-{dtype}"
    return [stem, *(f"{stem}-{i}" for i in range(2, 1000))]


def run_command(args: argparse.Namespace) -> int:
    # The twins are small and take turns; a second torch thread only spins against NumPy (5x slower
    # on 2 busy cores, measured), so the CLI runs torch on one thread.
    torch.set_num_threads(1)
    check_output_file("--json", args.json)
    check_output_file("--save-weights", args.save_weights)
    prepared = cfg.resolve(args)
    config = prepared.config
    spec = config.spec
    member = distributed.membership(args.world_size)
    device = devices.resolve(config.device)
    if member is not None:
        device = distributed.rank_device(device, member)
        if member.rank != 0:  # started by torchrun: a replica that follows rank 0, which checks and writes
            return serve_torchrun(prepared, member, device, args.dist_timeout)
    run_dir = new_run_dir(Path(args.logdir), args.run_name, config.optimizer, config.dtype)
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    device_settings = devices.configure(device)

    manual_optimizer = VARIANTS[config.variant].optimizer(**config.hyperparameters) if config.variant else None
    lockstep = engine.twins(
        spec,
        prepared.weights,
        config.optimizer,
        config.hyperparameters,
        config.dtype,
        manual_optimizer,
        config.schedule,
        config.clip_grad_norm,
        cfg.dropout_seed(config.seed),
        device,
    )
    if config.inject:
        faults.inject(config.inject, lockstep)

    writers = RunWriters(run_dir, config.dtype, config.log_every, device.type) if args.tensorboard else None
    lockstep.stats_every = config.log_every if writers else None
    lockstep.gradcheck = config.gradcheck
    lockstep.resync = config.resync
    config_json = {**config.to_json(), "device_settings": device_settings}
    if writers:
        writers.start({**config_json, "run_dir": str(run_dir)})
    where = f"torch on {device_settings['device']}"
    if member is not None:
        where += f" as {member.world_size} DDP ranks ({distributed.backend(device)})"
    print(
        f"{PROG}: {config.optimizer} {config.hyperparameters} on {config.dataset}, layers "
        f"{','.join(map(str, config.layers))} {config.activation} {config.loss}, {config.dtype}, "
        f"{config.steps} steps of batch {config.batch_size}, {where} -> {run_dir}",
        flush=True,
    )
    every = max(1, config.steps // 10)
    result = engine.RunResult(keep_records=False)  # streamed: memory does not grow with --steps

    def on_step(record: engine.StepRecord) -> None:
        if len(prepared.X_val) and engine.logs_at(record.step, config.log_every):
            metrics = lockstep.evaluate(prepared.X_val, prepared.targets_val)
            result.validation.append({"step": record.step, **metrics})
            if writers:
                writers.log_validation(record.step, metrics)
        if writers:
            writers.log_step(record, lockstep)
        if record.step % every == 0 or record.step == 1 or record.first_failure:
            worst = max(check.diff.max_rel for check in record.checks)
            status = "ok" if record.first_failure is None else "MISMATCH"
            print(
                f"step {record.step:>6}  loss manual {record.loss_manual:.6f}  torch {record.loss_torch:.6f}  "
                f"worst max_rel {worst:.2e}  {status}",
                flush=True,
            )

    stop = StopRequest()
    previous = {sig: signal.signal(sig, stop.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    group, aborted = None, None
    try:
        if member is not None:
            group = distributed.Group(member, device, args.dist_timeout, args)
            group.attach(lockstep)
        engine.run(
            lockstep, cfg.batch_stream(prepared), config.steps, config.stop_at_first_failure, on_step, result, stop
        )
        if group is not None:
            group.close()
    except distributed.GroupError as error:
        aborted = str(error)
    finally:
        if group is not None and not group.closed:
            group.abort()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if stop.signum is not None:
            print(f"{PROG}: interrupted after {result.steps} steps; writing what was done", file=sys.stderr)
        text = report.verdict(result, config.steps, config.variant)
        if writers:
            writers.finish(text)  # flushes every event file
        document = report.build(result, config_json, run_dir, started_at)
        report.write_json(run_dir / "report.json", document)
        if args.json:
            report.write_json(Path(args.json), document)
    print(text)
    if aborted is not None:
        print(f"{PROG}: error: {aborted}; the report holds the {result.steps} steps done", file=sys.stderr)
        return EXIT_ABORTED
    if stop.signum is not None:
        return 128 + int(stop.signum)  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM
    if args.save_weights:
        write_npz(Path(args.save_weights), lockstep.manual_model.state_dict())
    return EXIT_PASS if result.passed else EXIT_FAIL


def serve_torchrun(
    prepared: cfg.Prepared, member: distributed.Membership, device: torch.device, timeout_s: float
) -> int:
    """A rank other than 0 under torchrun: join torchrun's group and follow rank 0 to the end."""

    def join(device: torch.device) -> None:
        torch.distributed.init_process_group(distributed.backend(device), timeout=dt.timedelta(seconds=timeout_s))

    try:
        distributed.serve(prepared, member, device, join)
    except (RuntimeError, torch.distributed.DistError) as error:
        print(f"{PROG}: error: rank {member.rank}: {distributed.first_line(error)}", file=sys.stderr)
        return EXIT_ABORTED
    return EXIT_PASS


class StopRequest:
    """Ctrl-C or SIGTERM ends the run at the next step boundary, so the report, the event files and
    the steps they hold agree; a second signal stops at once."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __call__(self) -> bool:
        return self.signum is not None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:  # a second Ctrl-C, after the first asked for a clean stop
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`backprop-parity runs | head`): the files are written
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush fails quietly
        return 128 + signal.SIGPIPE
    except InputError as error:
        one_line = str(error).replace("\r", "\\r").replace("\n", "\\n")  # a path may hold a newline
        print(f"{PROG}: error: {one_line}", file=sys.stderr)
        return EXIT_USAGE
