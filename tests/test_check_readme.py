"""The "Check your own code" page (docs/check-your-code.md) runs: every python block in one namespace, in order; each
bash block (a ``backprop-parity check`` command) through the CLI; each text block after a code block
is the start of lines that code printed, in order."""

import contextlib
import io
import re
import shlex
from pathlib import Path

from compare.cli.main import main
from conftest import starts_in_order

PAGE = Path(__file__).resolve().parents[1] / "docs" / "check-your-code.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


def section_blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(PAGE.read_text())]


def test_every_example_of_the_section_runs_and_prints_what_it_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = section_blocks()
    assert [language for language, _ in blocks].count("python") >= 5  # layer, loss, optimizer, model, CLI file
    namespace: dict = {"__name__": "readme"}
    printed = ""
    for language, code in blocks:
        if language == "text":
            shown = code.splitlines()
            assert starts_in_order(shown, printed.splitlines()), f"printed\n{printed}\nnot the lines\n{shown}"
            continue
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            if language == "python":
                exec(compile(code, "docs/check-your-code.md", "exec"), namespace)
            else:
                argv = shlex.split(code)
                assert argv[:2] == ["backprop-parity", "check"]
                assert main([*argv[1:], "--logdir", str(tmp_path / "runs")]) in (0, 1)
        printed = stdout.getvalue()
