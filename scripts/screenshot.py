"""Refresh the README's dashboard screenshots from real runs.

    .venv/bin/python scripts/screenshot.py [--out DIR] [--steps N]   (needs a chromium: apt-get install chromium)

Runs three parity checks (Adam with a schedule, the same at a smaller lr, and one with an injected fault)
and the vanishing-gradients experiment into a temporary log directory, serves them with TensorBoard on
127.0.0.1 (``compare.output.board``, as ``backprop-parity board`` does) and has headless Chromium capture
each tab into ``--out`` (default docs/img/). Rerun it whenever the TensorBoard layout changes.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from PIL import Image  # noqa: E402 (matplotlib's dependency)

from compare.cli.main import main as backprop_parity  # noqa: E402
from compare.output.board import Board  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
RUNS = {
    "spiral-adam": ["--optimizer", "adam", "--lr-schedule", "warmup:40,cosine:360"],
    "spiral-adam-lr0.003": ["--optimizer", "adam", "--lr", "0.003"],
    "spiral-adam-inject": ["--optimizer", "adam", "--inject", "adam-no-bias-correction"],
}
# What each picture shows: the first run alone (what `board` opens after a run), the three runs side by
# side in HParams, the experiment. file → (tab, window width, window height)
RUN_PAGES = {
    "custom_scalars.png": ("custom_scalars", 1400, 1750),
    "scalars.png": ("scalars", 1400, 1300),  # Time Series draws on a WebGL worker a headless capture misses
    "text.png": ("text", 1400, 1000),
}
RUNS_PAGES = {"hparams.png": ("hparams", 1800, 420)}
EXPERIMENT_PAGES = {"images.png": ("images", 1400, 900)}


def browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def capture(chromium: str, url: str, out: Path, size: tuple[int, int], profile: Path) -> None:
    """One page, headless, after 60 s of virtual time for the dashboard to load and draw its data."""
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--use-angle=swiftshader",  # software WebGL: Time Series draws its lines with it
        "--enable-unsafe-swiftshader",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={size[0]},{size[1]}",
        "--hide-scrollbars",
        "--virtual-time-budget=60000",
        f"--screenshot={out}",
        url,
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=180)
    with Image.open(out) as image:  # 256 colours: a third of the size, the same look for flat dashboards
        image.convert("RGB").quantize(256).save(out, optimize=True)
    print(f"wrote {out}")


def make_runs(logdir: Path, steps: int) -> dict[str, Path]:
    for name, args in RUNS.items():
        argv = ["run", *args, "--steps", str(steps), "--logdir", str(logdir), "--run-name", name]
        backprop_parity([*argv, "--keep-going"] if "--inject" in args else argv)
    return {name: logdir / name for name in RUNS}


def make_experiment(logdir: Path, steps: int) -> dict[str, Path]:
    experiments = logdir / "experiments"
    backprop_parity(["experiment", "vanishing-gradients", "--steps", str(steps), "--logdir", str(experiments)])
    (root,) = experiments.iterdir()
    return {"vanishing-gradients": root}


def shoot(chromium: str, runs: dict[str, Path], pages: dict[str, tuple[str, int, int]], out: Path, tmp: Path) -> None:
    with Board(runs) as board:
        board.wait(120)
        for name, (tab, width, height) in pages.items():
            capture(chromium, board.url(tab), out / name, (width, height), tmp / f"profile-{name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="where the PNGs go")
    parser.add_argument("--steps", type=int, default=400, help="steps of each run (default: 400)")
    args = parser.parse_args(argv)
    chromium = browser()
    if chromium is None:
        print("screenshot.py: no chromium found; install Debian's: apt-get install chromium", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        runs = make_runs(tmp / "runs", args.steps)
        first = next(iter(runs))
        shoot(chromium, {first: runs[first]}, RUN_PAGES, args.out, tmp)
        shoot(chromium, runs, RUNS_PAGES, args.out, tmp)
        shoot(chromium, make_experiment(tmp, min(args.steps, 300)), EXPERIMENT_PAGES, args.out, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
