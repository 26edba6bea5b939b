"""``backprop-parity bench``: the performance suite (``compare.bench.suite``); writes ``bench.json`` and
``scaling.svg`` and prints a summary. Exit 0 whether or not the targets are met (the JSON says which);
2 on bad input; 1 if the benchmark itself crashed.

The measurements run in a child process (``python -m compare.bench.suite``) so that the thread-pool settings
that must precede loading the libraries (``compare.bench.suite.QUIET_POOLS``) apply to them."""

import argparse
import json
import sys
from pathlib import Path

from compare import exits
from compare.bench import plot
from compare.bench import suite as bench
from compare.errors import InputError


def add_parser(commands: argparse._SubParsersAction) -> None:
    cores = bench.available_threads()
    parser = commands.add_parser(
        "bench",
        help="measure training speed of both twins and the checker's overhead (JSON, table and plot)",
        description="Time the manual and torch training steps side by side on the same threads (throughput, "
        "FLOP rate against the machine's measured matmul rate), a full lockstep run against the two bare "
        "loops, step time against width and batch, and the peak memory of a short and a long run. Writes "
        "DIR/bench.json and DIR/scaling.svg; every figure is a ratio taken in the same run (times: medians "
        "of alternated repeats). Exit 0 whether or not the targets are met.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes and few repeats: checks that the suite runs, in seconds"
    )
    parser.add_argument("--out", default="runs/bench", metavar="DIR", help="output folder (default: runs/bench)")
    parser.add_argument(
        "--threads",
        type=int,
        default=cores,
        help=f"threads for both sides, torch and NumPy's BLAS (default: the {cores} cores available)",
    )
    parser.set_defaults(handler=bench_command)


def bench_command(args: argparse.Namespace) -> int:
    cores = bench.available_threads()
    if not 1 <= args.threads <= cores:
        raise InputError(f"--threads {args.threads}: expected 1 to {cores}, the cores available")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"--out {out}: cannot create the folder ({error.strerror})") from None

    done = bench.child("quick" if args.quick else "full", args.threads, out / "bench.json")
    if done.returncode != 0:
        print(f"backprop-parity: error: the benchmark process exited {done.returncode}", file=sys.stderr)
        return exits.FAIL
    results = json.loads((out / "bench.json").read_text())
    (out / "scaling.svg").write_text(plot.svg_plot(results["scaling"]))
    print(summary(results))
    print(f"wrote {out / 'bench.json'} and {out / 'scaling.svg'}")
    return exits.PASS


def summary(results: dict) -> str:
    machine = results["machine"]
    blas = ", ".join(f"{lib['internal_api']} {lib['version']}" for lib in machine["numpy_blas"])
    lines = [
        f"{results['threads']} threads on {machine['cpu']} ({machine['cores_available']} cores available); "
        f"numpy {machine['numpy']} ({blas}), torch {machine['torch']}",
        "",
        f"{'':8} {'manual ms':>10} {'torch ms':>10} {'manual/torch':>13} {'manual GFLOP/s':>15} "
        f"{'matmul GFLOP/s':>15} {'of peak':>8}",
    ]
    for dtype, t in results["throughput"].items():
        lines.append(
            f"{dtype:8} {1e3 * t['step_seconds']['manual']:10.2f} {1e3 * t['step_seconds']['torch']:10.2f} "
            f"{t['manual_vs_torch']:13.2f} {t['gflops']['manual']:15.2f} {t['gflops']['matmul']:15.2f} "
            f"{t['manual_vs_matmul_peak']:8.2f}"
        )
    p = results["parity_overhead"]
    s = p["run_seconds"]
    lines += [
        "",
        f"parity overhead, {p['steps']} steps: lockstep {s['lockstep']:.3f} s, bare manual {s['manual']:.3f} s "
        f"+ torch {s['torch']:.3f} s: ratio {p['ratio']:.2f}",
        "",
        f"{'width':>6} {'batch':>6} {'manual ms':>10} {'torch ms':>10} {'manual/torch':>13}",
    ]
    scale = results["scaling"]
    for point in scale["width"] + scale["batch"]:
        lines.append(
            f"{point['width']:6} {point['batch']:6} {1e3 * point['manual_seconds']:10.3f} "
            f"{1e3 * point['torch_seconds']:10.3f} {point['torch_seconds'] / point['manual_seconds']:13.2f}"
        )
    m = results["memory"]
    lines += [
        "",
        f"memory: peak RSS {m['peak_rss_mib'][0]:.0f} MiB after {m['steps'][0]} steps, "
        f"{m['peak_rss_mib'][1]:.0f} MiB after {m['steps'][1]}: ratio {m['ratio']:.3f}",
    ]
    lines += ["", f"{'target':24} {'value':>7} {'bound':>7}  met"]
    for name, target in results["targets"].items():
        lines.append(f"{name:24} {target['value']:7.2f} {target['target']:>7}  {'yes' if target['met'] else 'NO'}")
    return "\n".join(lines)
