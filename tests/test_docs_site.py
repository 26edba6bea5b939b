"""The documentation site builds with warnings as errors (``mkdocs build --strict``): every page of the
navigation, the API reference of the public names, search, and every link between pages and to an anchor
resolving (mkdocs.yml's ``validation``); a broken link fails the build."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import compare

ROOT = Path(__file__).resolve().parents[1]
REFERENCED = (
    "run",
    "check_layer",
    "check_loss",
    "check_optimizer",
    "check_model",
    "check_function",
    "check_engine",
    "Report",
    "Diagnosis",
)  # the API reference's public names, each documented from its docstring
TIMEOUT = 300  # seconds; a build takes about 11 s on a loaded 2-core machine

pytestmark = pytest.mark.slow


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}  # the theme's banner, off
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
    )


def nav_pages(entries: list) -> list[str]:
    pages = []
    for entry in entries:
        (value,) = entry.values()
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_the_site_builds_strict_with_every_page_the_api_reference_and_search(tmp_path):
    done = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.Loader)  # its slugify tag is a Python call
    pages = nav_pages(config["nav"])
    docs = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert set(pages) == docs  # every page is in the navigation, and every entry is a page
    for page in pages:
        folder = "" if page == "index.md" else re.sub(r"(/README|/index)?\.md$", "", page)
        assert (tmp_path / "site" / folder / "index.html").is_file(), page
    api = (tmp_path / "site" / "python-api" / "index.html").read_text()
    assert [name for name in REFERENCED if f'id="compare.{name}"' not in api] == []
    assert set(REFERENCED) <= set(compare.__all__)  # public names, which survive a move of their homes
    assert (tmp_path / "site" / "search" / "search_index.json").is_file()
    assert 'href="check-your-code/"' in (tmp_path / "site" / "index.html").read_text()  # the README, links rewritten


def test_a_broken_link_fails_the_build(tmp_path):
    copy = tmp_path / "project"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy)
    shutil.copy(ROOT / "README.md", copy)
    with (copy / "docs" / "frameworks.md").open("a") as page:
        page.write("\n[a broken anchor](migration.md#no-such-heading)\n")
    done = build(copy / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0 and "does not contain an anchor '#no-such-heading'" in done.stderr
