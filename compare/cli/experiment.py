"""``backprop-parity experiment NAME``: one of the lecture's experiments, trained by both twins in
lockstep (parity asserted at every step), logged to TensorBoard, ending with a conclusion that carries
the measured numbers. ``backprop-parity experiment --list`` lists them.

``--lang ko`` prints the headings, the tables' column names and the conclusion in Korean (the gettext
catalog of ``compare.i18n``); the numbers are the same in every language. English is the default.

Exit status: 0 parity held throughout, 1 parity broke (the experiment stops and says where),
2 bad input or usage (one line on stderr), 130 interrupted.
"""

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import torch

from compare import exits
from compare.errors import InputError
from compare.experiments import EXPERIMENTS, datasets
from compare.experiments.base import DTYPE, ParityError, Session
from compare.i18n import DEFAULT, LANGUAGES, _, language
from compare.inputs import config as cfg
from compare.inputs.safety import check_outputs
from compare.output import report, textwidth
from compare.output.rundir import new_run_dir

FLAGS = {"steps": "--steps", "seed": "--seed", "dataset": "--dataset"}  # Params field → the flag that sets it


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "experiment",
        help="run one of the lecture's experiments on how backprop behaves (--list shows them)",
        description="Run one of the lecture's experiments: the manual and torch twins train in lockstep with parity "
        "asserted at every step, every curve goes to TensorBoard for both, and a conclusion with the measured "
        "numbers ends it. Exit 0 when parity held throughout, 1 when it broke, 2 on bad input.",
        epilog=defaults_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", choices=list(EXPERIMENTS), metavar="NAME", help="the experiment to run")
    parser.add_argument("--list", action="store_true", help="list the experiments, one line each, and exit")
    parser.add_argument("--steps", type=int, help="optimizer steps of each training sub-run (default: per experiment)")
    parser.add_argument("--seed", type=int, help="fixes data, initial weights and batch order (default: 0)")
    parser.add_argument(
        "--dataset",
        choices=datasets.NAMES,
        help="; ".join(f"{name}: {text}" for name, text in datasets.DESCRIPTIONS.items())
        + " (default: per experiment)",
    )
    parser.add_argument(
        "--logdir", default="runs", help="TensorBoard root; each invocation gets a new directory in it (default: runs)"
    )
    parser.add_argument(
        "--no-tensorboard",
        dest="tensorboard",
        action="store_false",
        help="write no event files (the run directory still gets summary.json)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the summary here (replaced if it exists)")
    parser.add_argument(
        "--lang",
        choices=LANGUAGES,
        default=DEFAULT,
        help="language of the headings, tables and conclusion: en (default) or ko (Korean); the numbers are the same",
    )
    parser.set_defaults(handler=experiment_command)


def defaults_text() -> str:
    """Each experiment's options and their defaults, for ``--help``."""
    lines = ["experiments and their defaults (--list describes each):"]
    for name, experiment in EXPERIMENTS.items():
        defaults = experiment.params()
        options = ", ".join(f"{FLAGS[option]} {getattr(defaults, option)}" for option in experiment.options())
        lines.append(f"  {name:<20} {options or 'takes no options'}")
    return "\n".join(lines)


def list_lines() -> list[str]:
    width = max(map(len, EXPERIMENTS))
    return [f"{name:<{width}}  {_(experiment.summary)}" for name, experiment in EXPERIMENTS.items()]


def resolve_params(args: argparse.Namespace):
    """The experiment's ``Params`` with the options given on the command line; a flag the experiment
    does not take is an error, not silently ignored."""
    experiment = EXPERIMENTS[args.name]
    accepted = experiment.options()
    given = {option: getattr(args, option) for option in FLAGS if getattr(args, option) is not None}
    for option in given:
        if option not in accepted:
            takes = ", ".join(FLAGS[o] for o in accepted) or "none of --steps, --seed, --dataset"
            raise InputError(f"experiment {args.name} takes no {FLAGS[option]} (it takes {takes})")
    if "steps" in given and not 1 <= given["steps"] <= cfg.MAX_STEPS:
        raise InputError(f"--steps must be between 1 and {cfg.MAX_STEPS}, got {given['steps']}")
    if "seed" in given and given["seed"] < 0:
        raise InputError(f"--seed must be >= 0, got {given['seed']}")
    try:
        return dataclasses.replace(experiment.params(), **given)
    except ValueError as error:
        raise InputError(f"experiment {args.name}: {error}") from None


def _finite(value):
    """JSON has no NaN or infinity: non-finite numbers are written as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _passed(session: Session, outcome, seconds: float) -> dict:
    """The end of an experiment whose parity held: its table, parity line and conclusion, the verdict line
    last; what it adds to summary.json."""
    for line in [*outcome.table, session.parity_line()]:
        session.say(line)
    conclusion = _("conclusion: {conclusion}").format(conclusion=outcome.conclusion)
    session.say("\n".join(textwidth.wrap(conclusion, min(110, textwidth.terminal_columns()))))
    session.say(_("done in {seconds:.1f} s").format(seconds=seconds))
    session.say(_("PASS: parity held at every step of every sub-run"))  # the verdict line, last
    numbers = {key: _finite(value) for key, value in outcome.numbers.items()}
    session.conclude(["PASS", conclusion, session.parity_line()], outcome.table, True)
    return {"passed": True, "seconds": seconds, "conclusion": outcome.conclusion, "numbers": numbers}


def experiment_command(args: argparse.Namespace) -> int:
    with language(args.lang):
        return _experiment(args)


def _experiment(args: argparse.Namespace) -> int:
    if args.list:
        if args.name is not None:
            raise InputError("give either an experiment NAME or --list, not both")
        print("\n".join(list_lines()))
        return exits.PASS
    if args.name is None:
        raise InputError("name an experiment (backprop-parity experiment --list shows them)")
    check_outputs(Path(args.logdir), {"--json": args.json}, {})
    params = resolve_params(args)
    torch.set_num_threads(1)  # tiny twins taking turns: torch's extra threads only spin against NumPy
    experiment = EXPERIMENTS[args.name]
    root = new_run_dir(Path(args.logdir), None, f"experiment-{args.name}-{{time}}")
    session = Session(args.name, root, sys.stdout, args.tensorboard)
    settings = ", ".join(f"{key} {value}" for key, value in dataclasses.asdict(params).items())
    session.say(_("experiment {name}: {summary}").format(name=args.name, summary=_(experiment.summary)))
    session.say(f"  {settings or _('no settings')} -> {root}")
    summary = {"experiment": args.name, "params": dataclasses.asdict(params), "run_dir": str(root), "lang": args.lang}
    summary["dtype"] = DTYPE  # what `runs` shows for it
    started = time.perf_counter()
    status = exits.PASS
    try:
        outcome = experiment.run(params, session)
    except ParityError as broken:
        failed = _("FAIL: parity broken in sub-run {subrun}; the experiment stops here").format(subrun=broken.subrun)
        session.say(f"{broken.detail}\n{failed}")  # the experiment's verdict line last
        summary |= {"passed": False, "parity_failure": {"subrun": broken.subrun, "detail": broken.detail}}
        status = exits.FAIL
        session.conclude([f"FAIL: parity broken in sub-run {broken.subrun}", broken.detail], [], passed=False)
    except KeyboardInterrupt:
        print(f"backprop-parity: interrupted; the partial summary is {root / 'summary.json'}", file=sys.stderr)
        session.say("INCOMPLETE: interrupted")
        summary |= {"passed": False, "interrupted": True}
        status = exits.INTERRUPTED
    else:
        summary |= _passed(session, outcome, time.perf_counter() - started)
    summary["parity"] = [
        {
            "subrun": entry.name,
            "steps": entry.steps,
            "worst_max_rel": entry.worst,
            "measurements": entry.measured,
            "measurements_worst_max_rel": entry.measured_worst,
            "diverged_at": entry.diverged_at,
        }
        for entry in session.parity
    ]
    summary = json.loads(json.dumps(summary, default=str))  # tuples and paths as plain JSON
    report.write_json(root / "summary.json", summary)
    if args.json:
        report.write_json(Path(args.json), summary)
    return status
