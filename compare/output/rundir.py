"""The one place run directories are made: a new directory per run, never reused or overwritten."""

import datetime as dt
from pathlib import Path

from compare.errors import InputError
from compare.inputs.config import RUN_NAME


def check_run_name(run_name: str | None) -> None:
    if run_name is not None and not RUN_NAME.fullmatch(run_name):
        raise InputError(f"--run-name {run_name!r}: use letters, digits, '.', '_' and '-' (no slashes)")


def new_run_dir(logdir: Path, run_name: str | None, template: str) -> Path:
    """Create a fresh run directory: ``run_name``, or ``template`` with ``{time}`` filled in (then ``-2``,
    ``-3``, ... if runs started in the same second)."""
    check_run_name(run_name)
    if logdir.exists() and not logdir.is_dir():
        raise InputError(f"--logdir {logdir}: exists and is not a directory")
    names = [run_name] if run_name is not None else candidate_names(template)
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        for name in names:
            try:
                (logdir / name).mkdir()
                return logdir / name
            except FileExistsError:
                continue
    except OSError as error:
        raise InputError(f"--logdir {logdir}: cannot create a run directory ({error.strerror})") from None
    if run_name is not None:
        raise InputError(f"run directory {logdir / run_name} already exists; choose another --run-name")
    raise InputError(f"--logdir {logdir}: too many runs named {names[0]}*")


def candidate_names(template: str) -> list[str]:
    first = template.format(time=f"{dt.datetime.now():%Y%m%d-%H%M%S}")
    return [first, *(f"{first}-{i}" for i in range(2, 1000))]
