"""SIGINT or SIGTERM at any moment, from the first instruction on (imports, start-up, the first steps,
training), ends ``run`` with 130 or 143 soon after, never a run to its end, a traceback or a death by signal."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Generous: the machine running the suite may be busy; a lost signal instead runs 3,000 steps (20 s and more)
# and exits 0, and a death by the signal itself reads -2 or -15.
BOUND = 8.0
# Seconds after the program is importing NumPy (which only ``main`` does: our code is running, the heavy
# imports under way): in the imports, in start-up or the first steps, training.
DELAYS = [0.0, 1.0, 3.0]
SIGNALS = [(signal.SIGINT, 130), (signal.SIGTERM, 143)]


def wait_until_importing(process: subprocess.Popen, library: str = "_multiarray_umath", within: float = 60.0) -> None:
    """Until ``library`` is mapped into ``process`` (read from ``/proc``: no timing guess)."""
    maps = Path(f"/proc/{process.pid}/maps")
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and process.poll() is None:
        if library in maps.read_text():
            return
        time.sleep(0.005)
    raise AssertionError(f"{library} never loaded")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc to know the imports are under way")
@pytest.mark.parametrize("delay", DELAYS)
@pytest.mark.parametrize(("sig", "status"), SIGNALS)
def test_a_signal_at_any_moment_ends_the_run_with_its_status(sig, status, delay, tmp_path):
    command = [sys.executable, "-m", "compare", "run", "--steps", "3000", "--logdir", str(tmp_path / "runs")]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    try:
        wait_until_importing(process)
        time.sleep(delay)
        sent = time.monotonic()
        process.send_signal(sig)
        _, err = process.communicate(timeout=120)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == status, err
    assert took < BOUND and "Traceback" not in err, err
    assert "interrupted" in err or "terminated" in err, err
    written = list((tmp_path / "runs").glob("*/report.json"))
    assert not written or str(written[0].parent) in err  # what was written, and where it is said
