"""Pictures where people would rather look than read: a matplotlib figure logged as a TensorBoard image
(Images tab) and saved as a PNG file, with the same pixels in both.

Figures are built with ``matplotlib.figure.Figure`` directly, never through ``pyplot``: no global state,
no GUI backend, nothing left open between pictures. ``lines`` draws the common kind (a few labelled
curves, optionally on log axes); anything else can be drawn on a ``Figure`` and handed to ``log_figure``.
"""

import io
import struct
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure
from tensorboard.compat.proto.summary_pb2 import Summary

from compare.output.events import EventWriter

DPI = 100
SIZE = (7.0, 4.2)  # inches: 700×420 pixels, readable in TensorBoard's image card without zooming

Series = dict[str, tuple[Sequence[float], Sequence[float]]]  # label → (x values, y values)


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header (its IHDR chunk)."""
    return struct.unpack(">II", png[16:24])


def image_summary(tag: str, png: bytes) -> Summary:
    width, height = png_size(png)
    image = Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=png)  # 4: RGBA
    return Summary(value=[Summary.Value(tag=tag, image=image)])


def log_figure(writer: EventWriter | None, folder: Path | None, name: str, figure: Figure, step: int = 0) -> bytes:
    """``figure`` as the image ``pictures/<name>`` in ``writer`` and as ``folder/<name>.png`` (either may be
    None); returns the PNG. A file that exists is never replaced: a duplicate name is a bug, and raises."""
    png = png_bytes(figure)
    if writer is not None:
        writer.add_summary(image_summary(f"pictures/{name}", png), step)
        writer.flush()
    if folder is not None:
        with open(folder / f"{name}.png", "xb") as file:
            file.write(png)
    return png


def lines(
    title: str,
    xlabel: str,
    ylabel: str,
    series: Series,
    logx: bool = False,
    logy: bool = False,
    markers: bool = False,
    note: str = "",
    joined: bool = True,
) -> Figure:
    """A few labelled curves on one axis (each in its own colour, with a legend); ``note`` under the title.
    ``joined=False`` draws the points alone (a scatter: the spread of final losses, say)."""
    figure = Figure(figsize=SIZE, layout="constrained")
    axes = figure.subplots()
    for label, (x, y) in series.items():
        style = {"marker": "o" if markers or not joined else None, "markersize": 4 if joined else 7}
        axes.plot(list(x), list(y), label=label, linewidth=1.4 if joined else 0, **style)
    axes.set_xscale("log" if logx else "linear")
    axes.set_yscale("log" if logy else "linear")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(f"{title}\n{note}" if note else title, fontsize=11)
    axes.grid(True, which="major", alpha=0.3)
    if len(series) > 1:
        axes.legend(fontsize=8, ncols=2 if len(series) > 5 else 1)
    return figure
