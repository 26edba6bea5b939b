"""Lines every experiment prints alike, in the session's language (``compare.i18n``)."""

from compare.i18n import _


def steps_line(name: str, steps: int, seconds: float, note: str = "") -> str:
    """The progress line that closes a training sub-run: ``  NAME: STEPS steps in S s[, NOTE]``."""
    line = _("  {name}: {steps} steps in {seconds:.1f} s").format(name=name, steps=steps, seconds=seconds)
    return f"{line}, {note}" if note else line
