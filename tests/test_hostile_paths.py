"""The last hostile paths and limits: each refused with one line on stderr and exit 2, before any work, through
``compare.cli.main.main(argv)`` as through the console script."""

import os

import pytest

from compare.check.sandbox import guard
from compare.cli.main import main

LAYER_FILE = "import numpy as np\nfrom torch import nn\nlayer = None\n"


@pytest.fixture
def places(tmp_path):
    """A symlink loop, a link to the root folder, a file to check, a folder of runs."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    (tmp_path / "root").symlink_to("/")
    (tmp_path / "mine.py").write_text(LAYER_FILE)
    return {
        "loop": str(tmp_path / "a"),
        "root": str(tmp_path / "root"),
        "file": str(tmp_path / "mine.py"),
        "runs": str(tmp_path / "runs"),
        "long": str(tmp_path / ("x" * 300)),
    }


# (the command line, with {place}s filled from the fixture; what its one line says)
REFUSED = [
    (["run", "--steps", "1", "--logdir", "{loop}"], "symbolic link"),
    (["run", "--steps", "1", "--logdir", "{loop}/inside"], "symbolic link"),
    (["check", "{file}", "--logdir", "{loop}"], "symbolic link"),
    (["run", "--steps", "1", "--logdir", "{runs}", "--json", "{loop}/r.json"], "symbolic link"),
    (["run", "--steps", "1", "--logdir", "{long}"], "longer than"),
    (["run", "--steps", "1", "--logdir", "/"], "the root folder"),
    (["run", "--steps", "1", "--logdir", "{root}"], "the root folder"),
    (["check", "{file}", "--logdir", "{root}"], "the root folder"),
    (["run", "--steps", "1", "--logdir", "{runs}/a\0b"], "NUL byte"),
    (["run", "--steps", "1", "--logdir", "{runs}", "--json", "r\0.json"], "NUL byte"),
    (["check", "mine\0.py", "--logdir", "{runs}"], "NUL byte"),
    (["runs", "--logdir", "{runs}\0"], "NUL byte"),
    (["check", "{file}", "--logdir", "{runs}", "--time-limit", "1e308"], f"at most {guard.MAX_TIME_LIMIT:g}"),
    (["check", "{file}", "--logdir", "{runs}", "--memory-limit", "nan"], "--memory-limit must be"),
]


@pytest.mark.parametrize(("argv", "said"), REFUSED)
def test_a_hostile_path_or_limit_is_one_line_and_exit_2(argv, said, places, capsys):
    filled = [arg.format(**places) for arg in argv]
    assert main(filled) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not os.path.exists(places["runs"])  # nothing written


def test_the_time_limit_bound_is_the_check_functions_too():
    with pytest.raises(ValueError, match="at most"):
        guard.check_time_limit(1e308)
