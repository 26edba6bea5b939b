"""The scaling picture: step time against width and batch for both sides, as an SVG written by hand."""

import math

PANEL_W, PANEL_H, MARGIN = 360, 260, 60
SIDE_STYLES = {"manual": ("#1f77b4", "none"), "torch": ("#ff7f0e", "6,4")}  # colour, dash pattern


def svg_plot(scale: dict) -> str:
    """Step time against width and against batch, both sides, log-log axes: one SVG document."""
    panels = [
        panel("width", f"step time vs hidden width (batch {scale['width'][0]['batch']})", scale["width"]),
        panel("batch", f"step time vs batch (width {scale['batch'][0]['width']})", scale["batch"]),
    ]
    width, height = 2 * (PANEL_W + MARGIN) + MARGIN, PANEL_H + 2 * MARGIN + 30
    body = "".join(
        f'<g transform="translate({MARGIN + i * (PANEL_W + MARGIN)},{MARGIN})">{svg}</g>'
        for i, svg in enumerate(panels)
    )
    legend = "".join(
        f'<line x1="{MARGIN + 150 * i}" y1="{height - 18}" x2="{MARGIN + 150 * i + 30}" y2="{height - 18}" '
        f'stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>'
        f'<text x="{MARGIN + 150 * i + 36}" y="{height - 14}">{side}</text>'
        for i, (side, (colour, dash)) in enumerate(SIDE_STYLES.items())
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">'
        f'<rect width="{width}" height="{height}" fill="white"/>{body}{legend}</svg>\n'
    )


def panel(axis: str, title: str, points: list[dict]) -> str:
    """One log-log panel, ``PANEL_W × PANEL_H``, x = ``axis`` of each point, y = step time in ms."""
    xs = [point[axis] for point in points]
    ms = [1e3 * point[f"{side}_seconds"] for point in points for side in SIDE_STYLES]
    x_lo, x_hi = math.log10(min(xs)), math.log10(max(xs))
    y_lo, y_hi = math.floor(math.log10(min(ms))), math.ceil(math.log10(max(ms)))
    y_hi = max(y_hi, y_lo + 1)

    def x_at(value: float) -> float:
        return PANEL_W * (math.log10(value) - x_lo) / max(x_hi - x_lo, 1e-12)

    def y_at(value: float) -> float:
        return PANEL_H * (1 - (math.log10(value) - y_lo) / (y_hi - y_lo))

    parts = [
        f'<rect width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#888"/>',
        f'<text x="{PANEL_W / 2}" y="-12" text-anchor="middle">{title}</text>',
        f'<text x="{PANEL_W / 2}" y="{PANEL_H + 36}" text-anchor="middle">{axis}</text>',
        f'<text transform="translate(-44,{PANEL_H / 2}) rotate(-90)" text-anchor="middle">ms per step</text>',
    ]
    for x in xs:
        parts.append(f'<text x="{x_at(x):.1f}" y="{PANEL_H + 16}" text-anchor="middle">{x}</text>')
    for exponent in range(y_lo, y_hi + 1):
        y = y_at(10.0**exponent)
        parts.append(f'<line x1="0" y1="{y:.1f}" x2="{PANEL_W}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="-6" y="{y + 4:.1f}" text-anchor="end">{10.0**exponent:g}</text>')
    for side, (colour, dash) in SIDE_STYLES.items():
        line = " ".join(f"{x_at(p[axis]):.1f},{y_at(1e3 * p[f'{side}_seconds']):.1f}" for p in points)
        parts.append(
            f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>'
        )
    return "".join(parts)
