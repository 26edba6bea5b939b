"""Refresh the dashboard screenshots (docs/tensorboard.md's pictures) from a realistic log directory.

    .venv/bin/python scripts/screenshot.py [--out DIR] [--steps N]   (needs a chromium: apt-get install chromium)

Builds ``compare.cli.demo``'s 17 runs and 3 experiments (a few seconds at the default 40 steps) in a
temporary log directory, serves it with TensorBoard on 127.0.0.1 as ``backprop-parity board`` does (the
same ``served_runs`` and ``choose``), and has headless Chromium capture, into ``--out`` (default
docs/img/), each page opened through the settings page ``board`` prints (``Board.address``: "Ignore
outliers" off, so a failing curve is drawn whole): the address ``board`` prints by default (the latest run
and every failing one), HParams over all twenty, a failing run's verdict text, and the Korean experiment's
pictures. Rerun it whenever the TensorBoard layout changes.
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

from compare.cli import demo  # noqa: E402
from compare.cli.board import choose, served_runs  # noqa: E402
from compare.cli.main import build_parser  # noqa: E402
from compare.output.board import Board  # noqa: E402
from compare.output.runlist import listing  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# file → (the `board` arguments whose selection it shows, tab (None: board's default), window width, height).
# FAILING: the last failing run; KOREAN: the Korean experiment's summary run (its text and pictures).
PAGES = {
    "custom_scalars.png": ((), None, 1400, 1750),
    "scalars.png": ((), "scalars", 1400, 1300),  # Time Series draws on a WebGL worker a headless capture misses
    "hparams.png": (("--all",), "hparams", 1400, 900),
    "text.png": (("FAILING",), "text", 1400, 1000),
    "images.png": (("KOREAN",), "images", 1400, 900),
}


def browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def headless(chromium: str, profile: Path, *flags: str) -> list[str]:
    """A headless Chromium command line that lets the dashboard load and draw for 60 s of virtual time."""
    return [
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
        "--virtual-time-budget=60000",
        *flags,
    ]


def capture(chromium: str, url: str, out: Path, size: tuple[int, int], profile: Path) -> None:
    """One page, headless, after 60 s of virtual time for the dashboard to load and draw its data."""
    flags = (f"--window-size={size[0]},{size[1]}", "--hide-scrollbars", f"--screenshot={out}", url)
    subprocess.run(headless(chromium, profile, *flags), check=True, capture_output=True, timeout=180)
    with Image.open(out) as image:  # 256 colours: a third of the size, the same look for flat dashboards
        image.convert("RGB").quantize(256).save(out, optimize=True)
    print(f"wrote {out}")


def rendered(chromium: str, url: str, profile: Path) -> str:
    """The page's DOM as the browser rendered it (what a user's screen is drawn from; shadow DOM left out)."""
    done = subprocess.run(headless(chromium, profile, "--dump-dom", url), capture_output=True, text=True, timeout=180)
    return done.stdout


def shoot(chromium: str, logdir: Path, out: Path, tmp: Path, pages: list[str]) -> None:
    runs, _ = served_runs(logdir, [])
    failing = [entry.name for entry in listing(logdir) if not entry.passed]
    (korean,) = [path.name for path in logdir.glob(f"experiment-{demo.KOREAN}-*")]
    with Board(runs) as board:
        board.wait(120)
        for name in pages:
            argv, tab, width, height = PAGES[name]
            if argv == ("KOREAN",):
                chosen = [f"{korean}/summary"]
            else:
                argv = [failing[-1] if arg == "FAILING" else arg for arg in argv]
                args = build_parser().parse_args(["board", "--logdir", str(logdir), *argv])
                chosen, _ = choose(args, runs, list(args.runs), listing(logdir))
            # through the settings page `board` prints: "Ignore outliers" off, so a failing curve is not cut off
            address = board.address(board.url(tab, chosen))
            capture(chromium, address, out / name, (width, height), tmp / f"profile-{name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="where the PNGs go")
    parser.add_argument("--steps", type=int, default=40, help="steps of each run (default: 40)")
    parser.add_argument("--pages", default=",".join(PAGES), help=f"which (default: all of {', '.join(PAGES)})")
    args = parser.parse_args(argv)
    chromium = browser()
    if chromium is None:
        print("screenshot.py: no chromium found; install Debian's: apt-get install chromium", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        shoot(chromium, demo.build(tmp / "runs", args.steps), args.out, tmp, args.pages.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
