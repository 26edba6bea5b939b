"""The scaling picture: step time against width and batch for both sides, drawn with matplotlib (as the
experiments' pictures are)."""

import io

from matplotlib.figure import Figure

SIDE_STYLES = {"manual": "-", "torch": "--"}  # line style per side
TITLES = {"width": "step time vs hidden width (batch {batch})", "batch": "step time vs batch (width {width})"}


def svg_plot(scale: dict) -> str:
    """Step time against width and against batch, both sides, log-log axes: one SVG document; each data
    line carries the id ``<axis>-<side>``."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    for axes, axis in zip(figure.subplots(1, 2), ("width", "batch"), strict=True):
        points = scale[axis]
        for side, style in SIDE_STYLES.items():
            xs, ms = [p[axis] for p in points], [1e3 * p[f"{side}_seconds"] for p in points]
            axes.plot(xs, ms, style, marker="o", markersize=4, label=side, gid=f"{axis}-{side}")
        axes.set(xscale="log", yscale="log", xlabel=axis, ylabel="ms per step", title=TITLES[axis].format(**points[0]))
        axes.grid(True, which="major", alpha=0.3)
        axes.legend()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    return buffer.getvalue()
