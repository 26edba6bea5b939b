"""``backprop-parity docs``: where the documentation pages are, one line per page with its title.

The pages are docs/ (the site's pages, the Korean guide, the pictures): in an installed package the
folder compare/docs/ (setup.py ships docs/ there, as package data), in a checkout the repository's docs/
beside compare/. They are Markdown, readable as they are; their links to one another resolve in that folder.
"""

import argparse
from pathlib import Path

import compare
from compare import exits
from compare.errors import InputError

HOME = "index.md"  # the site's home page: README.md included by the site's generator, not a page of its own


def pages_folder() -> Path:
    """The folder holding the pages: the installed package's ``compare/docs``, else a checkout's docs/."""
    package = Path(compare.__file__).resolve().parent
    for folder in (package / "docs", package.parent / "docs"):
        if (folder / HOME).is_file():
            return folder
    raise InputError(f"no documentation pages beside {package} (neither compare/docs/ nor docs/ holds {HOME})")


def title(page: Path) -> str:
    """A page's first heading (``# ...``), or its name where it has none."""
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return page.stem


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "docs",
        help="say where the documentation pages are (Markdown, installed with the package)",
        description="Print the folder holding the documentation pages (the migration guide, the Korean guide, "
        "the pictures, every page of the site) and one line per page: its path and title.",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    folder = pages_folder()
    pages = sorted(p for p in folder.rglob("*.md") if p.name != HOME)
    width = max(len(p.relative_to(folder).as_posix()) for p in pages)
    print(f"documentation pages (Markdown): {folder}")
    for page in pages:
        print(f"  {page.relative_to(folder).as_posix():<{width}}  {title(page)}")
    print(f"  pictures: {folder / 'img'}")
    return exits.PASS
