"""``backprop-parity runs [PATTERN] [--failed] [--last N]``: what is under the log directory, one line
per run or experiment (``compare.output.runlist``), oldest first, fitted to the terminal's width.
``runs show RUN`` prints a past run's verdict as the run printed it; ``runs diff A B`` puts two runs side
by side (``compare.output.runview``).

The first line names the failing runs, so they are on the first screen however many runs there are.
Columns that do not fit are dropped, least telling first (``COLUMNS`` lists them by priority); the name
and the verdict always stay, cut with "…" on a very narrow terminal."""

import argparse
import fnmatch
import textwrap
from pathlib import Path

from compare import exits
from compare.errors import InputError
from compare.output import runview, textwidth
from compare.output.runlist import Listed, listing

# (header, field), most telling first: columns are dropped from the end of this list to fit the terminal
# (a run's name already carries its optimizer and whatever is not the default: compare.output.rundir)
COLUMNS = (
    ("run", "name"),
    ("verdict", "verdict"),
    ("special", "special"),
    ("lr", "lr"),
    ("dtype", "dtype"),
    ("what", "what"),
    ("activation", "activation"),
    ("steps", "steps"),
    ("date (UTC)", "date"),
)
KEPT = 2  # the run and its verdict are never dropped (the verdict may be cut)
CUT = {"verdict", "special"}  # long free text: cut with "…" rather than dropped
MIN_CUT = 12
CAP = 30  # the width a cut column is held to when the whole table does not fit
GAP = "  "


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "runs",
        help="list the runs under the log directory",
        description="List each run and experiment under --logdir, oldest first: its verdict, optimizer (or "
        "experiment), what made it special, lr, dtype, activation, steps and date (from its report.json or "
        "summary.json). The first line names the failing ones. Fits the terminal's width.",
    )
    parser.add_argument(
        "words",
        nargs="*",
        metavar="PATTERN | show RUN | diff A B",
        help="only runs whose name holds this text (or matches this glob); `show RUN`: the run's verdict as it "
        "printed it; `diff A B`: two runs' settings and per-stage worst figures side by side",
    )
    parser.add_argument("--logdir", default="runs", help="where the runs are (default: runs)")
    parser.add_argument("--failed", action="store_true", help="only runs that did not pass")
    parser.add_argument("--last", type=positive, metavar="N", help="only the N latest (after the other filters)")
    parser.set_defaults(handler=runs_command)


def matches(name: str, pattern: str | None) -> bool:
    if pattern is None:
        return True
    return fnmatch.fnmatchcase(name, pattern if any(c in pattern for c in "*?[") else f"*{pattern}*")


def fit(rows: list[tuple[str, ...]], width: int) -> list[str]:
    """The table in ``width`` columns. When it does not fit whole, long free text (``CUT``) is held to
    ``CAP``; then columns are taken in ``COLUMNS``' order while they fit; one that does not is cut with
    "…" when it may be, else left out, and the narrower ones after it are still tried. The run and its
    verdict are always kept."""
    natural = [max(textwidth.width(row[i]) for row in rows) for i in range(len(COLUMNS))]  # Hangul takes two
    if sum(natural) + len(GAP) * (len(natural) - 1) > width:  # long free text gives way to more columns
        natural = [min(need, CAP) if field in CUT else need for need, (_, field) in zip(natural, COLUMNS, strict=True)]
    kept: list[tuple[int, int]] = []  # (column, width)
    used = -len(GAP)
    for i, need in enumerate(natural):
        room = width - used - len(GAP)
        if need <= room or i == 0:  # the name is never cut: it is what `board RUN` takes
            kept.append((i, need))
        elif i < KEPT or (COLUMNS[i][1] in CUT and room >= MIN_CUT):
            kept.append((i, max(room, MIN_CUT)))
        else:
            continue
        used += len(GAP) + kept[-1][1]
    lines = []
    for row in rows:
        cells = [textwidth.ljust(textwidth.cut(row[i], w), w) for i, w in kept]
        lines.append(GAP.join(cells).rstrip())
    return lines


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def headline(listed: list[Listed], shown: int, logdir: Path, width: int) -> list[str]:
    """How many, and the failing ones by name, wrapped to the terminal."""
    failing = [entry.name for entry in listed if not entry.passed]
    experiments = sum(entry.what == "experiment" for entry in listed)
    text = f"{plural(len(listed) - experiments, 'run')} and {plural(experiments, 'experiment')} under {logdir}"
    text += f" ({shown} shown)" if shown != len(listed) else ""
    text += f"; {len(failing)} did not pass: {', '.join(failing)}" if failing else "; every one passed"
    return textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False)


def runs_command(args: argparse.Namespace) -> int:
    """``runs``, ``runs PATTERN``, ``runs show RUN`` or ``runs diff A B``; the wrong number of names is a
    usage error, before anything is read."""
    verb, names = (args.words[0], args.words[1:]) if args.words else (None, [])
    logdir = Path(args.logdir)
    if verb == "show":
        if len(names) != 1:
            raise InputError("runs show takes one RUN (a name as `runs` lists it, or a run directory)")
        for line in textwidth.for_terminal(runview.show(runview.find(logdir, names[0]))):
            print(line)
        return exits.PASS
    if verb == "diff":
        if len(names) != 2:
            raise InputError("runs diff takes two runs: runs diff A B")
        a, b = (runview.find(logdir, name) for name in names)
        print("\n".join(runview.diff(a, b, textwidth.terminal_columns())))
        return exits.PASS
    if len(args.words) > 1:
        raise InputError(f"runs takes one PATTERN, got {len(args.words)} (or: runs show RUN, runs diff A B)")
    args.pattern = verb
    return list_runs(args)


def list_runs(args: argparse.Namespace) -> int:
    logdir = Path(args.logdir)
    listed = listing(logdir)
    if not listed:
        print(f"no runs under {logdir}")
        return exits.PASS
    chosen = [entry for entry in listed if matches(entry.name, args.pattern) and (not args.failed or not entry.passed)]
    if args.last is not None:
        chosen = chosen[-args.last :]
    width = textwidth.terminal_columns()
    scope = [entry for entry in listed if matches(entry.name, args.pattern)]
    for line in headline(scope, len(chosen), logdir, width):
        print(line)
    if not chosen:
        print("nothing matches")
        return exits.PASS
    rows = [tuple(header for header, _ in COLUMNS)]
    rows += [tuple(str(getattr(entry, field)) for _, field in COLUMNS) for entry in chosen]
    for line in fit(rows, width):
        print(line)
    return exits.PASS
