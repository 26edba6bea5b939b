"""What a person sees while a run goes: a progress bar on a terminal only, and with --keep-going one
departure line and a summary of how it grew, not a line per failing step."""

import fcntl
import io
import os
import pty
import select
import struct
import termios
import time

from compare.cli.main import main
from compare.output.progress import Bar

STEPS = 40


def read_all(fd: int) -> bytes:
    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal's other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_the_bar_draws_on_a_terminal_with_the_time_left():
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a new pty has 0 columns
    with os.fdopen(follower, "w") as terminal:
        bar = Bar(10, "steps", terminal)
        for done in range(1, 4):
            time.sleep(0.15)  # tqdm redraws at most every 0.1 s
            bar.update(done, "worst max_rel 1.0e-16")
        bar.close()
        terminal.flush()
        drawn = read_all(leader).decode(errors="replace")
    os.close(leader)
    assert "steps:" in drawn and "3/10 [00:00<00:0" in drawn  # tqdm's "elapsed<left"
    assert "worst max_rel 1.0e-16" in drawn


def test_a_closed_bar_erases_its_whole_line_echoed_ctrl_c_included():
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    with os.fdopen(follower, "w") as terminal:
        bar = Bar(10, "steps", terminal)
        bar.update(3)
        terminal.write("^C")  # what the terminal echoes when Ctrl-C is pressed, behind the bar
        bar.close()
        terminal.flush()
        drawn = read_all(leader).decode(errors="replace")
    os.close(leader)
    assert drawn.endswith("\r\x1b[2K")  # the line erased whole, ^C and all: no frozen bar left


def test_no_bar_when_the_output_is_not_a_terminal():
    stream = io.StringIO()
    bar = Bar(10, "steps", stream)
    for done in range(1, 11):
        bar.update(done)
    bar.close()
    assert stream.getvalue() == ""


def test_keep_going_prints_the_departure_once_then_how_it_grew(tmp_path, capsys):
    argv = ["run", "--steps", str(STEPS), "--keep-going", "--inject", "adam-no-bias-correction"]
    assert main([*argv, "--logdir", str(tmp_path)]) == 1
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert out.err == ""  # not a terminal: no bar
    step_lines = [line for line in lines if line.startswith("step ")]
    assert sum("MISMATCH" in line for line in step_lines) == 1
    assert len(step_lines) == 1 + 10  # step 1 and every tenth of the run, not one per failing step
    (departure,) = [line for line in lines if line.startswith("departure: ")]
    assert departure.startswith(f"departure: {STEPS} steps outside tolerance, worst max_rel step 1 ")
    assert lines.index(departure) < next(i for i, line in enumerate(lines) if line.startswith("FAIL:"))


def test_the_bar_starts_under_the_header_and_is_gone_when_the_run_ends():
    """Nothing glued to a 0% bar, and no stale bar left: the last thing on the terminal's line is blank."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    with os.fdopen(follower, "w") as terminal:
        bar = Bar(3, "steps", terminal)
        terminal.write("header: adam on spiral -> runs/x\n")  # printed before the first step
        terminal.flush()
        for done in range(1, 4):
            bar.write(lambda line: print(line, file=terminal, flush=True), f"step {done}")
            bar.update(done)
        bar.close()
        terminal.flush()
        drawn = read_all(leader).decode(errors="replace")
    os.close(leader)
    assert drawn.startswith("header: adam on spiral -> runs/x\r\n")  # a line of its own, before any bar
    assert "step 3\r\n" in drawn and "1/3" in drawn and "0/3" not in drawn  # first drawn at the step done
    last_line = drawn.rsplit("\n", 1)[-1]
    assert last_line.endswith("\r\x1b[2K")  # the bar was erased, its line whole
    assert [part for part in last_line.split("\r") if part][-2].strip() == ""
