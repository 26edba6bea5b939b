"""The messages people read, in their language: a standard gettext catalog.

English is the source text and the default; ``locale/<lang>/LC_MESSAGES/backprop_parity.po`` holds a
translation (``.mo`` is its compiled form, built by ``scripts/catalog.py compile`` and checked by the tests
to match). Code marks a message with ``_("... {name:.6f} ...")`` and formats the translated template
afterwards (``.format(name=value)``), so the numbers are formatted by the same code in every language and
a translation may put them in its own word order.

The language is chosen for a block of code with :func:`language` (a context variable: nothing is
rewired, and a test running English and Korean side by side cannot leak one into the other).
"""

import gettext
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

DOMAIN = "backprop_parity"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("en", "ko")  # English is the source text; the others each have a catalog
DEFAULT = "en"

_current: ContextVar[gettext.NullTranslations | None] = ContextVar("translation", default=None)  # None: English


def translation(lang: str) -> gettext.NullTranslations:
    """The compiled catalog of ``lang`` (English: the messages as written). A missing catalog raises."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; choose from {', '.join(LANGUAGES)}")
    if lang == DEFAULT:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang])


@contextmanager
def language(lang: str) -> Iterator[None]:
    """Messages translated to ``lang`` inside the block."""
    token = _current.set(translation(lang))
    try:
        yield
    finally:
        _current.reset(token)


def _(message: str) -> str:
    """``message`` in the current language (itself when it has no translation)."""
    current = _current.get()
    return message if current is None else current.gettext(message)


def N_(message: str) -> str:  # noqa: N802 (gettext's conventional name)
    """Marks ``message`` for the catalog where it is defined (a module constant); ``_`` translates it
    where it is shown."""
    return message


__all__ = ["DEFAULT", "DOMAIN", "LANGUAGES", "LOCALE_DIR", "N_", "_", "language", "translation"]
