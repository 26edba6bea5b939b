"""Lines every experiment prints alike, in the session's language (``compare.i18n``)."""

import unicodedata

from compare.i18n import _


def pad(text: str, width: int, align: str = "<") -> str:
    """``text`` padded to ``width`` terminal columns (``align``: ``<`` left, ``>`` right), as
    ``format(text, "<width")`` would if every character took one column: a Hangul syllable (East Asian
    width W or F) takes two, so a Korean table lines up with its numbers."""
    wide = sum(unicodedata.east_asian_width(char) in "WF" for char in text)
    return format(text, f"{align}{max(width - wide, 0)}")


def steps_line(name: str, steps: int, seconds: float, note: str = "") -> str:
    """The progress line that closes a training sub-run: ``  NAME: STEPS steps in S s[, NOTE]``."""
    line = _("  {name}: {steps} steps in {seconds:.1f} s").format(name=name, steps=steps, seconds=seconds)
    return f"{line}, {note}" if note else line
