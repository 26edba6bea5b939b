"""The package installed the way a library user installs it: the sdist and the wheel built from a copy
of the source tree (the wheel from the sdist, so the sdist is proven complete), their contents checked,
the wheel installed into a fresh virtual environment outside the repository, and every entry point used
from another folder. The fresh environment reuses this environment's already installed dependencies
(the CPU torch among them) through a ``.pth`` line, so nothing is downloaded; the package itself comes
from the wheel only (no PYTHONPATH, no editable install)."""

import email
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import compare
from compare.cli.main import main
from conftest import user_layer_file

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("manual", "torch_ref", "compare", "jax_ref")  # the top-level packages the wheel carries
DATA = ("compare/experiments/data", "compare/i18n/locale")  # package data: data sets, --lang catalogs
DOCS = ("LICENSE", "README.md", "mkdocs.yml")  # the sdist's licence and documentation (docs/ too)
INSTALLED_DOCS = "compare/docs"  # where docs/ is in the wheel (setup.py's package_dir)
PAGE_LINK = re.compile(r"\]\(([^()\s]+\.(?:md|png))(?:#[^()\s]*)?\)")  # [text](page.md#anchor), ![..](x.png)
JUNK = (
    "runs/run-x/manual/events.out",
    "compare/__pycache__/pipeline.cpython-311.pyc",
    ".pytest_cache/v/x",
    "build/lib/stale.py",
)  # what a working tree holds and no distribution may
TIMEOUT = 600  # seconds; a build and an install take about a minute on 2 shared cores


def torch_requirement() -> Requirement:
    """The torch range pyproject.toml states (torch>=LOW)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (torch,) = [Requirement(r) for r in pyproject["project"]["dependencies"] if Requirement(r).name == "torch"]
    return torch


def test_the_supported_torch_range_is_tested_at_its_lower_end():
    """pyproject.toml states torch>=LOW; requirements.txt (what the README and CI install) pins LOW itself."""
    (low,) = [spec.version for spec in torch_requirement().specifier if spec.operator == ">="]
    pinned = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("torch==")]
    assert pinned and Requirement(pinned[0]).specifier.contains(low)  # torch==2.13.0 holds 2.13


def test_the_readme_tells_a_library_user_to_install_the_pinned_cpu_torch_first():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Install as a library\n", 1)[1].split("\n## ", 1)[0]
    pinned = next(line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("torch=="))
    commands = section.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert commands[0] == f"pip install {pinned} --index-url https://download.pytorch.org/whl/cpu"
    assert commands[1].startswith("pip install ") and f"`{torch_requirement()}`" in section


def test_the_version_is_the_packages_one(capsys):
    """``--version`` prints ``compare.__version__``, which pyproject.toml's dynamic version reads."""
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert (done.value.code, capsys.readouterr().out) == (0, f"backprop-parity {compare.__version__}\n")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "compare.__version__"}
    assert "version" in pyproject["project"]["dynamic"] and "version" not in pyproject["project"]


def test_the_docs_command_in_a_checkout_lists_the_repositorys_pages(capsys):
    assert main(["docs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"documentation pages (Markdown): {ROOT / 'docs'}"
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")} - {"index.md"}
    assert [line.split()[0] for line in lines[1:-1]] == sorted(pages)
    assert "  ko/README.md         backprop-parity 한국어 안내서" in lines


def source_files(root: Path) -> set[str]:
    """The files the distributions must carry: every module of the packages, every data and locale file."""
    found = {p for package in PACKAGES if (root / package).is_dir() for p in (root / package).rglob("*.py")}
    found |= {p for folder in DATA for p in (root / folder).rglob("*") if p.is_file() and p.suffix != ".pyc"}
    return {p.relative_to(root).as_posix() for p in found if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> tuple[Path, Path]:
    """(sdist, wheel) built by ``python -m build`` from a copy of the tree seeded with a working tree's junk."""
    source = tmp_path_factory.mktemp("source") / "backprop-parity"
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "runs", "site", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
    )
    shutil.copytree(ROOT, source, ignore=ignore)
    for junk in JUNK:
        (source / junk).parent.mkdir(parents=True, exist_ok=True)
        (source / junk).write_text("junk\n")
    out = source.parent / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=TIMEOUT,
    )
    (sdist,), (wheel,) = out.glob("*.tar.gz"), out.glob("*.whl")
    return sdist, wheel


@pytest.mark.slow
def test_the_sdist_carries_the_sources_data_and_docs_and_no_junk(dists):
    with tarfile.open(dists[0]) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    missing = source_files(ROOT) | set(DOCS) | {"pyproject.toml", "setup.py", "requirements.txt"}
    assert missing - names == set()
    assert {p for p in (ROOT / "docs").rglob("*") if p.is_file()} and all(
        p.relative_to(ROOT).as_posix() in names for p in (ROOT / "docs").rglob("*") if p.is_file()
    )
    assert [
        name
        for name in names
        if name.startswith(("tests/", "runs/", "build/", ".pytest_cache/")) or "__pycache__" in name
    ] == []


@pytest.mark.slow
def test_the_wheel_carries_every_module_data_file_and_the_licence_and_no_junk(dists):
    names = set(zipfile.ZipFile(dists[1]).namelist())
    assert source_files(ROOT) - names == set()
    dist_info = f"backprop_parity-{compare.__version__}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in names
    metadata = zipfile.ZipFile(dists[1]).read(f"{dist_info}/METADATA").decode()
    assert f"Version: {compare.__version__}\n" in metadata
    assert "License-Expression: MIT\n" in metadata
    docs = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*") if p.is_file()}
    assert {"migration.md", "ko/README.md", "img/scalars.png"} <= docs
    assert {f"{INSTALLED_DOCS}/{page}" for page in docs} - names == set()  # every page and picture
    assert [
        name for name in names if name.split("/")[0] in ("tests", "runs", "build", "docs") or "__pycache__" in name
    ] == []


@pytest.mark.slow
def test_the_package_index_page_has_no_relative_link_and_names_the_installed_pages(dists):
    """The long description (what a package index shows) is README.md with each docs/ link written as the
    page's path in the installed package, which the wheel carries; no relative link is left to break."""
    names = set(zipfile.ZipFile(dists[1]).namelist())
    metadata = zipfile.ZipFile(dists[1]).read(f"backprop_parity-{compare.__version__}.dist-info/METADATA").decode()
    description = email.message_from_string(metadata).get_payload()
    readme = (ROOT / "README.md").read_text()
    linked = PAGE_LINK.findall(readme)
    assert linked and all(target.startswith("docs/") for target in linked)
    assert {f"compare/{target}" for target in linked} - names == set()
    assert [link for link in re.findall(r"\]\(([^)\s]*)\)", description) if not link.startswith("https://")] == []
    assert all(f"`compare/{target}`" in description for target in linked)
    assert description.startswith(readme.split("\n", 1)[0] + "\n")  # the README's title, then its text


@pytest.fixture(scope="module")
def installed(dists, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A fresh venv holding only the wheel; this environment's site-packages appended for the dependencies."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    assert not venv.is_relative_to(ROOT)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=TIMEOUT)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(dists[1]),
        ],
        check=True,
        capture_output=True,
        timeout=TIMEOUT,
    )
    # After the install, so pip never sees this environment's (editable) backprop-parity. A plain path line:
    # that folder's own .pth files (the editable finder among them) are not processed.
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return venv, env


def use(installed, where: Path, *command: str) -> subprocess.CompletedProcess:
    venv, env = installed
    return subprocess.run(
        [str(venv / "bin" / command[0]), *command[1:]],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@pytest.mark.slow
def test_the_package_imported_comes_from_the_wheel(installed, tmp_path):
    shown = use(installed, tmp_path, "python", "-c", "import compare, torch; print(compare.__file__, torch.__file__)")
    assert shown.returncode == 0, shown.stderr
    package, torch_file = shown.stdout.split()
    assert Path(package).is_relative_to(installed[0]) and not Path(package).is_relative_to(ROOT)
    assert Path(torch_file).is_relative_to(sysconfig.get_paths()["purelib"])  # the torch already installed


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (("--help",), "usage: backprop-parity"),
        (("--version",), f"backprop-parity {compare.__version__}"),
        (("run", "--steps", "5"), "PASS"),
        (("experiment", "learning-rate", "--dataset", "iris", "--steps", "5", "--lang", "ko"), "결론"),
        (("check", "mine.py"), "PASS"),
    ],
    ids=["help", "version", "run", "experiment-ko", "check-file"],
)
def test_the_command_works_from_another_folder(installed, tmp_path, command, expected):
    user_layer_file(tmp_path)  # mine.py
    done = use(installed, tmp_path, "backprop-parity", *command)
    assert (done.returncode, expected in done.stdout) == (0, True), done.stdout[-2000:] + done.stderr[-2000:]
    if command[0] in ("run", "experiment", "check"):
        assert (tmp_path / "runs").is_dir()  # written where the user stands


@pytest.mark.slow
def test_check_layer_from_python(installed, tmp_path):
    checked = "import compare\nprint(compare.check_layer(layer, torch_module, x).passed)\n"
    script = user_layer_file(tmp_path).read_text() + checked
    done = use(installed, tmp_path, "python", "-c", script)
    assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr[-2000:]


@pytest.mark.slow
def test_the_docs_are_installed_and_read_from_there(installed, tmp_path):
    """``backprop-parity docs`` names the installed pages; each one and each picture is there and whole, and
    every link between pages resolves inside that folder."""
    done = use(installed, tmp_path, "backprop-parity", "docs")
    assert done.returncode == 0, done.stderr[-2000:]
    folder = Path(done.stdout.splitlines()[0].split(": ", 1)[1])
    assert folder.is_relative_to(installed[0]) and folder.as_posix().endswith(f"/{INSTALLED_DOCS}")
    listed = [line.split()[0] for line in done.stdout.splitlines()[1:] if line.split()[0].endswith(".md")]
    assert {"migration.md", "ko/README.md", "ko/jax.md", "check-your-code.md"} <= set(listed)
    for source in (ROOT / "docs").rglob("*"):
        if source.is_file():
            assert (folder / source.relative_to(ROOT / "docs")).read_bytes() == source.read_bytes(), source
    assert "# backprop-parity 한국어 안내서" in (folder / "ko" / "README.md").read_text(encoding="utf-8")
    for page in folder.rglob("*.md"):
        for target in PAGE_LINK.findall(page.read_text(encoding="utf-8")):
            resolved = (page.parent / target).resolve()
            assert resolved.is_relative_to(folder) and resolved.is_file(), (page, target)
