"""``backprop-parity runs`` on a log directory of 17 runs and 3 experiments (``many_runs``, built once per
session): the failing runs are named on the first screen, the table fits the terminal, the filters."""

import pytest

from compare.cli import demo
from compare.cli.main import main
from conftest import invoke

SCREEN = (100, 40)  # columns, lines: the terminal the issue was tried on


@pytest.fixture
def terminal(monkeypatch):
    """shutil.get_terminal_size reads COLUMNS and LINES first."""

    def size(columns: int, lines: int = SCREEN[1]) -> None:
        monkeypatch.setenv("COLUMNS", str(columns))
        monkeypatch.setenv("LINES", str(lines))

    size(*SCREEN)
    return size


def table(out: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """(the lines before the header, {run: {column: cell}}), cells cut at the header's column starts."""
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("run "))
    header = lines[at]
    starts = [i for i in range(len(header)) if header[i] != " " and (i == 0 or header[i - 2 : i] == "  ")]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    rows = {}
    for line in lines[at + 1 :]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows[cells[0]] = dict(zip(names, cells, strict=True))
    return lines[:at], rows


def test_the_first_screen_names_every_failing_run_and_fits_the_terminal(many_runs, terminal, capsys):
    logdir, failing = many_runs
    assert len(failing) == 3  # two textbook variants and an injected fault
    status, out, _ = invoke(["runs", "--logdir", str(logdir)], capsys)
    assert status == 0
    lines = out.splitlines()
    assert len(lines) <= SCREEN[1] and max(len(line) for line in lines) <= SCREEN[0]
    headline, rows = table(out)
    assert headline[0].startswith(f"{len(demo.RUNS)} runs and {len(demo.EXPERIMENTS)} experiments under ")
    assert all(name in " ".join(headline) for name in failing)  # named before the table
    assert len(rows) == len(demo.RUNS) + len(demo.EXPERIMENTS)
    assert list(next(iter(rows.values())))[:3] == ["run", "verdict", "special"]  # the name says lr, dtype, ...


def test_each_row_and_name_say_what_made_the_run_special(many_runs, terminal, capsys):
    logdir, _ = many_runs
    terminal(200)
    _, rows = table(invoke(["runs", "--logdir", str(logdir)], capsys)[1])
    by_label = {name.split("-", 2)[2]: row for name, row in rows.items() if not name.startswith("experiment-")}
    assert by_label["sgd-lr0.3"]["lr"] == "0.3" and by_label["sgd"]["lr"] == "0.1"
    assert by_label["sgd-f32-sigmoid"]["dtype"] == "float32" and by_label["sgd-f32-sigmoid"]["activation"] == "sigmoid"
    assert by_label["adam-inject-bias-grad-averaged"]["special"] == "inject bias-grad-averaged"
    assert by_label["adam-inject-bias-grad-averaged"]["verdict"].startswith("FAIL step 1 grad")
    assert by_label["adam_eps_hat"]["verdict"].startswith("DEPARTS step")
    assert by_label["classic_momentum-step"]["special"] == "variant classic_momentum, schedule step:2:0.1"
    assert by_label["adam"]["special"] == "" and by_label["adam"]["verdict"] == "PASS"
    korean = next(row for name, row in rows.items() if name.startswith("experiment-init-"))
    assert (korean["what"], korean["special"]) == ("experiment", "lang ko")


def newest(logdir, count: int) -> list[str]:
    marks = [path for name in ("report.json", "summary.json") for path in logdir.glob(f"*/{name}")]
    return [path.parent.name for path in sorted(marks, key=lambda path: path.stat().st_mtime)][-count:]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--failed"], lambda logdir, failing: set(failing)),
        (["--last", "2"], lambda logdir, failing: set(newest(logdir, 2))),
        (["f32"], lambda logdir, failing: {p.name for p in logdir.iterdir() if "f32" in p.name}),
        (["*-sgd*"], lambda logdir, failing: {p.name for p in logdir.iterdir() if "-sgd" in p.name}),
        (["--failed", "inject"], lambda logdir, failing: {name for name in failing if "inject" in name}),
    ],
    ids=["failed", "last", "substring", "glob", "failed-and-pattern"],
)
def test_filters(many_runs, terminal, capsys, args, expected):
    logdir, failing = many_runs
    status, out, _ = invoke(["runs", "--logdir", str(logdir), *args], capsys)
    assert status == 0
    _, rows = table(out)
    assert set(rows) == expected(logdir, failing) and rows


@pytest.mark.parametrize("columns", [60, 40])
def test_a_narrow_terminal_keeps_the_name_and_the_verdict(many_runs, terminal, capsys, columns):
    logdir, failing = many_runs
    terminal(columns)
    _, rows = table(invoke(["runs", "--logdir", str(logdir), "--failed"], capsys)[1])
    assert set(rows) == set(failing)  # names whole, never cut: `board RUN` takes them
    assert all(row["verdict"][:4] in ("FAIL", "DEPA") for row in rows.values())


def test_a_bad_last_is_one_line_and_exit_2(capsys):
    status, out, err = invoke(["runs", "--last", "0"], capsys)
    assert (
        status == 2 and out == "" and len(err.strip().splitlines()) <= 2 and "--last" in err
    )  # argparse: usage + error


def test_an_empty_log_directory(tmp_path, capsys):
    assert main(["runs", "--logdir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"no runs under {tmp_path}\n"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--all", "NAME"], "--all opens every run"),
        (["--experiment", "no-such"], "--experiment no-such: no such experiment"),
        (["no-such-run"], "no-such-run: no such run"),
    ],
    ids=["all-and-names", "unknown-experiment", "unknown-run"],
)
def test_board_refuses_a_bad_choice_in_one_line_before_serving(many_runs, capsys, args, says):
    logdir, failing = many_runs
    args = [failing[0] if arg == "NAME" else arg for arg in args]
    status, out, err = invoke(["board", "--logdir", str(logdir), "--port", "0", *args], capsys)
    assert status == 2 and out == "" and len(err.splitlines()) == 1 and says in err
