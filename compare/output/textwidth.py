"""Text laid out for a terminal: widths counted in columns as a terminal draws them (a Hangul syllable or
any East Asian wide character takes two, ``unicodedata.east_asian_width``), padding by that width, and
long lines wrapped by word, never inside a number (a word longer than a line is kept whole)."""

import shutil
import sys
import unicodedata
from typing import TextIO

DEFAULT_COLUMNS = 100  # when the output is not a terminal (a pipe, a log file)


def width(text: str) -> int:
    """The columns ``text`` takes on a terminal: 2 for wide and full-width characters, 0 for combining marks."""
    total = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        total += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return total


def ljust(text: str, columns: int) -> str:
    """``text`` padded with spaces to ``columns`` display columns."""
    return text + " " * max(0, columns - width(text))


def rjust(text: str, columns: int) -> str:
    return " " * max(0, columns - width(text)) + text


def cut(text: str, columns: int) -> str:
    """``text`` held to ``columns`` display columns, ending with "…" when cut."""
    if width(text) <= columns:
        return text
    kept = ""
    for char in text:
        if width(kept + char) > columns - 1:
            break
        kept += char
    return kept + "…"


def terminal_columns() -> int:
    return shutil.get_terminal_size((DEFAULT_COLUMNS, 40)).columns


def for_terminal(text: str, stream: TextIO | None = None) -> list[str]:
    """``text``'s lines as a terminal should show them: wrapped to its width (``wrap``) when ``stream``
    (stdout by default) is a terminal; as they are when it is a file or a pipe, which a script may read
    line by line."""
    stream = stream if stream is not None else sys.stdout
    if hasattr(stream, "isatty") and stream.isatty():
        return wrap(text, terminal_columns())
    return text.splitlines()


def wrap(text: str, columns: int | None = None, indent: str = "  ") -> list[str]:
    """Each line of ``text`` wrapped at word boundaries to ``columns`` display columns (the terminal's by
    default), its continuation lines indented by ``indent`` beyond the line's own indentation; a line that
    fits is kept as it is (its inner spacing too); a word longer than a line (a path) is kept whole."""
    columns = columns or terminal_columns()
    out: list[str] = []
    for line in text.splitlines():
        if width(line) <= columns:
            out.append(line)
            continue
        lead = line[: len(line) - len(line.lstrip(" "))]
        wrapped = [lead]
        for word in line.split():
            joined = f"{wrapped[-1]} {word}" if wrapped[-1].strip() else wrapped[-1] + word
            if width(joined) <= columns or not wrapped[-1].strip():
                wrapped[-1] = joined
            else:
                wrapped.append(lead + indent + word)
        out += wrapped
    return out
