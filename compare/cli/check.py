"""``backprop-parity check FILE.py``: check the user's own code, defined in a Python file by these names.

=============  ==========================================================================
check          names the file defines (module level)
=============  ==========================================================================
layer          ``layer``, ``torch_module``, ``x``
loss           ``loss``, ``torch_loss``, ``scores``, ``targets``
optimizer      ``optimizer``, ``torch_optimizer_class``, ``hyperparameters``
model          ``model``, ``torch_model``, ``torch_loss``, ``X``, ``y`` (and ``optimizer`` with
               ``torch_optimizer``, both or neither)
function       ``function`` (a custom ``autograd.Function`` or its ``.apply``), ``reference``
               (the plain torch composition), ``inputs`` (a tuple of tensors or arrays)
engine         ``engine`` (what makes a leaf of your autograd engine: ``Value``, say)
=============  ==========================================================================

``options`` (a dict) gives keyword options to every check that takes them (``steps``, ``dtype``,
``mapping``, ``lr_schedule``, ``batch_size``, ...). Each check found runs; each verdict table is printed;
``report.json`` and a ``report-<check>.html`` page per check go into a new run directory under
``--logdir``, with a model's TensorBoard curves (``manual/``, ``torch/``, ``parity/``, as a ``run`` writes
them). Exit 0 when every check passes, 1 when
one fails (an exception in the user's code is a finding: one line, the traceback only with
``--traceback``), 2 for bad input.
"""

import argparse
import inspect
import json
import runpy
import sys
from pathlib import Path
from typing import Any

import torch

import compare.check.guard as guard
from compare import exits
from compare.check import Report, check_engine, check_function, check_layer, check_loss, check_model, check_optimizer
from compare.errors import InputError
from compare.inputs.safety import check_outputs
from compare.output.rundir import new_run_dir


def function_check(
    function: Any, reference: Any, inputs: Any, *, dtype: str = "float32", device: str | None = None, seed: int = 0
) -> Report:
    """``check_function`` with the file's ``inputs`` (one tensor or array, or a tuple of them) spread."""
    inputs = tuple(inputs) if isinstance(inputs, list | tuple) else (inputs,)
    return check_function(function, reference, *inputs, dtype=dtype, device=device, seed=seed)


# check name → (function, the file's names given as positional arguments, optional keyword names)
CONVENTION: dict[str, tuple[Any, tuple[str, ...], tuple[str, ...]]] = {
    "layer": (check_layer, ("layer", "torch_module", "x"), ()),
    "loss": (check_loss, ("loss", "torch_loss", "scores", "targets"), ()),
    "optimizer": (check_optimizer, ("optimizer", "torch_optimizer_class", "hyperparameters"), ()),
    "model": (check_model, ("model", "torch_model", "torch_loss", "X", "y"), ("optimizer", "torch_optimizer")),
    "function": (function_check, ("function", "reference", "inputs"), ()),
    "engine": (check_engine, ("engine",), ()),
}


def add_parser(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check",
        help="check your own layer, loss, optimizer, network, autograd.Function or autograd engine (in FILE.py) "
        "against torch",
        description="Check your own code against torch, defined in FILE.py by these module-level names: "
        "a layer: layer, torch_module, x; a loss: loss, torch_loss, scores, targets; an optimizer: optimizer, "
        "torch_optimizer_class, hyperparameters; a network: model, torch_model, torch_loss, X, y (and optimizer "
        "with torch_optimizer, both or neither); a custom autograd.Function: function, reference, inputs; an autograd "
        "engine: engine; optionally options, a dict of keyword options for every check. "
        "Exit 0 when every check passes, 1 when one fails (an exception in your code is a finding), 2 on bad input.",
    )
    check.add_argument(
        "file",
        metavar="FILE.py",
        help="defines layer/torch_module/x, loss/..., optimizer/..., model/..., function/..., engine",
    )
    check.add_argument("--logdir", default="runs", help="each check gets a new directory in it (default: runs)")
    check.add_argument("--run-name", default=None, help="the run directory's name (default: check-<time>)")
    check.add_argument("--json", default=None, metavar="PATH", help="also write the JSON report to PATH")
    check.add_argument("--traceback", action="store_true", help="print the traceback of an exception in your code")
    check.add_argument(
        "--time-limit",
        dest="time_limit",
        type=float,
        default=guard.DEFAULT_TIME_LIMIT,
        metavar="SECONDS",
        help="the longest any one call into your code may take (loading FILE.py included); one past it is the "
        f"finding 'timeout: <call>, step, stage' and exit 1 (default: {guard.DEFAULT_TIME_LIMIT:g})",
    )
    check.set_defaults(handler=check_command)


def found_checks(namespace: dict[str, Any]) -> dict[str, tuple]:
    """The checks whose names the file defines (``loss`` needs ``scores``: a model's file defines
    ``torch_loss`` and maybe ``optimizer`` without meaning a loss or optimizer check)."""
    found = {}
    for name, (function, positional, optional) in CONVENTION.items():
        if all(key in namespace for key in positional):
            found[name] = (function, [namespace[key] for key in positional], optional)
    if "model" in found:
        found.pop("optimizer", None)  # the model's optimizer, checked through the model
    return found


def run_check(
    function, args: list, optional: tuple[str, ...], namespace: dict[str, Any], run_dir: Path, time_limit: float
) -> Report:
    """One check with the file's ``options`` it accepts (``--time-limit`` over the file's ``time_limit``);
    a model's curves go into the run directory."""
    accepted = inspect.signature(function).parameters
    options = {key: value for key, value in dict(namespace.get("options", {})).items() if key in accepted}
    options.update({key: namespace[key] for key in optional if key in namespace})
    if "tensorboard_dir" in accepted:
        options["tensorboard_dir"] = run_dir
    if "time_limit" in accepted:
        options["time_limit"] = time_limit
    return function(*args, **options)


def load(path: str, time_limit: float) -> dict[str, Any]:
    """The file's names, its module-level code run under the time limit (a hang there is a finding too)."""
    file = Path(path)
    if file.suffix != ".py" or not file.is_file():
        raise InputError(f"{path}: not a Python file")
    with guard.time_limit(time_limit):
        return guard.call(0, "load", path, runpy.run_path, str(file), run_name="backprop_parity_check")


def check_command(args: argparse.Namespace) -> int:
    if not (0 < args.time_limit < float("inf")):
        raise InputError(f"--time-limit must be a positive number of seconds, got {args.time_limit}")
    check_outputs(Path(args.logdir), {"--json": args.json}, {"FILE.py": args.file})
    torch.set_num_threads(1)  # small tensors: torch's extra threads only spin
    try:
        namespace = load(args.file, args.time_limit)
    except guard.UserCodeError as error:
        failure = error.failure
        timeout = failure.problem == "timeout"
        print(failure.message if timeout else f"{args.file} raised while loading: {failure.message}", file=sys.stderr)
        if args.traceback and failure.traceback:
            print(failure.traceback, file=sys.stderr)
        return exits.FAIL
    checks = found_checks(namespace)
    if not checks:
        names = "; ".join(f"{name}: {', '.join(keys)}" for name, (_, keys, _) in CONVENTION.items())
        raise InputError(f"{args.file} defines none of the checks' names ({names})")
    run_dir = new_run_dir(Path(args.logdir), args.run_name, "check-{time}")
    try:
        reports = {name: run_check(*found, namespace, run_dir, args.time_limit) for name, found in checks.items()}
    except InputError:
        if not any(run_dir.iterdir()):
            run_dir.rmdir()  # bad input writes nothing
        raise
    document = {"file": str(args.file), "passed": all(r.passed for r in reports.values())}
    document["checks"] = {name: report.to_dict() for name, report in reports.items()}
    text = json.dumps(document, indent=2)
    (run_dir / "report.json").write_text(text)
    if args.json is not None:
        Path(args.json).write_text(text)
    for name, report in reports.items():
        report.save_html(run_dir / f"report-{name}.html")  # one page per check, to send (compare.output.html)
        print(f"[{name}] {report}")
        failure = report.first_failure
        if args.traceback and failure is not None and failure.traceback:
            print(failure.traceback, file=sys.stderr)
    print(f"report: {run_dir / 'report.json'}")
    return exits.PASS if document["passed"] else exits.FAIL
