"""The README's Python example runs as written and its assertions hold."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_the_python_api_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", section("Python API"), flags=re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)  # its runs/ goes here
    exec(compile(blocks[0], "README.md (Python API)", "exec"), {})
    assert capsys.readouterr().out.strip() == "PASS: parity holds at every stage of all 50 steps"
    assert len(list((tmp_path / "runs").iterdir())) == 1
