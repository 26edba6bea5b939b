"""The parent's watch over ``check FILE.py``'s child (``compare.check.sandbox.watchdog``): a call that does not
stop at its alarm is killed from outside, a signal to the parent ends the child too, and nothing the user's
code started outlives the check. Real child processes throughout."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from compare.check import check_layer
from compare.check.sandbox import watchdog
from compare.cli.main import main
from conftest import layer_class, user_layer_file

ROOT = Path(__file__).resolve().parents[1]


LIMIT = 0.5  # seconds: the parent's bound is then 0.5 + 1 + 0.05 s, the test a child's start-up and that
SLEEP = 120  # seconds a stuck call sleeps: were it not killed, the test would fail after this, not hang


def gone(pid: int) -> bool:
    """Whether no process (a zombie aside) has id ``pid``."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def members(group: int) -> list[int]:
    """The live processes in process group ``group``, from /proc (field 5 of stat: the group)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while we looked
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


IGNORE_ALARM = f"signal.signal(signal.SIGALRM, signal.SIG_IGN); time.sleep({SLEEP})"
SWALLOW_ALARM = f"""
        while True:  # catches the alarm's exception and carries on
            try:
                time.sleep({SLEEP})
            except BaseException:
                pass"""

# (where the stuck code sits, the code, the call the line names, its stage)
STUCK = [
    ("module", IGNORE_ALARM, "mine.py, step 0, load", "load"),
    ("forward", SWALLOW_ALARM, "forward(x), step 1, forward", "forward"),
]


@pytest.mark.parametrize(("where", "code", "call", "stage"), STUCK)
def test_a_call_that_does_not_stop_at_its_alarm_is_killed_from_outside(where, code, call, stage, tmp_path, capsys):
    file = user_layer_file(tmp_path, **{where: code})
    logdir = tmp_path / "runs"
    started = time.monotonic()
    assert main(["check", str(file), "--time-limit", str(LIMIT), "--logdir", str(logdir)]) == 1
    assert time.monotonic() - started < SLEEP / 2
    out = capsys.readouterr().out
    (line,) = [text for text in out.splitlines() if text.startswith("FAIL")]
    assert line.startswith("FAIL: timeout: ") and "killed" in line
    assert f"{call}: did not return within {LIMIT:g} s (time_limit)" in line
    (run_dir,) = logdir.iterdir()
    saved = json.loads((run_dir / "report.json").read_text())
    assert saved["passed"] is False and saved["died"]["problem"] == "timeout"
    assert saved["died"]["stage"] == stage and saved["died"]["time_limit"] == LIMIT


def test_the_bound_is_past_the_limit_so_the_childs_own_alarm_reports_first():
    for limit in (0.01, 1.0, 60.0, 7 * 24 * 3600.0):
        assert watchdog.bound(limit) >= limit + 1.0


@pytest.mark.slow
def test_isolate_kills_a_call_that_ignores_its_alarm(tmp_path, monkeypatch):
    """A notebook's ``check_layer(..., isolate=True)``: the child ignores SIGALRM in forward and sleeps; the
    caller gets the finding ``timeout`` for that call, not a hang."""
    Ignoring = layer_class(tmp_path, monkeypatch, "Ignoring", forward=IGNORE_ALARM)
    started = time.monotonic()
    report = check_layer(Ignoring(), nn.Linear(4, 3), np.ones((2, 4)), isolate=True, time_limit=LIMIT)
    assert time.monotonic() - started < SLEEP / 2
    failure = report.first_failure
    assert not report.passed and failure.problem == "timeout" and (failure.step, failure.stage) == (1, "forward")
    assert f"did not return within {LIMIT:g} s" in failure.line() and "killed" in failure.line()


SLEEPER = f"open(MARK, 'w').write(f'{{os.getpid()}} {{os.getpgid(0)}}'); time.sleep({SLEEP})"


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_the_parent_ends_the_child_and_says_what_was_kept(sig, status, tmp_path):
    mark = tmp_path / "child"
    file = user_layer_file(tmp_path, forward=SLEEPER, mark=str(mark))
    logdir = tmp_path / "runs"
    argv = [sys.executable, "-m", "compare", "check", str(file), "--logdir", str(logdir), "--time-limit", "300"]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen(argv, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: mark.exists() and mark.read_text(), SLEEP / 2), "the child never reached forward"
        child, group = (int(number) for number in mark.read_text().split())
        parent.send_signal(sig)
        _, err = parent.communicate(timeout=30)
    finally:
        parent.kill()
    assert parent.returncode == status, err
    (line,) = err.splitlines()
    assert f"interrupted ({sig.name})" in line and "kept:" in line
    assert wait_for(lambda: gone(child) and not members(group), 5), members(group)
    (run_dir,) = logdir.iterdir()
    saved = json.loads((run_dir / "report.json").read_text())
    assert saved["passed"] is False and saved["interrupted"]["step"] == 1
    assert saved["interrupted"]["stage"] == "forward" and saved["interrupted"]["signal"] == sig.name


FORKS = f"""
        global FORKED
        if not FORKED:  # once: a forked process that sleeps on
            FORKED = True
            pid = os.fork()
            if pid == 0:
                time.sleep({SLEEP})
                os._exit(0)
            open(MARK, "w").write(str(pid))"""
THREAD = f"""
FORKED = False
threading.Thread(target=time.sleep, args=({SLEEP},)).start()  # not a daemon: it keeps the interpreter alive
"""


def test_a_fork_or_a_thread_left_running_does_not_keep_the_check_from_ending(tmp_path, capsys):
    mark = tmp_path / "forked"
    file = user_layer_file(tmp_path, forward=FORKS, module=THREAD, mark=str(mark))
    started = time.monotonic()
    assert main(["check", str(file), "--logdir", str(tmp_path / "runs")]) == 0
    assert time.monotonic() - started < SLEEP / 2
    assert "[layer] PASS" in capsys.readouterr().out
    forked = int(mark.read_text())
    assert wait_for(lambda: gone(forked), 5)
