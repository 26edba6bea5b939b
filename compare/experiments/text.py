"""Lines every experiment prints alike, in the session's language (``compare.i18n``)."""

import unicodedata
from collections.abc import Sequence

from compare.i18n import _


def pad(text: str, width: int, align: str = "<") -> str:
    """``text`` padded to ``width`` terminal columns (``align``: ``<`` left, ``>`` right), as
    ``format(text, "<width")`` would if every character took one column: a Hangul syllable (East Asian
    width W or F) takes two, so a Korean table lines up with its numbers."""
    wide = sum(unicodedata.east_asian_width(char) in "WF" for char in text)
    return format(text, f"{align}{max(width - wide, 0)}")


def table(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[str]]) -> list[str]:
    """A table whose columns line up in any language: ``columns`` are (heading, ``<`` or ``>``), each
    column as wide as its widest heading or cell in terminal columns (``pad``: a Hangul syllable takes
    two), so a translated heading longer than its numbers widens its column instead of shifting the rest."""
    cells = [[heading for heading, _align in columns], *([str(cell) for cell in row] for row in rows)]
    wide = [max(pad_width(row[i]) for row in cells) for i in range(len(columns))]
    return [
        "  ".join(pad(cell, width, align) for cell, width, (_h, align) in zip(row, wide, columns, strict=True)).rstrip()
        for row in cells
    ]


def pad_width(text: str) -> int:
    """The terminal columns ``text`` takes (``pad``'s count)."""
    return len(text) + sum(unicodedata.east_asian_width(char) in "WF" for char in text)


def steps_line(name: str, steps: int, seconds: float, note: str = "") -> str:
    """The progress line that closes a training sub-run: ``  NAME: STEPS steps in S s[, NOTE]``."""
    line = _("  {name}: {steps} steps in {seconds:.1f} s").format(name=name, steps=steps, seconds=seconds)
    return f"{line}, {note}" if note else line
