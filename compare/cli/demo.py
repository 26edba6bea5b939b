"""A realistic log directory in seconds: 17 runs (every optimizer, non-default lr, both dtypes, other
activations, a schedule; two textbook variants and an injected fault that do not pass) and 3 experiments,
one in Korean, made by the commands themselves as a user runs them (hence here, in the command line's layer).
The tests of ``runs`` and ``board`` read it, and ``scripts/screenshot.py`` photographs it."""

from pathlib import Path

from compare.cli.main import main

RUNS = (
    (),
    ("--dtype", "float32"),
    ("--optimizer", "sgd"),
    ("--optimizer", "sgd", "--lr", "0.3"),
    ("--optimizer", "momentum"),
    ("--optimizer", "nesterov"),
    ("--optimizer", "adamw"),
    ("--optimizer", "rmsprop"),
    ("--optimizer", "adagrad"),
    ("--activation", "tanh"),
    ("--activation", "leaky_relu"),
    ("--lr-schedule", "step:2:0.5"),
    ("--optimizer", "sgd", "--dtype", "float32", "--activation", "sigmoid"),
    ("--variant", "classic_momentum", "--lr-schedule", "step:2:0.1"),
    ("--variant", "adam_eps_hat"),
    ("--inject", "bias-grad-averaged"),
    ("--optimizer", "rmsprop", "--dtype", "float32", "--lr", "0.001"),
)
EXPERIMENTS = (("vanishing-gradients", True), ("graph", False), ("init", True))  # (name, takes --steps)
KOREAN = "init"


def build(logdir: Path, steps: int = 4) -> Path:
    """Every experiment and run above into ``logdir``, ``steps`` steps each (the experiments first: the
    latest is a run, as after `backprop-parity run`); returns ``logdir``."""
    for name, takes_steps in EXPERIMENTS:
        argv = ["experiment", name, "--logdir", str(logdir), *(["--steps", str(steps)] if takes_steps else [])]
        status = main([*argv, *(["--lang", "ko"] if name == KOREAN else [])])
        if status != 0:
            raise RuntimeError(f"experiment {name} exited {status}")
    for args in RUNS:  # the variants and the fault exit 1: that is their finding
        main(["run", "--steps", str(steps), "--log-every", str(max(1, steps // 4)), "--logdir", str(logdir), *args])
    return logdir
