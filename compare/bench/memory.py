"""Memory does not grow with run length: peak RSS of a 100-step and a 10,000-step run, side by side.

    .venv/bin/python -m compare.bench.memory [--short 100] [--long 10000]

Each run is a fresh `python -m compare run --keep-going` (TensorBoard on, the defaults otherwise), so
it runs every step whatever the verdict; its peak RSS is read from the kernel's accounting for that
child (os.wait4). Target: long within 10% of short.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile


def peak_rss_mib(steps: int, logdir: str) -> float:
    command = [sys.executable, "-m", "compare", "run", "--steps", str(steps), "--logdir", logdir, "--keep-going"]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1):  # 1: parity broke somewhere, which does not matter here
        raise SystemExit(f"run of {steps} steps exited {child.returncode}")
    return usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=100)
    parser.add_argument("--long", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logdir:
        short, long = peak_rss_mib(args.short, logdir), peak_rss_mib(args.long, logdir)
    result = {
        "steps": [args.short, args.long],
        "peak_rss_mib": [round(short, 1), round(long, 1)],
        "ratio": round(long / short, 3),
    }
    print(json.dumps(result, indent=2))
    return 0 if result["ratio"] <= 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())
