"""The README and the Python API page run as written: their examples' assertions hold and print what they show,
and the README's exit-code table is ``compare.exits.TABLE``."""

import re
from pathlib import Path

from compare import exits
from conftest import starts_in_order

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def section(title: str, path: Path = README) -> str:
    text = path.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_the_python_api_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "python-api.md").read_text(), flags=re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)  # its runs/ goes here
    exec(compile(blocks[0], "docs/python-api.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "PASS: parity holds at every stage of all 50 steps"
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_the_first_check_runs_and_prints_what_it_shows(capsys):
    (code, shown) = re.findall(
        r"```python\n(.*?)```\n\n```text\n(.*?)```", section("A first check of your own code"), flags=re.S
    )[0]
    exec(compile(code, "README.md (A first check)", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    assert starts_in_order(shown.splitlines(), printed.splitlines()), f"printed\n{printed}\nnot\n{shown}"


def test_the_exit_code_table_is_the_one_in_compare_exits():
    rows = re.findall(r"^\| (\d+) \| (.*) \|$", section("Exit codes"), flags=re.M)
    assert {int(code): meaning for code, meaning in rows} == exits.TABLE
