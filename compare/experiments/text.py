"""Lines every experiment prints alike, in the session's language (``compare.i18n``)."""

from collections.abc import Sequence

from compare.i18n import _
from compare.output import textwidth


def pad(text: str, width: int, align: str = "<") -> str:
    """``text`` padded to ``width`` terminal columns (``align``: ``<`` left, ``>`` right), a Hangul
    syllable taking two (``compare.output.textwidth``), so a Korean table lines up with its numbers."""
    return textwidth.rjust(text, width) if align == ">" else textwidth.ljust(text, width)


def table(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[str]]) -> list[str]:
    """A table whose columns line up in any language: ``columns`` are (heading, ``<`` or ``>``), each
    column as wide as its widest heading or cell in terminal columns (``pad``: a Hangul syllable takes
    two), so a translated heading longer than its numbers widens its column instead of shifting the rest."""
    cells = [[heading for heading, _align in columns], *([str(cell) for cell in row] for row in rows)]
    wide = [max(textwidth.width(row[i]) for row in cells) for i in range(len(columns))]
    return [
        "  ".join(pad(cell, width, align) for cell, width, (_h, align) in zip(row, wide, columns, strict=True)).rstrip()
        for row in cells
    ]


def steps_line(name: str, steps: int, seconds: float, note: str = "") -> str:
    """The progress line that closes a training sub-run: ``  NAME: STEPS steps in S s[, NOTE]``."""
    line = _("  {name}: {steps} steps in {seconds:.1f} s").format(name=name, steps=steps, seconds=seconds)
    return f"{line}, {note}" if note else line
