"""Refresh the README's dashboard screenshots from a real run.

    .venv/bin/python scripts/screenshot.py        (needs Debian's chromium: apt-get install chromium)

Runs a parity check into a temporary log directory, serves it with a real TensorBoard on
127.0.0.1, and has headless Chromium capture the custom-scalars and time-series dashboards into
docs/img/. Rerun it whenever the TensorBoard layout changes.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img"
RUN = ["--optimizer", "adam", "--steps", "400", "--lr-schedule", "warmup:40,cosine:360", "--run-name", "spiral-adam"]
PAGES = {"custom_scalars.png": "#custom_scalars", "time_series.png": "#timeseries"}


def wait_for_url(process: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if match:
            return match.group(0)
    raise SystemExit("TensorBoard did not start")


def main() -> int:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("screenshot.py: chromium not found; install Debian's: apt-get install chromium", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        logdir = Path(tmp) / "runs"
        subprocess.run([sys.executable, "-m", "compare", "run", *RUN, "--logdir", str(logdir)], check=True)
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tensorboard.main",
                "--logdir",
                str(logdir),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--reload_interval",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TMPDIR": tmp},
        )
        try:
            url = wait_for_url(server, 60)
            for _ in range(120):  # until the three sub-runs are loaded
                with urllib.request.urlopen(url + "data/runs", timeout=10) as response:
                    if len(json.loads(response.read())) >= 3:
                        break
                time.sleep(0.5)
            for name, fragment in PAGES.items():
                subprocess.run(
                    [
                        chromium,
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--no-first-run",
                        "--disable-sync",
                        f"--user-data-dir={tmp}/chromium",
                        "--window-size=1400,1350",
                        "--hide-scrollbars",
                        "--virtual-time-budget=20000",
                        f"--screenshot={OUT / name}",
                        url + fragment,
                    ],
                    check=True,
                    capture_output=True,
                )
                print(f"wrote {OUT / name}")
        finally:
            server.terminate()
            server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
