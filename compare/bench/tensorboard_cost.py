"""What TensorBoard logging costs: a 2,000-step run with all curves at their defaults against the
same run with --no-tensorboard, alternated and repeated; prints the medians and their ratio.

    .venv/bin/python -m compare.bench.tensorboard_cost [--steps 2000] [--repeats 3]

Target (issue: TensorBoard that tells the story of every run): ratio at most 1.20.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_run(steps: int, logdir: Path, tensorboard: bool) -> float:
    command = [sys.executable, "-m", "compare", "run", "--steps", str(steps), "--logdir", str(logdir)]
    if not tensorboard:
        command.append("--no-tensorboard")
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"tensorboard": [], "no_tensorboard": []}
    with tempfile.TemporaryDirectory() as logdir:
        for _ in range(args.repeats):  # alternate, so drift in machine load hits both alike
            times["tensorboard"].append(timed_run(args.steps, Path(logdir), True))
            times["no_tensorboard"].append(timed_run(args.steps, Path(logdir), False))
    medians = {key: statistics.median(values) for key, values in times.items()}
    result = {
        "steps": args.steps,
        "seconds": times,
        "median_seconds": medians,
        "ratio": medians["tensorboard"] / medians["no_tensorboard"],
    }
    print(json.dumps(result, indent=2))
    return 0 if result["ratio"] <= 1.20 else 1


if __name__ == "__main__":
    sys.exit(main())
