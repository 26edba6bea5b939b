"""Pictures where people would rather look than read: a matplotlib figure logged as a TensorBoard image
(Images tab) and saved as a PNG file, with the same pixels in both.

Figures are built with ``matplotlib.figure.Figure`` directly, never through ``pyplot``: no global state,
no GUI backend, nothing left open between pictures. ``lines`` draws the common kind (a few labelled
curves, optionally on log axes); anything else can be drawn on a ``Figure`` and handed to ``log_figure``.

Made for where they are shown: TensorBoard's Images card is about 360 px wide, so a picture is drawn at
that size (``SIZE`` at ``DPI``) with its text at 8 to 9 points (11 to 12 px), not shrunk from a larger
one. Curves that coincide (adam under adamw, relu under leaky_relu) stay told apart: each series has
its own line style and marker as well as its colour. Text in Hangul (a ``--lang ko`` picture) is set in
NanumGothic, the font the pip package ``koreanize-matplotlib`` ships (``hangul_font``; matplotlib's own
font has no Hangul, and a system font may be missing), with DejaVu Sans for the symbols it lacks.
"""

import functools
import importlib.util
import io
import itertools
import struct
from collections.abc import Sequence
from pathlib import Path

from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.text import Text
from tensorboard.compat.proto.summary_pb2 import Summary

from compare.output import textwidth
from compare.output.events import EventWriter

DPI = 100
SIZE = (3.6, 2.7)  # inches: 360×270 pixels, TensorBoard's image card at its own size (no shrinking)
TITLE_POINTS, LABEL_POINTS, LEGEND_POINTS = 9.0, 8.5, 7.5
TITLE_COLUMNS = 40  # what a 9-point title line holds across 360 px (measured: 46 characters ran off the card)
STYLES = ("-", "--", ":", "-.")
MARKS = ("o", "s", "^", "D", "v", "P", "X", "*")
HANGUL = ((0xAC00, 0xD7A3), (0x1100, 0x11FF), (0x3130, 0x318F))  # syllables, jamo, compatibility jamo
FALLBACK = "DejaVu Sans"  # matplotlib's own font: the symbols (‖, ∂, subscripts) NanumGothic lacks

Series = dict[str, tuple[Sequence[float], Sequence[float]]]  # label → (x values, y values)


@functools.cache
def hangul_font() -> str:
    """The family name of the NanumGothic that ``koreanize-matplotlib`` ships, registered with matplotlib.
    Its file is found without importing the package (whose import changes matplotlib's global settings)."""
    spec = importlib.util.find_spec("koreanize_matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("koreanize-matplotlib is not installed (requirements.txt pins it): no Hangul font")
    path = Path(next(iter(spec.submodule_search_locations))) / "fonts" / "NanumGothic.ttf"
    font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path)).get_name()


def has_hangul(text: str) -> bool:
    return any(low <= ord(char) <= high for char in text for low, high in HANGUL)


def set_hangul(figure: Figure) -> None:
    """Every text of ``figure`` that holds Hangul in the Hangul font, with a fallback for its symbols. The
    numbers on the axes keep matplotlib's font: its math text (``10^{-2}``) needs a minus sign (U+2212)
    that NanumGothic lacks."""
    for text in figure.findobj(Text):
        if has_hangul(text.get_text()):
            text.set_fontfamily([hangul_font(), FALLBACK])


def png_bytes(figure: Figure) -> bytes:
    set_hangul(figure)
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
    """A few labelled curves on one axis, each in its own colour, line style and marker (so coinciding
    curves stay apart), with a legend; ``note`` under the title. ``markers`` marks every point (few
    points, each meaningful); otherwise about ten marks a curve. ``joined=False`` draws the points alone
    (a scatter: the spread of final losses, say)."""
    figure = Figure(figsize=SIZE, layout="constrained")
    axes = figure.subplots()
    count = len(series)
    looks = zip(itertools.cycle(STYLES), itertools.cycle(MARKS), strict=False)  # endless
    for i, ((label, (x, y)), (style, mark)) in enumerate(zip(series.items(), looks, strict=False)):
        x, y = list(x), list(y)
        every = 1 if markers or not joined else max(1, len(x) // 10)
        # Curves that coincide stay visible: each series' marks start further along (staggered), and the
        # earlier ones are drawn wider and larger, so a later curve on top leaves them showing at its edges.
        under = (count - 1 - i) / max(count - 1, 1)  # 1 for the first series drawn, 0 for the last
        size = 4 + 2.5 * under if joined else 6
        shape = {"marker": mark, "markevery": (i * every // count, every), "markersize": size}
        width = 1.1 + 0.6 * under if joined else 0
        axes.plot(x, y, label=label, linewidth=width, linestyle=style, fillstyle="none", **shape)
    axes.set_xscale("log" if logx else "linear")
    axes.set_yscale("log" if logy else "linear")
    axes.set_xlabel(xlabel, fontsize=LABEL_POINTS)
    axes.set_ylabel(ylabel, fontsize=LABEL_POINTS)
    axes.tick_params(labelsize=LEGEND_POINTS)
    # a long title on two lines, not cut at the card's edge; by display columns: a Hangul syllable takes two,
    # about twice as wide as a Latin letter in the title's fonts
    heading = "\n".join(textwidth.wrap(title, TITLE_COLUMNS, indent=""))
    axes.set_title(f"{heading}\n{note}" if note else heading, fontsize=TITLE_POINTS)
    axes.grid(True, which="major", alpha=0.3)
    if len(series) > 1:
        axes.legend(fontsize=LEGEND_POINTS, ncols=2 if len(series) > 4 else 1, handlelength=2.5)
    return figure
