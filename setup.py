"""The two things pyproject.toml cannot say (everything else is there):

* **The documentation pages in the package.** ``docs/`` (the site's pages, the Korean guide, the pictures)
  is shipped as the package ``compare.docs``: ``package_dir`` maps that name onto ``docs/``, so the pages
  stay where the site and the repository keep them and the wheel carries them as they are (no copy made
  at build time). ``backprop-parity docs`` says where they were installed.
* **The long description the package index shows**: README.md, whose relative links (``docs/...``) would
  break there, with each one written as its text and the page's path in the installed package
  (``DOCS_LINK``), and a line saying so under the title. Made from README.md at every build: it cannot drift.
"""

import re
from pathlib import Path

from setuptools import find_namespace_packages, setup

ROOT = Path(__file__).resolve().parent
DOCS_PACKAGE = "compare.docs"  # what docs/ is called in the installed package
# [text](docs/PAGE) or ![text](docs/PICTURE), a relative link into docs/ (anchors and all)
DOCS_LINK = re.compile(r"!?\[([^\]]+)\]\(docs/([^)\s#]+)(#[^)\s]*)?\)")
PACKAGED = (
    "> The pages this description names (`docs/...`) are installed with the package, under `compare/docs/`: "
    "`backprop-parity docs` prints where, with each page's title."
)


def long_description() -> str:
    """README.md for the package index: no relative link left, the pages named by their installed path."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    def named(match: re.Match) -> str:
        text, page = match.group(1), f"`compare/docs/{match.group(2)}`"
        return page if text.strip("`") == f"docs/{match.group(2)}" else f"{text} ({page})"

    title, rest = readme.split("\n", 1)
    return f"{title}\n\n{PACKAGED}\n{DOCS_LINK.sub(named, rest)}"


# Found, not listed: every package and subpackage under these names (a list by hand once left one out).
packages = find_namespace_packages(include=["manual*", "torch_ref*", "compare*", "jax_ref*"])
packages += [DOCS_PACKAGE] + [f"{DOCS_PACKAGE}.{name}" for name in find_namespace_packages(where=ROOT / "docs")]

setup(
    packages=packages,
    package_dir={DOCS_PACKAGE: "docs"},
    long_description=long_description(),
    long_description_content_type="text/markdown",
)
