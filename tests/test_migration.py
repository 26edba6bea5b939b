"""docs/migration.md runs: every code block in the guide is executed, so the guide cannot rot.

How the guide's fenced blocks are read, in document order:

* ```python runs with ``exec`` in one namespace shared by the whole guide, so a rung uses what
  earlier rungs defined. A failing assertion in the guide fails this test.
* ```python directly after the line ``<!-- repeat -->`` is a copy, shown beside the code that replaces
  it: its lines must appear, consecutive and unchanged, in an earlier block that ran; it is not run again.
* ```bash holds one ``backprop-parity run ...`` command; it runs through ``compare.cli.main`` with
  ``--logdir`` in a temporary folder and ``--no-tensorboard``.
* ```text directly after a python or bash block (only blank lines between) is that block's output.
  A python block must print exactly that text. Each line shown under a command must be a line of the
  command's output, in order: the full output also names the run directory, which changes every run.
  A text block that follows no code block is an error, so every number the guide quotes is computed.

Any other fence (another language, or none) is an error, so no block escapes. Everything runs in a
temporary working folder, where the guide writes its files (a checkpoint, the runs of its commands).
"""

import contextlib
import importlib.util
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import test_layers

from compare.cli.main import main
from conftest import lines_in_order

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "migration.md"
FENCE = re.compile(r"^```(\w*)\s*$")
REPEAT = "<!-- repeat -->"
RUNGS = [
    "Rung 1: the NumPy forward pass",
    "Rung 2: the manual backward, checked with finite differences",
    "Rung 3: manual SGD, Momentum and Adam",
    "Rung 4: torch tensors, the same manual backward",
    "Rung 4b: the torch backward, proven against autograd's",
    "Rung 5: autograd replaces the backward",
    "Rung 6: nn.Module replaces the parameter bookkeeping",
    "Rung 7: torch.optim replaces the update",
    "Rung 8: the idiomatic training loop",
    "Rung 9: the same training in JAX + optax",
]
JAX_RUNG = RUNGS[-1]  # its blocks need the [jax] extra: skipped where JAX is not installed
WHAT_IT_DOES = {JAX_RUNG: "**What JAX and optax now do for you:**"}
GOTCHAS = [
    "Weight layout (out, in)",
    "float32 by default",
    "Memory shared through torch.from_numpy",
    "Forgotten zero_grad",
    "MSE is a mean over all elements",
    "Cross-entropy reduction",
    "ReLU's gradient at 0",
    "Momentum under a learning-rate schedule",
    "Adam's ε placement",
    "AdamW is not Adam with weight decay",
    "BatchNorm's running variance",
    "Dropout scaling",
    "Data parallelism averages the shards' gradients",
]


@dataclass
class Block:
    language: str
    code: str
    line: int  # 1-based line of the opening fence
    repeat: bool  # a copy of earlier code, shown beside its replacement
    output: "Block | None" = None  # the ```text block that follows


def read_blocks(text: str) -> list[Block]:
    """The guide's fenced blocks, each text block attached to the code block it follows."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    last_code_end = None  # index of the closing fence of the latest code block
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        language, start = match.group(1), i
        end = next((j for j in range(i + 1, len(lines)) if lines[j] == "```"), None)
        assert end is not None, f"migration.md:{start + 1}: unclosed code block"
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        block = Block(language, "\n".join(lines[start + 1 : end]) + "\n", start + 1, previous.strip() == REPEAT)
        between = lines[last_code_end + 1 : start] if last_code_end is not None else ["-"]
        if language == "text":
            assert not any(line.strip() for line in between), f"migration.md:{block.line}: output of no code block"
            assert blocks[-1].output is None, f"migration.md:{block.line}: a second output block"
            blocks[-1].output = block
        else:
            assert language in ("python", "bash"), f"migration.md:{block.line}: unknown block language {language!r}"
            blocks.append(block)
            last_code_end = end
        i = end + 1
    return blocks


def is_excerpt(code: str, earlier: list[str]) -> bool:
    """``code``'s lines appear consecutively and unchanged in one of the ``earlier`` blocks."""
    wanted = code.splitlines()
    for block in earlier:
        have = block.splitlines()
        if any(have[i : i + len(wanted)] == wanted for i in range(len(have) - len(wanted) + 1)):
            return True
    return False


def run_python(block: Block, namespace: dict) -> str:
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            exec(compile(block.code, f"docs/migration.md:{block.line}", "exec"), namespace)
    except BaseException as error:
        error.add_note(f"in the python block at docs/migration.md:{block.line}")
        raise
    return stdout.getvalue()


def run_command(block: Block, logdir: Path) -> str:
    argv = shlex.split(block.code)
    assert argv[:2] == ["backprop-parity", "run"], f"migration.md:{block.line}: not a backprop-parity run command"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = main([*argv[1:], "--logdir", str(logdir), "--no-tensorboard"])
    assert status in (0, 1), f"migration.md:{block.line}: exit status {status}"
    return stdout.getvalue()


def test_every_block_of_the_guide_runs_and_prints_what_it_quotes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = GUIDE.read_text()
    blocks = read_blocks(text)
    namespace: dict = {"__name__": "migration_guide"}
    ran: list[str] = []
    without_jax = jax_rung_lines(text) if importlib.util.find_spec("jax") is None else range(0)
    for block in blocks:
        where = f"docs/migration.md:{block.line}"
        if block.line in without_jax:
            continue
        if block.repeat:
            assert block.language == "python" and block.output is None, f"{where}: a repeat is python, without output"
            assert is_excerpt(block.code, ran), f"{where}: the repeated code differs from every earlier block"
            continue
        if block.language == "python":
            printed = run_python(block, namespace)
            ran.append(block.code)
            if block.output is not None:
                assert printed == block.output.code, (
                    f"{where}: printed\n{printed}\nbut the guide shows\n{block.output.code}"
                )
        else:
            assert block.output is not None, f"{where}: a command without its output"
            printed = run_command(block, tmp_path / "runs")
            shown = block.output.code.splitlines()
            assert lines_in_order(shown, printed.splitlines()), f"{where}: printed\n{printed}\nnot the lines\n{shown}"
    # The guide's finite-difference step and limit are the package's own (test_layers.py gives the reasons).
    assert (namespace["FD_STEP"], namespace["FD_MAX_REL"]) == (test_layers.FD_STEP, test_layers.FD_MAX_REL)


def jax_rung_lines(text: str) -> range:
    """The lines of the JAX rung, up to the next ``##`` heading."""
    lines = text.splitlines()
    start = lines.index(f"## {JAX_RUNG}")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("## "))
    return range(start + 1, end + 1)


def headings(text: str, level: str) -> list[str]:
    return [line[len(level) + 1 :] for line in text.splitlines() if line.startswith(level + " ")]


def sections(text: str) -> dict[str, str]:
    """Heading (## or ###) → the text up to the next heading of any of those levels."""
    parts = re.split(r"^#{2,3} (.+)$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_ladder_has_every_rung_in_order_each_shown_beside_the_previous_and_proven():
    text = GUIDE.read_text()
    rungs = [h for h in headings(text, "##") if h.startswith("Rung ")]
    assert rungs == RUNGS
    body = sections(text)
    for rung in RUNGS:
        assert any(proof in body[rung] for proof in ("check(", "prove(", "check_model(")), f"{rung}: no proof"
    for rung in RUNGS[1:]:
        assert "<table>" in body[rung] and REPEAT in body[rung], f"{rung}: not shown beside the previous rung"
    for rung in RUNGS:
        says = WHAT_IT_DOES.get(rung, "**What torch now does for you:**")
        assert says in body[rung], f"{rung}: does not say what the framework now does"


def test_every_gotcha_is_measured_beside_its_text():
    text = GUIDE.read_text()
    body = sections(text)
    assert headings(text, "###") == GOTCHAS
    for gotcha in GOTCHAS:
        assert re.search(r"```(python|bash)\n.*?```\n\s*```text\n", body[gotcha], re.DOTALL), f"{gotcha}: no number"


@pytest.mark.parametrize(
    ("block", "earlier", "expected"),
    [("a\nb\n", ["x\na\nb\ny\n"], True), ("a\nc\n", ["x\na\nb\nc\n"], False), ("a\n", [], False)],
)
def test_a_repeat_must_be_an_unchanged_excerpt(block, earlier, expected):
    assert is_excerpt(block, earlier) is expected


def test_output_without_code_and_unknown_languages_are_refused():
    with pytest.raises(AssertionError, match="output of no code block"):
        read_blocks("text\n\n```text\n1\n```\n")
    with pytest.raises(AssertionError, match="unknown block language"):
        read_blocks("```sh\nls\n```\n")
    blocks = read_blocks("```python\nprint(1)\n```\n\n```text\n1\n```\n")
    assert blocks[0].output.code == "1\n"
