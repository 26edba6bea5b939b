"""The message catalog of ``compare.i18n``, with the standard library only (no GNU gettext tools needed).

    python scripts/catalog.py extract   # refresh each .po from the _("...") / N_("...") calls in compare/
    python scripts/catalog.py compile   # .po -> .mo (GNU gettext's binary format, read by ``gettext``)
    python scripts/catalog.py check     # exit 1 when a message lacks a translation or a .mo is stale

``extract`` keeps every existing translation, adds new messages with an empty ``msgstr`` and drops
messages no longer in the code. ``compile`` leaves untranslated messages out, as ``msgfmt`` does, so
they show in English. The tests import this file to check that the committed .mo matches its .po.
"""

import ast
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "compare"
LOCALE = PACKAGE / "i18n" / "locale"
DOMAIN = "backprop_parity"
MARKERS = ("_", "N_")  # translate now / mark for translation at the point of use
HEADER = "Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\nLanguage: {lang}\n"
MAGIC = 0x950412DE  # GNU .mo, little-endian


def messages(package: Path = PACKAGE) -> dict[str, list[str]]:
    """Every literal passed to ``_`` or ``N_`` in ``package``, with where it occurs (``path:line``), in
    the order the files and lines come."""
    found: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
        for call in sorted(calls, key=lambda node: (node.lineno, node.col_offset)):
            name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", None)
            if name in MARKERS and len(call.args) == 1:  # _("..."), or i18n._("...") where _ is taken
                (arg,) = call.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    where = f"{path.relative_to(package.parent).as_posix()}:{call.lineno}"
                    found.setdefault(arg.value, []).append(where)
    return found


def quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def unquote(token: str) -> str:
    """One quoted .po string (without its quotes' surroundings) back to text."""
    body, out, i = token.strip()[1:-1], [], 0
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
    while i < len(body):
        if body[i] == "\\":
            out.append(escapes[body[i + 1]])
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def read_po(path: Path) -> dict[str, str]:
    """msgid → msgstr of a .po file (the header is the entry of msgid ``""``); continuation lines join."""
    entries: dict[str, str] = {}
    current: dict[str, str] = {}
    field = None
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        line = line.strip()
        if line.startswith(("msgid ", "msgstr ")):
            if line.startswith("msgid ") and "msgstr" in current:
                entries[current["msgid"]] = current["msgstr"]
                current = {}
            field, rest = line.split(" ", 1)
            current[field] = unquote(rest)
        elif line.startswith('"') and field is not None:
            current[field] += unquote(line)
        elif not line or line.startswith("#"):
            if "msgstr" in current:
                entries[current["msgid"]] = current["msgstr"]
            current, field = {}, None
    return entries


def write_po(path: Path, lang: str, found: dict[str, list[str]], translations: dict[str, str]) -> None:
    lines = [f"# {lang} messages of backprop-parity; refresh with: python scripts/catalog.py extract", 'msgid ""']
    lines += ["msgstr " + quote(translations.get("", HEADER.format(lang=lang))), ""]
    for message, places in found.items():
        lines += [f"#: {place}" for place in places]
        lines += [f"msgid {quote(message)}", f"msgstr {quote(translations.get(message, ''))}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def compile_mo(entries: dict[str, str]) -> bytes:
    """GNU .mo bytes: a header of 7 words, the sorted original and translated string tables (length,
    offset), no hash table, then the strings, each NUL-terminated. Untranslated entries are left out."""
    kept = sorted((k.encode(), v.encode()) for k, v in entries.items() if v)
    start = 7 * 4 + 16 * len(kept)  # header, then two tables of (length, offset) pairs
    ids = b"".join(key + b"\0" for key, _ in kept)
    strs = b"".join(value + b"\0" for _, value in kept)
    originals, translated, offset = [], [], start
    for key, _ in kept:
        originals += [len(key), offset]
        offset += len(key) + 1
    for _, value in kept:
        translated += [len(value), offset]
        offset += len(value) + 1
    header = struct.pack("<7I", MAGIC, 0, len(kept), 7 * 4, 7 * 4 + 8 * len(kept), 0, start)
    tables = struct.pack(f"<{4 * len(kept)}I", *originals, *translated)
    return header + tables + ids + strs


def catalogs() -> list[tuple[str, Path]]:
    """(language, its .po) for every catalog under ``LOCALE``."""
    return [(po.parents[1].name, po) for po in sorted(LOCALE.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))]


def problems() -> list[str]:
    """What ``check`` reports: messages without a translation, translations of no message, stale .mo."""
    found = messages()
    report = []
    for lang, po in catalogs():
        entries = read_po(po)
        report += [f"{lang}: no translation of {m!r}" for m in found if not entries.get(m)]
        report += [f"{lang}: {m!r} is in no code" for m in entries if m and m not in found]
        mo = po.with_suffix(".mo")
        if not mo.exists() or mo.read_bytes() != compile_mo(entries):
            report.append(f"{lang}: {mo.relative_to(ROOT)} does not match its .po (run: scripts/catalog.py compile)")
    return report


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "extract":
        found = messages()
        for lang, po in catalogs():
            write_po(po, lang, found, read_po(po))
            print(f"{po.relative_to(ROOT)}: {len(found)} messages")
    elif command == "compile":
        for _, po in catalogs():
            po.with_suffix(".mo").write_bytes(compile_mo(read_po(po)))
            print(f"{po.with_suffix('.mo').relative_to(ROOT)} written")
    elif command == "check":
        report = problems()
        print("\n".join(report) or "catalogs complete and compiled")
        return 1 if report else 0
    else:
        print("usage: python scripts/catalog.py extract|compile|check", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
