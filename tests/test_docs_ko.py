"""docs/ko/ runs: every command and code block of the Korean guide is executed, so it cannot go stale.

The rules are those of docs/migration.md (``tests/test_migration.py``), for every ``.md`` under docs/ko:

* ```python runs with ``exec`` in one namespace shared by the file, in document order; a ```text block
  right after it (only blank lines between) is exactly what it prints.
* ```bash holds ``backprop-parity`` commands, one a line; each runs in-process through
  ``compare.cli.main`` (``run`` and ``experiment`` with ``--logdir`` in a temporary folder and
  ``--no-tensorboard``); the ```text after it holds lines of their output, each found in order.
* ```python right after the line ``<!-- needs compare.NAME -->`` uses an API that may not exist yet
  (``compare.check_layer`` and its siblings): it runs, in its own test, as soon as ``compare.NAME``
  exists, and is skipped, visibly, until then.

Any other fence is an error, and so is a ```text block after no code block: every number the guide
quotes is computed.
"""

import contextlib
import importlib.util
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

import compare
from compare.cli.main import main
from conftest import lines_in_order

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "ko"
FENCE = re.compile(r"^```(\w*)\s*$")
NEEDS = re.compile(r"^<!-- needs compare\.(\w+) -->$")
NEEDS_MODULE = re.compile(r"^<!-- needs module (\w+) -->$")  # an optional extra's module (jax): skipped without it
TERMS = ("오차 역전파", "기울기 소실", "델타식", "계산 그래프", "학습률", "미니 배치")  # the notes' own words


@dataclass
class Block:
    language: str
    code: str
    where: str
    needs: str | None  # the compare attribute the block waits for
    output: str | None = None
    module: str | None = None  # the module the block needs (an optional extra), skipped where it is missing


def read_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i, last_end = 0, None
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        language, where = match.group(1), f"docs/ko/{path.name}:{i + 1}"
        end = next((j for j in range(i + 1, len(lines)) if lines[j] == "```"), None)
        assert end is not None, f"{where}: unclosed code block"
        code = "\n".join(lines[i + 1 : end]) + "\n"
        if language == "text":
            between = lines[last_end + 1 : i] if last_end is not None else ["-"]
            assert not any(line.strip() for line in between), f"{where}: output of no code block"
            assert blocks[-1].output is None, f"{where}: a second output block"
            blocks[-1].output = code
        else:
            assert language in ("python", "bash"), f"{where}: unknown block language {language!r}"
            previous = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            needs, module = NEEDS.match(previous), NEEDS_MODULE.match(previous)
            waits_for = needs.group(1) if needs else None
            blocks.append(Block(language, code, where, waits_for, module=module.group(1) if module else None))
            last_end = end
        i = end + 1
    return blocks


def run_python(block: Block, namespace: dict) -> str:
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            exec(compile(block.code, block.where, "exec"), namespace)
    except BaseException as error:
        error.add_note(f"in the python block at {block.where}")
        raise
    return stdout.getvalue()


def run_commands(block: Block, logdir: Path) -> list[str]:
    printed: list[str] = []
    for line in filter(str.strip, block.code.splitlines()):
        argv = shlex.split(line)
        assert argv[0] == "backprop-parity", f"{block.where}: not a backprop-parity command: {line}"
        if argv[1] in ("run", "experiment") and "--list" not in argv:
            argv += ["--logdir", str(logdir), "--no-tensorboard"]
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            status = main(argv[1:])
        assert status in (0, 1), f"{block.where}: exit status {status} from {line}"
        printed += stdout.getvalue().splitlines()
    return printed


def guides() -> list[Path]:
    return sorted(GUIDE.glob("*.md"))


def run_guide(path: Path, tmp_path: Path, waiting: bool) -> None:
    """Every block of ``path`` in order; ``waiting``: also those that need an API, which must exist."""
    namespace: dict = {"__name__": "docs_ko"}
    for block in read_blocks(path):
        if (block.needs and not waiting) or (block.module and importlib.util.find_spec(block.module) is None):
            continue
        if block.language == "python":
            printed = run_python(block, namespace)
            if block.output is not None:
                assert printed == block.output, (
                    f"{block.where}: printed\n{printed}\nbut the guide shows\n{block.output}"
                )
        else:
            printed_lines = run_commands(block, tmp_path / "runs")
            shown = [line for line in (block.output or "").splitlines() if line.strip()]
            assert lines_in_order(shown, printed_lines), (
                f"{block.where}: the guide shows\n{block.output}\nbut the commands printed\n" + "\n".join(printed_lines)
            )


@pytest.mark.slow  # every experiment of the guide, at the sizes it quotes
@pytest.mark.parametrize("path", guides(), ids=lambda path: path.name)
def test_every_block_of_the_korean_guide_runs_and_prints_what_it_quotes(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_guide(path, tmp_path, waiting=False)


def test_the_blocks_that_wait_for_the_check_api_run_once_it_exists(tmp_path, monkeypatch):
    blocks = [block for path in guides() for block in read_blocks(path) if block.needs]
    assert blocks, "the guide's section on checking your own code has its example"
    for block in blocks:  # valid Python already, whether or not the API is there to run it
        compile(block.code, block.where, "exec")
    waiting = {block.needs for block in blocks}
    missing = sorted(name for name in waiting if not hasattr(compare, name))
    if missing:
        pytest.skip(f"compare.{', compare.'.join(missing)} not there yet: the guide's example waits for it")
    monkeypatch.chdir(tmp_path)
    for path in guides():
        run_guide(path, tmp_path, waiting=True)


def test_the_guide_exists_uses_the_notes_terms_and_is_linked_from_the_readme():
    text = "\n".join(path.read_text(encoding="utf-8") for path in guides())
    assert [term for term in TERMS if term not in text] == []
    readme = (GUIDE.parents[1] / "README.md").read_text(encoding="utf-8")
    assert "docs/ko/README.md" in "\n".join(readme.splitlines()[:20])  # near the top


def test_the_guide_opens_the_curves_with_the_english_command():
    """Both guides open the curves with ``backprop-parity board``; bare ``tensorboard --logdir`` is neither's."""
    guide = "\n".join(path.read_text(encoding="utf-8") for path in guides())
    readme = (GUIDE.parents[1] / "README.md").read_text(encoding="utf-8")
    assert [("backprop-parity board" in text, "tensorboard --logdir" in text) for text in (guide, readme)] == [
        (True, False),
        (True, False),
    ]


def test_output_without_code_and_unknown_languages_are_refused(tmp_path):
    cases = [("text\n\n```text\n1\n```\n", "output of no code block"), ("```sh\nls\n```\n", "unknown block language")]
    for text, message in cases:
        (tmp_path / "x.md").write_text(text, encoding="utf-8")
        with pytest.raises(AssertionError, match=message):
            read_blocks(tmp_path / "x.md")
