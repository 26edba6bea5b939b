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
import shutil
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import compare.check.sandbox.guard as guard
from compare import exits
from compare.check import Report, check_engine, check_function, check_layer, check_loss, check_model, check_optimizer
from compare.check.sandbox import child, trail
from compare.check.sandbox.child import DEFAULT_MEMORY_GIB, MAX_MEMORY_GIB
from compare.cli import PROG, interrupt
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
        "finding 'timeout: <call>, step, stage' and exit 1. A call that does not stop at the limit (SIGALRM ignored, "
        "C code that never returns) is killed from outside, its whole process group, at the limit + 1 s + a tenth "
        "of the limit: a bound per call, as the number of calls is not known before the check runs "
        f"(default: {guard.DEFAULT_TIME_LIMIT:g}; at most {guard.MAX_TIME_LIMIT:g}, a week)",
    )
    check.add_argument(
        "--memory-limit",
        dest="memory_limit",
        type=float,
        default=DEFAULT_MEMORY_GIB,
        metavar="GIB",
        help=f"the address space your code's process may use, in GiB (default: {DEFAULT_MEMORY_GIB:g}; at most "
        f"{MAX_MEMORY_GIB:g}): an allocation past it is the finding MemoryError",
    )
    check.add_argument(
        "--in-process",
        dest="in_process",
        action="store_true",
        help="run your code in the checker's own process, not in a child: starts faster, but os._exit, a crash "
        "or a signal in your code then ends the checker with no report",
    )
    check.set_defaults(handler=check_command)


def load_failed(args: argparse.Namespace, failure) -> int:
    """The file raised (or exited, or timed out) while loading: one line, and in a sandboxed child the report
    in the run directory its parent made."""
    timeout = failure.problem == "timeout"
    print(failure.message if timeout else f"{args.file} raised while loading: {failure.message}", file=sys.stderr)
    if args.traceback and failure.traceback:
        print(failure.traceback, file=sys.stderr)
    if trail.inside():  # the parent of a child that died reports in a run directory: so does a child that failed
        run_dir = new_run_dir(Path(args.logdir), args.run_name, "check-{time}")
        loading = {"problem": failure.problem, "message": failure.message}
        write_report({"file": str(args.file), "passed": False, "load": loading}, run_dir, args.json)
    return exits.FAIL


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


def missing_names(file: str, namespace: dict[str, Any]) -> str:
    """The one line for a file that defines no check whole: the names a begun check lacks (a loss's ``targets``,
    a model's ``y``: the labels), or every check's names when none is begun."""
    for name, (_, keys, _) in CONVENTION.items():
        if all(key in namespace for key in keys[:2]):  # your code and its torch twin: the check is begun
            missing = [key for key in keys if key not in namespace]
            return (
                f"{file} defines {', '.join(k for k in keys if k in namespace)} but not {', '.join(missing)}: "
                f"a {name} check needs {', '.join(keys)}"
            )
    names = "; ".join(f"{name}: {', '.join(keys)}" for name, (_, keys, _) in CONVENTION.items())
    return f"{file} defines none of the checks' names ({names})"


def keywords(function: Any) -> set[str]:
    """The keyword options ``function`` takes (``options`` gives them; the file's names give the others)."""
    return {p.name for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY}


def checked_options(file: str, namespace: dict[str, Any], checks: dict[str, tuple]) -> None:
    """``InputError`` for ``options`` that is no dict, or names an option none of the file's checks takes (a
    typo, ``step`` for ``steps``, would otherwise be dropped without a word)."""
    options = namespace.get("options", {})
    if not isinstance(options, Mapping):
        raise InputError(f"{file}: options is a {type(options).__name__}: a dict of keyword options, {{'steps': 5}}")
    taken = set().union(*(keywords(function) for function, _, _ in checks.values()))
    unknown = sorted(str(key) for key in options if key not in taken)
    if unknown:
        raise InputError(
            f"{file}: options {', '.join(unknown)}: taken by none of its checks ({', '.join(checks)}), which take "
            f"{', '.join(sorted(taken))}"
        )


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
    limits = {"--time-limit": (args.time_limit, guard.MAX_TIME_LIMIT, "seconds")}
    limits["--memory-limit"] = (args.memory_limit, MAX_MEMORY_GIB, "GiB")
    for flag, (value, most, unit) in limits.items():
        if not (0 < value <= most):  # NaN fails too
            raise InputError(f"{flag} must be a positive number of {unit}, at most {most:g}, got {value}")
    check_outputs(Path(args.logdir), {"--json": args.json}, {"FILE.py": args.file})
    if args.in_process or trail.inside():
        return check_here(args)
    return check_in_child(args)


def check_in_child(args: argparse.Namespace) -> int:
    """The check in a child process (``compare.check.sandbox.child``); a child that died is the finding."""
    argv = ["check", args.file, "--logdir", args.logdir, "--time-limit", repr(args.time_limit)]
    argv += [*(["--run-name", args.run_name] if args.run_name is not None else [])]
    argv += [*(["--json", args.json] if args.json is not None else []), *(["--traceback"] if args.traceback else [])]
    ended = child.run(argv, args.memory_limit, args.time_limit)
    if ended.stopped is not None:
        return stopped(args, ended)
    if ended.finished:
        return ended.status
    run_dir = ended.run_dir or new_run_dir(Path(args.logdir), args.run_name, "check-{time}")
    line = ended.line(args.file)
    document = {"file": str(args.file), "passed": False, "died": {**ended.to_dict(), "line": line}, "checks": {}}
    write_report(document, run_dir, args.json)
    print(line)
    print(f"report: {run_dir / 'report.json'}")
    return exits.FAIL


def stopped(args: argparse.Namespace, ended: child.Ended) -> int:
    """A signal reached this process while the child ran: the child's group is killed (``child.run``); one line
    saying what was kept, a report saying where the check was in the run directory the child made, 130 or 143."""
    if not isinstance(ended.stopped, KeyboardInterrupt | interrupt.Terminated):
        raise ended.stopped  # not a signal's: nothing to say here
    signum = getattr(ended.stopped, "signum", signal.SIGINT)
    name = signal.Signals(signum).name
    if ended.run_dir is None:
        kept = "nothing was written (the check had not made its run directory)"
    elif ended.finished:
        kept = f"kept: {ended.run_dir / 'report.json'} (the check had ended)"
    else:
        step, stage, where = ended.call()
        at = {"signal": name, "step": int(step) if step.isdigit() else None, "stage": stage, "where": where}
        document = {"file": str(args.file), "passed": False, "interrupted": at, "checks": {}}
        write_report(document, ended.run_dir, args.json)
        kept = f"kept: {ended.run_dir} (report.json: interrupted at step {step or 0}, stage {stage or 'load'})"
    print(f"{PROG}: interrupted ({name}); the process running your code was ended; {kept}", file=sys.stderr)
    return exits.SIGNAL_BASE + signum


def write_report(document: dict, run_dir: Path, also: str | None) -> None:
    text = json.dumps(document, indent=2)
    (run_dir / "report.json").write_text(text)
    if also is not None:
        Path(also).write_text(text)


def check_here(args: argparse.Namespace) -> int:
    """The check in this process (in a sandboxed child, its calls into user code traced, and its end: the
    parent ends the child's process group soon after, should a thread of the user's keep it alive)."""
    if not trail.inside():
        return check_file(args)
    trail.start()
    try:
        status = check_file(args)
    except InputError:
        trail.finish(exits.USAGE)
        raise
    except BaseException:
        trail.finish(exits.FAIL)  # the checker's own error: its traceback follows
        raise
    trail.finish(status)
    return status


def check_file(args: argparse.Namespace) -> int:
    """Load the file, run each check it defines, write the reports, print the verdicts."""
    torch.set_num_threads(1)  # small tensors: torch's extra threads only spin
    try:
        namespace = load(args.file, args.time_limit)
    except guard.UserCodeError as error:
        return load_failed(args, error.failure)
    checks = found_checks(namespace)
    if not checks:
        raise InputError(missing_names(args.file, namespace))
    checked_options(args.file, namespace, checks)
    run_dir = new_run_dir(Path(args.logdir), args.run_name, "check-{time}")
    if trail.inside():
        trail.made(run_dir)
    try:
        reports = {name: run_check(*found, namespace, run_dir, args.time_limit) for name, found in checks.items()}
    except InputError:  # bad input (a check that compared nothing, say) writes nothing: not even a model's
        shutil.rmtree(run_dir)  # curves, nor the directory, made by this command a moment ago
        raise
    document = {"file": str(args.file), "passed": all(r.passed for r in reports.values())}
    document["checks"] = {name: report.to_dict() for name, report in reports.items()}
    write_report(document, run_dir, args.json)
    for name, report in reports.items():
        report.save_html(run_dir / f"report-{name}.html")  # one page per check, to send (compare.output.html)
        print(f"[{name}] {report}")
        failure = report.first_failure
        if args.traceback and failure is not None and failure.traceback:
            print(failure.traceback, file=sys.stderr)
    print(f"report: {run_dir / 'report.json'}")
    return exits.PASS if document["passed"] else exits.FAIL
